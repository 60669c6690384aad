package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/entra-revoke/entra-revoke/internal/callback"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// CallbackDeliverer makes one delivery attempt per callback queue message
// (internal/callback.Deliverer).
type CallbackDeliverer interface {
	Handle(ctx context.Context, text []byte) (callback.Disposition, string)
}

// handleCallbacks serves POST /revoke-callbacks, the callback queue trigger's invocation: one
// delivery attempt. It answers 200 whenever the message is dealt with — delivered, given up,
// poisoned or its retry enqueued — and non-2xx only when a retry or poison copy could not be
// written, so that the host delivers the message again.
func handleCallbacks(deliverer CallbackDeliverer, drain context.Context, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			logger.Error("callback invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		if deliverer == nil {
			// Callbacks were turned off with messages still queued: they are dropped, not retried.
			reply(w, http.StatusOK, "callbacks are not enabled; message dropped")
			return
		}
		ctx, cancel := workContext(r, drain, revoke.QueueBudget)
		defer cancel()
		disp, log := deliverer.Handle(ctx, inv.Message)
		if disp == callback.Retry {
			reply(w, http.StatusServiceUnavailable, log)
			return
		}
		reply(w, http.StatusOK, log)
	})
}
