package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/callback"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// wireCallbacks builds the outcome callbacks when CALLBACK_ALLOWED_HOSTS is set: the Notifier
// that puts events on CALLBACK_QUEUE (signed with the key deferral signs with) and the Deliverer
// that the callback queue trigger runs. Settings have already refused callbacks without storage or
// secrets. The callback queue and its poison queue are created in the background.
func wireCallbacks(bg context.Context, cfg config, a *app, logger *slog.Logger) (*callback.Notifier, *callback.Deliverer, error) {
	q, err := queue.New(queueConfig(cfg.Storage, a.storageCred, cfg.CallbackQueue))
	if err != nil {
		return nil, nil, fmt.Errorf("callback queue: %w", err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if err := q.EnsureQueues(ctx); err != nil {
			logger.Warn("could not create the callback queues", "queue", q.Name(), "error", err)
		}
	}()
	// The key that signs deferred requests signs callback queue messages too.
	queueKeys := cfg.QueueSigningKeys()
	n := &callback.Notifier{Queue: q, Keys: queueKeys, Record: a.telemetry, Logger: logger, Now: time.Now}
	d := &callback.Deliverer{
		Hosts: cfg.CallbackHosts, Secrets: cfg.CallbackKeys, QueueKeys: queueKeys,
		MaxAge: cfg.QueueSignatureMaxAge, Tolerance: cfg.WebhookTolerance,
		Queue: q, Client: callback.NewClient(), Delays: cfg.CallbackRetryDelays,
		Record: a.telemetry, Rejecter: a.telemetry, Logger: logger, Now: time.Now,
	}
	return n, d, nil
}

// completions sends the lifecycle's revocation.completed events through the callback queue.
type completions struct{ notifier *callback.Notifier }

var _ revoke.Notifier = completions{}

func (c completions) Completed(ctx context.Context, e revoke.Completion) {
	c.notifier.Completed(ctx, callback.Completion{
		URL: e.Meta.CallbackURL, RequestID: e.Meta.RequestID, Caller: e.Meta.Caller,
		HTTPStatus: e.Status, Body: e.Body, StatusURL: e.StatusURL,
	})
}

// watchCallbacks sends a revocation.watch callback after each sign-in check of a request that
// named a callbackUrl. The URL is kept only in the request's status record, so it is read from
// there: a check whose request has no status record (expired) has nobody to tell.
type watchCallbacks struct {
	notifier *callback.Notifier
	status   interface {
		GetStatus(ctx context.Context, handle string) ([]byte, error)
	}
}

var _ watch.Notifier = watchCallbacks{}

func (c watchCallbacks) Watched(ctx context.Context, e watch.Event) error {
	if e.Check.StatusHandle == "" {
		return nil
	}
	record, err := c.status.GetStatus(ctx, e.Check.StatusHandle)
	if err != nil {
		if errors.Is(err, revoke.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("read the status record for its callback: %w", err)
	}
	url := callback.StatusCallbackURL(record)
	if url == "" {
		return nil
	}
	latest, err := json.Marshal(e.Result.Latest)
	if err != nil {
		return err
	}
	c.notifier.Watch(ctx, callback.WatchReport{
		URL: url, RequestID: e.Check.RequestID, Caller: e.Check.Caller, Ticket: e.Check.Ticket, After: e.Check.After,
		Results: []callback.WatchResult{{
			UPN: e.Check.UPN, UserID: e.Check.UserID, RevokedAt: e.Check.RevokedAt,
			Finding: string(e.Result.Finding), SignIns: e.Result.SignIns, Latest: latest,
		}},
	})
	return nil
}
