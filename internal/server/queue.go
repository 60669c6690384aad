package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
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

// handleQueue serves POST /revoke-queue, the queue trigger's invocation. It answers 200 when the
// message is finished, whatever the users' outcomes, and non-2xx only while a retry could still
// change an outcome, so that the host delivers the message again.
//
// What each message achieved is kept in the state store under state.MessageKey: the host's
// Metadata.Id, which stays the same across redeliveries of one message, and a hash of the message
// text. Two different messages never share it — not even when they carry the same webhook-id or
// request id, or reuse an id after the first was deleted — so a redelivery skips only its own
// finished users, and only a redelivery of a completed message is a no-op.
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
		invocationID := r.Header.Get("X-Azure-Functions-InvocationId")

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
		meta.Trigger, meta.InvocationID, meta.DequeueCount = revoke.TriggerQueue, invocationID, inv.DequeueCount

		key := state.MessageKey{MessageID: inv.ID, ContentHash: bodyHash(inv.Message)}
		// The host always sends Metadata.Id; without it a redelivery cannot be told from another
		// message with the same text, so nothing is remembered (the users run again).
		remember := inv.ID != ""
		var prior []revoke.UserResult
		if remember {
			sctx, cancel := context.WithTimeout(ctx, stateBudget)
			p, done, err := d.State.MessageProgress(sctx, key)
			cancel()
			switch {
			case err != nil:
				d.Logger.Warn("message progress unavailable; running every user", "request_id", meta.RequestID, "error", err)
			case done:
				reply(w, http.StatusOK, "message "+inv.ID+" was already completed")
				return
			default:
				prior = decodeProgress(p)
			}
		}

		final := inv.DequeueCount >= d.MaxDequeueCount
		wctx, cancel := workContext(r, d, queueBudget)
		defer cancel()
		job := revoke.Job{
			Meta: meta, Users: req.Users(), Ticket: req.Ticket, Reason: req.Reason,
			RequestedBy: req.RequestedBy, DryRun: req.DryRun, Final: final, LastDelivery: final, WaitForRate: true, Prior: prior,
		}
		var saver *progressSaver
		if remember {
			saver = newProgressSaver(context.WithoutCancel(ctx), d, key, prior)
			job.Settled = saver.settled
		}
		res, err := d.Engine.Run(wctx, job)
		if saver != nil {
			saver.wait()
		}
		var rl *revoke.RateLimitedError
		if errors.As(err, &rl) {
			reply(w, http.StatusServiceUnavailable, "rate guard reached; the host will retry this message")
			return
		}
		if err != nil {
			d.Logger.Error("queue revocation failed", "request_id", meta.RequestID, "error", err)
			reply(w, http.StatusInternalServerError, "internal error")
			return
		}

		// Bookkeeping gets a budget of its own: the work may have used all of its.
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), stateBudget)
		defer scancel()
		logs := []string{summary(res)}
		status, done := http.StatusOK, true
		switch {
		case res.Retryable() && !final:
			status, done = http.StatusServiceUnavailable, false
			logs = append(logs, "some users could not be revoked yet; the host will retry")
		case res.Retryable() && d.Poison != nil:
			// Last delivery: the outcome is recorded as final, and a copy is kept in the poison
			// queue so that an operator can replay it once Graph recovers. If the copy fails, the
			// invocation fails too: the host then moves the message to the poison queue itself.
			if err := d.Poison.Poison(sctx, inv.Message); err != nil {
				d.Logger.Error("poison copy failed; leaving the message to the host", "request_id", meta.RequestID, "error", err)
				status, done = http.StatusServiceUnavailable, false
				logs = append(logs, "final attempt: outcome recorded; the poison copy failed, so the host must poison the message")
			} else {
				logs = append(logs, "final attempt: outcome recorded, message copied to the poison queue")
			}
		}
		if meta.StatusHandle != "" {
			err := updateStatus(sctx, d, meta, req.Users(), res, final)
			if err != nil && done && !final {
				// The caller polling the link would see its users queued until the link
				// expires: fail this delivery so that the next one, which skips the users
				// finished here, writes the status again. The last delivery has no next one.
				status, done = http.StatusServiceUnavailable, false
				logs = append(logs, "the status link could not be updated; the host will retry")
			}
		}
		if meta.CallbackURL == "" {
			meta.CallbackURL = req.CallbackURL // a message signed by a caller may name its own
		}
		completedLater(sctx, d, meta, res, done)
		if remember {
			if err := d.State.SaveMessageProgress(sctx, key, encodeProgress(res.Results), done); err != nil {
				d.Logger.Warn("message progress not saved", "request_id", meta.RequestID, "error", err)
			}
		}
		reply(w, status, logs...)
	})
}

// updateStatus records a deferred request's outcomes in its status record: every final one, and
// on the last delivery the throttled and failed ones too, since they are final then. A record
// that is missing — its instance could not write it to the table — is rebuilt from what the
// signed message carries: the request id, the handle and the message's users, queued. Any other
// error is returned so that the delivery can be retried.
func updateStatus(ctx context.Context, d Deps, meta revoke.Meta, users []string, res revoke.Result, final bool) error {
	var outcomes []revoke.UserResult
	for _, u := range res.Results {
		if u.Status != revoke.StatusQueued && (final || !u.Status.Retryable()) {
			outcomes = append(outcomes, u)
		}
	}
	if len(outcomes) == 0 {
		return nil
	}
	apply := func(record []byte) ([]byte, error) { return applyOutcomes(record, outcomes) }
	err := d.State.UpdateStatus(ctx, meta.StatusHandle, d.StatusTTL, apply)
	if errors.Is(err, state.ErrNotFound) {
		var record []byte
		if record, err = rebuiltStatus(meta, users, res.DryRun, outcomes); err == nil {
			err = d.State.PutStatus(ctx, meta.StatusHandle, record, d.StatusTTL)
		}
		if err == nil {
			d.Logger.Info("status rebuilt from the message", "request_id", meta.RequestID)
		}
	}
	if err != nil {
		// The outcome itself is recorded (stdout, telemetry); only the link lags.
		d.Logger.Warn("status not updated", "request_id", meta.RequestID, "error", err)
	}
	return err
}

// rebuiltStatus is a status record made from a deferred message alone: its users queued, then
// the outcomes applied. Users the original request finished itself are not in the message, so
// the link shows the message's users only.
func rebuiltStatus(meta revoke.Meta, users []string, dryRun bool, outcomes []revoke.UserResult) ([]byte, error) {
	res := revoke.Result{ID: meta.RequestID, DryRun: dryRun, Results: make([]revoke.UserResult, len(users))}
	for i, u := range users {
		res.Results[i] = revoke.UserResult{UPN: u, Status: revoke.StatusQueued}
	}
	res.Status = revoke.Overall(res.Results)
	record, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	return applyOutcomes(record, outcomes)
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

// summary counts outcomes without naming users: host logs are read more widely than telemetry.
func summary(res revoke.Result) string {
	counts := map[revoke.Status]int{}
	for _, u := range res.Results {
		counts[u.Status]++
	}
	parts := make([]string, 0, len(counts))
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d users: %s", len(res.Results), strings.Join(parts, " "))
}
