package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// cleanupBudget bounds one run of the state-cleanup timer. The store deletes in pages, many at
// a time, and stops when the budget ends; the next run (the next day) continues from where it
// stopped. It stays below the HTTP server's WriteTimeout so that the host always gets its reply.
const cleanupBudget = 60 * time.Second

// maxTimerInvocationBytes bounds the timer's invocation: a schedule status and some metadata.
const maxTimerInvocationBytes = 64 << 10

// handleCleanup serves POST /state-cleanup, the state-cleanup timer's invocation: it deletes what
// the state store no longer needs (final responses past IDEMPOTENCY_TTL, finished message
// progress, expired statuses and leases).
func handleCleanup(st State, drain context.Context, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := decodeTimerInvocation(http.MaxBytesReader(w, r.Body, maxTimerInvocationBytes)); err != nil {
			logger.Error("timer invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		ctx, cancel := workContext(r, drain, cleanupBudget)
		defer cancel()
		deleted, err := st.Cleanup(ctx)
		n := strconv.Itoa(deleted)
		switch {
		case err == nil:
			reply(w, http.StatusOK, "state cleanup: deleted "+n+" expired entries")
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			// Nothing is lost by stopping: what is left expires just the same and goes next time.
			reply(w, http.StatusOK, "state cleanup: deleted "+n+" expired entries; the rest at the next run")
		default:
			logger.Error("state cleanup failed", "deleted", deleted, "error", err)
			reply(w, http.StatusInternalServerError, "state cleanup failed after deleting "+n+" expired entries")
		}
	})
}
