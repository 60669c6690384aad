package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
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
func handleQueue(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			// Without the message text there is nothing to poison; the host retries and then
			// poisons it itself.
			d.Logger.Error("queue invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		ctx := r.Context()
		body, meta, reason := openMessage(d, inv)
		if reason != "" {
			poison(ctx, w, d, inv, meta.RequestID, reason)
			return
		}
		req, err := d.Validator.Decode(body)
		if err != nil {
			poison(ctx, w, d, inv, meta.RequestID, "invalid_request")
			return
		}
		meta.Trigger, meta.DequeueCount = revoke.TriggerQueue, inv.DequeueCount
		meta.InvocationID = r.Header.Get("X-Azure-Functions-InvocationId")
		if meta.CallbackURL == "" {
			meta.CallbackURL = req.CallbackURL // a message signed by a caller may name its own
		}
		out, err := d.Lifecycle.Deliver(ctx, revoke.Delivery{
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
			d.Logger.Error("queue revocation failed", "request_id", meta.RequestID, "error", err)
			reply(w, http.StatusInternalServerError, "internal error")
		case out.Done:
			reply(w, http.StatusOK, out.Notes...)
		default:
			reply(w, http.StatusServiceUnavailable, out.Notes...)
		}
	})
}

// openMessage verifies a message's signature (or accepts it unsigned when allowed) and returns the
// request body, or the reason it can never succeed. A signed body may carry the origin of a
// deferred request (queue.Origin): its request id, caller and status handle then stand for the
// message's, since only a holder of a webhook secret can have written them.
func openMessage(d Deps, inv queueInvocation) (body []byte, meta revoke.Meta, reason string) {
	meta.RequestID = inv.ID
	env, signed, err := queue.ParseMessage(inv.Message)
	if err != nil {
		return nil, meta, "malformed_message"
	}
	if !signed {
		if !d.AllowUnsigned {
			return nil, meta, "unsigned_message"
		}
		// An unsigned body goes to the strict request decoder as it is, which refuses an origin.
		meta.Caller = "queue:unsigned"
		return inv.Message, meta, ""
	}
	if webhook.ValidID(env.ID) {
		meta.RequestID = env.ID
	}
	caller, err := verifyMessage(d, env)
	if err != nil {
		return nil, meta, err.Error()
	}
	meta.Caller = caller
	body, origin, err := queue.SplitBody([]byte(env.Body))
	if err != nil {
		return nil, meta, "invalid_request"
	}
	if origin != nil {
		meta.RequestID, meta.Caller, meta.StatusHandle = origin.RequestID, origin.Caller, origin.StatusHandle
		meta.CallbackURL, meta.StatusURL = origin.CallbackURL, origin.StatusURL
	}
	return body, meta, ""
}

// verifyMessage checks a signed message against WEBHOOK_SECRETS, then QUEUE_SECRETS, and names
// the key that signed it ("webhook:<index>" or "queue:<index>"). A deferred message names its
// original caller in its origin instead. Of two refusals the more telling one is kept (expired
// says the signature was good).
func verifyMessage(d Deps, env queue.Envelope) (string, error) {
	err := webhook.ErrSignature
	for _, set := range []struct {
		keys   webhook.Keys
		prefix string
	}{{d.Keys, "webhook:"}, {d.QueueKeys, "queue:"}} {
		if set.keys.Len() == 0 {
			continue
		}
		s, verr := set.keys.Verify(env.Header(), []byte(env.Body), d.Now(), d.QueueMaxAge, d.Tolerance)
		if verr == nil {
			return set.prefix + strconv.Itoa(s.KeyIndex), nil
		}
		if errors.Is(err, webhook.ErrSignature) {
			err = verr
		}
	}
	return "", err
}

// poison copies a message that can never succeed to <queue>-poison, records why (the
// WebhookRejected event is the log line), and completes it. If the copy fails the invocation
// fails, so the host retries and poisons it itself.
func poison(ctx context.Context, w http.ResponseWriter, d Deps, inv queueInvocation, requestID, reason string) {
	d.Audit.Rejected(ctx, telemetry.Rejection{Reason: reason, Trigger: revoke.TriggerQueue, RequestID: requestID})
	if d.Poison == nil {
		reply(w, http.StatusOK, "message rejected ("+reason+"); no storage configured to keep a copy")
		return
	}
	if err := d.Poison.Poison(ctx, inv.Message); err != nil {
		d.Logger.Error("poison copy failed", "request_id", requestID, "error", err)
		reply(w, http.StatusServiceUnavailable, "message rejected ("+reason+"); poison copy failed, retrying")
		return
	}
	reply(w, http.StatusOK, "message rejected ("+reason+") and copied to the poison queue")
}
