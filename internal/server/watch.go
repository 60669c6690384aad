package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// WatchRunner makes sign-in checks (*watch.Watcher).
type WatchRunner interface {
	Run(ctx context.Context, d watch.Delivery) (res watch.Result, already bool, err error)
}

// handleWatch serves POST /revoke-watch, the sign-in checks' queue trigger. Like the request
// queue's, it answers 200 when the check is finished (made, made before, or poisoned) and non-2xx
// only while a later delivery could still make it.
func handleWatch(watcher WatchRunner, open opener, rej rejecter, maxDequeueCount int, drain context.Context, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			logger.Error("watch invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		ctx := r.Context()
		if watcher == nil {
			// WATCH_AFTER was turned off while checks were queued: keep them for an operator.
			rej.reject(ctx, w, inv.Message, inv.ID, "watch_disabled")
			return
		}
		check, requestID, reason := open.check(inv)
		if reason != "" {
			rej.reject(ctx, w, inv.Message, requestID, reason)
			return
		}
		last := inv.DequeueCount >= maxDequeueCount
		wctx, cancel := workContext(r, drain, revoke.QueueBudget)
		defer cancel()
		res, already, err := watcher.Run(wctx, watch.Delivery{
			Check: check, Last: last, DequeueCount: inv.DequeueCount,
			InvocationID: r.Header.Get("X-Azure-Functions-InvocationId"),
		})
		switch {
		case errors.Is(err, watch.ErrPostponed):
			reply(w, http.StatusOK, "sign-in check "+check.After+" postponed: Graph's reports limit is busy; a copy is queued for later")
		case errors.Is(err, watch.ErrRetry):
			reply(w, http.StatusServiceUnavailable, "sign-in check not made yet; the host will retry")
		case err != nil:
			logger.Error("sign-in check failed", "request_id", check.RequestID, "error", err)
			reply(w, http.StatusInternalServerError, "internal error")
		case already:
			reply(w, http.StatusOK, "sign-in check "+check.After+" was already made")
		default:
			reply(w, http.StatusOK, fmt.Sprintf("sign-in check %s: %s (%d sign-ins)", check.After, res.Finding, res.SignIns))
		}
	})
}
