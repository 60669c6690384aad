package watch

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// checkScope is the claims scope of sign-in checks. Callers' scopes are "webhook" and
// "entra:<tenant>:<client>", so no request id can meet a check's key.
const checkScope = "watch-check"

// checkBodyHash binds every check key to the same "body": a key is the check itself.
const checkBodyHash = "sign-in-check"

// onceBudget bounds one claim write: the store answers in milliseconds, or falls back to memory.
const onceBudget = 5 * time.Second

// ClaimOnce implements Once on the request claims of the handler's state: key = scope
// "watch-check" and the check's key (request id, caller, user's object ID, duration). Only
// deliveries of the same check — redeliveries, or a copy on another instance — share it. A
// finished check is kept TTL (past the last delivery its message could have).
type ClaimOnce struct {
	Claims revoke.Claims
	Lease  time.Duration // a delivery's budget and a margin
	TTL    time.Duration
}

var _ Once = ClaimOnce{}

// Begin implements Once.
func (o ClaimOnce) Begin(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, onceBudget)
	defer cancel()
	c, err := o.Claims.Claim(ctx, revoke.RequestKey{Scope: checkScope, ID: key}, checkBodyHash, o.Lease)
	var busy *revoke.InProgressError
	switch {
	case errors.As(err, &busy):
		return "", false, ErrBusy
	case err != nil:
		return "", false, err
	case c.Replay != nil:
		return "", true, nil
	}
	return c.Lease, false, nil
}

// Finish implements Once.
func (o ClaimOnce) Finish(ctx context.Context, key, lease string, result []byte) error {
	ctx, cancel := context.WithTimeout(ctx, onceBudget)
	defer cancel()
	return o.Claims.Finish(ctx, revoke.RequestKey{Scope: checkScope, ID: key}, lease, revoke.Response{Status: http.StatusOK, Body: result}, o.TTL)
}

// Abandon implements Once.
func (o ClaimOnce) Abandon(ctx context.Context, key, lease string) error {
	ctx, cancel := context.WithTimeout(ctx, onceBudget)
	defer cancel()
	return o.Claims.Release(ctx, revoke.RequestKey{Scope: checkScope, ID: key}, lease, nil)
}
