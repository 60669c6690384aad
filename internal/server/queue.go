package server

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// maxInvocationBytes bounds the host's invocation: a queue message is at most 64 KiB of base64,
// which the host's double JSON encoding and metadata can inflate several times.
const maxInvocationBytes = 1 << 20

// hostReply is the custom-handler response the Functions host expects for a non-HTTP trigger.
type hostReply struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

func reply(w http.ResponseWriter, status int, logs ...string) {
	if logs == nil {
		logs = []string{}
	}
	encode(w, status, hostReply{Outputs: map[string]any{}, Logs: logs})
}

// handleQueue serves POST /revoke-queue, the queue trigger's invocation: it verifies and decodes
// the message, poisons what can never succeed, and hands the rest to the lifecycle. It answers
// 200 when the message is done, whatever the users' outcomes, and non-2xx while a retry could
// still change an outcome, so that the host delivers the message again.
func handleQueue(lc Lifecycle, v *request.Validator, open opener, rej rejecter, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			// Without the message text there is nothing to poison; the host retries and then
			// poisons it itself.
			logger.Error("queue invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		ctx := r.Context()
		body, meta, reason := open.message(inv)
		if reason != "" {
			rej.reject(ctx, w, inv.Message, meta.RequestID, reason)
			return
		}
		req, err := v.Decode(body)
		if err != nil {
			rej.reject(ctx, w, inv.Message, meta.RequestID, "invalid_request")
			return
		}
		meta.Trigger, meta.DequeueCount = revoke.TriggerQueue, inv.DequeueCount
		meta.InvocationID = r.Header.Get("X-Azure-Functions-InvocationId")
		if meta.CallbackURL == "" {
			meta.CallbackURL = req.CallbackURL // a message signed by a caller may name its own
		}
		out, err := lc.Deliver(ctx, revoke.Delivery{
			MessageID: inv.ID, Text: inv.Message,
			Job: revoke.Job{
				Meta: meta, Users: req.Users(), Ticket: req.Ticket, Reason: req.Reason,
				RequestedBy: req.RequestedBy, DryRun: req.DryRun,
			},
		})
		var rl *revoke.RateLimitedError
		switch {
		case errors.As(err, &rl):
			reply(w, http.StatusServiceUnavailable, "rate guard reached; the host will retry this message")
		case err != nil:
			logger.Error("queue revocation failed", "request_id", meta.RequestID, "error", err)
			reply(w, http.StatusInternalServerError, "internal error")
		case out.Done:
			reply(w, http.StatusOK, out.Notes...)
		default:
			reply(w, http.StatusServiceUnavailable, out.Notes...)
		}
	})
}
