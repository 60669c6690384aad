package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/entra-revoke/entra-revoke/internal/callback"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// Callbacks sends a request's outcome events (internal/callback.Notifier). Sending never fails
// nor delays a revocation: it only enqueues.
type Callbacks interface {
	Completed(ctx context.Context, c callback.Completion)
	Watch(ctx context.Context, w callback.WatchReport)
}

// CallbackDeliverer makes one delivery attempt per callback queue message
// (internal/callback.Deliverer).
type CallbackDeliverer interface {
	Handle(ctx context.Context, text []byte) (callback.Disposition, string)
}

// completedNow sends revocation.completed for a synchronous answer in which every user is final.
// A request answered with queued users gets its event from the queue trigger instead.
func completedNow(ctx context.Context, d Deps, meta revoke.Meta, res revoke.Result, resp response) {
	if d.Callbacks == nil || meta.CallbackURL == "" || anyQueued(res) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateBudget)
	defer cancel()
	d.Callbacks.Completed(ctx, callback.Completion{
		URL: meta.CallbackURL, RequestID: meta.RequestID, Caller: meta.Caller,
		HTTPStatus: resp.status, Body: resp.body, StatusURL: resp.location,
	})
}

// completedLater sends revocation.completed once a deferred request's last queued users have
// their final outcome (done: this delivery finished the message). The request's users are read
// from its status record, with this delivery's outcomes applied in case the record's update
// failed; without a record, the message's own users are the request.
func completedLater(ctx context.Context, d Deps, meta revoke.Meta, res revoke.Result, done bool) {
	if d.Callbacks == nil || meta.CallbackURL == "" || !done {
		return
	}
	whole := res
	if meta.StatusHandle != "" {
		if record, err := d.State.GetStatus(ctx, meta.StatusHandle); err == nil {
			var final []revoke.UserResult
			for _, u := range res.Results {
				if u.Status != revoke.StatusQueued {
					final = append(final, u)
				}
			}
			if merged, err := applyOutcomes(record, final); err == nil {
				var r revoke.Result
				if json.Unmarshal(merged, &r) == nil && len(r.Results) > 0 {
					whole = r
				}
			}
		}
	}
	if anyQueued(whole) {
		return
	}
	whole.Status = revoke.Overall(whole.Results)
	body, err := json.Marshal(whole)
	if err != nil {
		return
	}
	d.Callbacks.Completed(ctx, callback.Completion{
		URL: meta.CallbackURL, RequestID: meta.RequestID, Caller: meta.Caller,
		HTTPStatus: httpStatus(whole), Body: body, StatusURL: meta.StatusURL,
	})
}

// handleCallbacks serves POST /revoke-callbacks, the callback queue trigger's invocation: one
// delivery attempt. It answers 200 whenever the message is dealt with — delivered, given up,
// poisoned or its retry enqueued — and non-2xx only when a retry or poison copy could not be
// written, so that the host delivers the message again.
func handleCallbacks(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			d.Logger.Error("callback invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		if d.CallbackDeliverer == nil {
			// Callbacks were turned off with messages still queued: they are dropped, not retried.
			reply(w, http.StatusOK, "callbacks are not enabled; message dropped")
			return
		}
		ctx, cancel := workContext(r, d, queueBudget)
		defer cancel()
		disp, log := d.CallbackDeliverer.Handle(ctx, inv.Message)
		if disp == callback.Retry {
			reply(w, http.StatusServiceUnavailable, log)
			return
		}
		reply(w, http.StatusOK, log)
	})
}
