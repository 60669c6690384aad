package graph

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/entra-revoke/entra-revoke/internal/retryafter"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

const (
	// maxRetryAfter caps a server-sent delay so that absurd values cannot overflow a Duration;
	// anything this long is past every caller's deadline anyway.
	maxRetryAfter = time.Hour
	// attemptReserve is the time a retry must still have after its wait. Waiting until just
	// before the deadline would turn a "throttled" (which callers can defer) into a timeout.
	attemptReserve = time.Second
	// maxMessage bounds Graph's error.message: it echoes the user reference and travels on into
	// responses and telemetry.
	maxMessage = 1024
)

// do runs send (one SDK call) until it succeeds, fails for good, or the next retry would not
// fit in ctx's deadline. 429, 503 and 504 are retried, honouring Retry-After.
func (c *Client) do(ctx context.Context, op *operation, user string, send func(context.Context) error) (revoke.GraphResult, error) {
	start := time.Now()
	t := &tracker{op: op}
	fail := func(ge *revoke.GraphError) (revoke.GraphResult, error) {
		ge.Attempts = t.attempts
		ge.Duration = time.Since(start)
		return revoke.GraphResult{}, ge
	}
	// Anything else is encoded into one path segment by the SDK; these three would empty or
	// climb out of /users/{id}.
	if user == "" || user == "." || user == ".." {
		return fail(&revoke.GraphError{Status: revoke.StatusFailed, Err: fmt.Errorf("%s: %w", op.name, errBadUser)})
	}

	ctx, cancel := withBudget(ctx)
	defer cancel()
	ctx = withTracker(ctx, t)

	for try := 1; ; try++ {
		before := t.attempts
		t.tokenErr = nil
		err := send(ctx)
		ex := t.last

		if t.attempts == before {
			// Nothing went out: no token, a cancelled context, or a request that could not be built.
			ge := &revoke.GraphError{Status: revoke.StatusFailed}
			switch {
			case t.tokenErr != nil && ctx.Err() != nil:
				ge.Err = fmt.Errorf("%s: %w: %w", op.name, ErrToken, ctx.Err())
			case t.tokenErr != nil:
				ge.Err = fmt.Errorf("%s: %w: %w", op.name, ErrToken, t.tokenErr)
			case ctx.Err() != nil:
				ge.Err = fmt.Errorf("%s: %w", op.name, ctx.Err())
			default:
				ge.Err = fmt.Errorf("%s: %w", op.name, sdkError(err))
			}
			return fail(ge)
		}

		switch st := ex.status; {
		case st == 0:
			// The last attempt got no response: timeout, refused or reset connection.
			ge := &revoke.GraphError{Status: revoke.StatusFailed}
			if ctx.Err() != nil {
				ge.Err = fmt.Errorf("%s: %w", op.name, ctx.Err())
			} else {
				ge.Err = fmt.Errorf("%s: %w", op.name, sdkError(err))
			}
			return fail(ge)

		case st >= 200 && st < 300:
			if err == nil || op.anyBody {
				return revoke.GraphResult{RequestID: ex.requestID, Attempts: t.attempts, Duration: time.Since(start)}, nil
			}
			return fail(&revoke.GraphError{
				Status: revoke.StatusFailed, HTTPStatus: st, RequestID: ex.requestID,
				Err: fmt.Errorf("%s: decode response: %w", op.name, sdkError(err)),
			})

		case retryable(st):
			delay := c.retryDelay(ex.retryAfter, try)
			if try >= c.triesOf(op) || !fits(ctx, delay) {
				return fail(c.classify(op, st, ex, err))
			}
			c.logger.Debug("graph call retried", "operation", op.name, "status", st, "attempt", try, "wait", delay)
			if werr := c.wait(ctx, delay); werr != nil {
				ge := c.classify(op, st, ex, err)
				ge.Status = revoke.StatusFailed
				ge.Err = fmt.Errorf("%s: %w", op.name, werr)
				return fail(ge)
			}

		default:
			return fail(c.classify(op, st, ex, err))
		}
	}
}

// classify turns a final non-2xx answer into a GraphError.
func (c *Client) classify(op *operation, status int, ex exchange, err error) *revoke.GraphError {
	ge := &revoke.GraphError{HTTPStatus: status, RequestID: ex.requestID}
	switch {
	case status == http.StatusNotFound:
		ge.Status = revoke.StatusNotFound
	case status == http.StatusForbidden, status == http.StatusUnauthorized:
		ge.Status = revoke.StatusDenied
	case status == http.StatusTooManyRequests:
		ge.Status = revoke.StatusThrottled
	default:
		ge.Status = revoke.StatusFailed
	}
	if d, ok := retryafter.Parse(ex.retryAfter, time.Now(), maxRetryAfter); ok {
		ge.RetryAfter = d
	}
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		if me := oe.GetErrorEscaped(); me != nil {
			ge.Code = clean(deref(me.GetCode()), 128)
			ge.Message = clean(deref(me.GetMessage()), maxMessage)
		}
	}
	if ge.Code == "" {
		ge.Err = fmt.Errorf("%s: http %d", op.name, status)
	}
	return ge
}

// sdkError keeps an SDK error's text out of harm's way: an ODataError's Error method
// dereferences fields that a malformed body leaves nil.
func sdkError(err error) error {
	if err == nil {
		return errors.New("no response")
	}
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		return errors.New("graph error response")
	}
	return err
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// retryDelay is the server's Retry-After when it sent one, else exponential backoff with equal
// jitter: try 1 waits 0.5–1×base, try 2 1–2×base, … capped at backoffMax. Jitter spreads out
// instances that were throttled together.
func (c *Client) retryDelay(retryAfter string, try int) time.Duration {
	if d, ok := retryafter.Parse(retryAfter, time.Now(), maxRetryAfter); ok {
		return d
	}
	d := c.backoffMax
	if try-1 < 31 {
		if b := c.backoffBase << (try - 1); b > 0 && b < d {
			d = b
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

// triesOf is how many attempts op may take.
func (c *Client) triesOf(op *operation) int {
	if op.tries > 0 {
		return op.tries
	}
	return c.maxTries
}

// fits reports whether waiting d still leaves time for one more attempt before ctx's deadline.
func fits(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline)-d >= attemptReserve
}

// withBudget gives ctx a deadline when it has none, so no call can hang for ever.
func withBudget(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultBudget)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// clean bounds s to n bytes (on a rune boundary) and drops control characters, so Graph's text
// can go into logs and JSON responses as it is.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
