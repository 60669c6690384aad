package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/watch"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// opener verifies and opens what the queue triggers deliver: requests and sign-in checks.
type opener struct {
	keys          webhook.Keys  // WEBHOOK_SECRETS
	queueKeys     webhook.Keys  // QUEUE_SECRETS
	allowUnsigned bool          // QUEUE_ALLOW_UNSIGNED (requests only)
	maxAge        time.Duration // QUEUE_SIGNATURE_MAX_AGE
	tolerance     time.Duration // WEBHOOK_TOLERANCE, for clocks ahead
	now           func() time.Time
}

// maxWatchAfter is the longest WATCH_AFTER duration: a check's signature may be that much older
// than its due time, from which the message's age is counted.
const maxWatchAfter = 168 * time.Hour

// message verifies a request message's signature (or accepts it unsigned when allowed) and
// returns the request body, or the reason it can never succeed. A signed body may carry the origin
// of a deferred request (queue.Origin): its request id, caller and status handle then stand for
// the message's, since only a holder of a secret can have written them.
func (o opener) message(inv queueInvocation) (body []byte, meta revoke.Meta, reason string) {
	meta.RequestID = inv.ID
	env, signed, err := queue.ParseMessage(inv.Message)
	if err != nil {
		return nil, meta, "malformed_message"
	}
	if !signed {
		if !o.allowUnsigned {
			return nil, meta, "unsigned_message"
		}
		// An unsigned body goes to the strict request decoder as it is, which refuses an origin.
		meta.Caller = "queue:unsigned"
		return inv.Message, meta, ""
	}
	if webhook.ValidID(env.ID) {
		meta.RequestID = env.ID
	}
	caller, err := o.verify(env, o.now(), o.maxAge)
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

// check verifies a check message and decodes it, or returns why it can never succeed. Only
// signed checks are accepted, whatever QUEUE_ALLOW_UNSIGNED says: the handler writes every check
// itself, and a check names a status record to write into. The signature's age is counted from
// when the check came due (revokedAt + after), not from when it was signed.
func (o opener) check(inv queueInvocation) (c watch.Check, requestID, reason string) {
	requestID = inv.ID
	env, signed, err := queue.ParseMessage(inv.Message)
	switch {
	case err != nil:
		return c, requestID, "malformed_message"
	case !signed:
		return c, requestID, "unsigned_message"
	}
	now := o.now()
	if _, err := o.verify(env, now, o.maxAge+maxWatchAfter); err != nil {
		return c, requestID, err.Error()
	}
	c, err = queue.ParseCheck([]byte(env.Body))
	if err != nil {
		return c, requestID, "invalid_check"
	}
	if now.Sub(c.Due()) > o.maxAge {
		return c, c.RequestID, "expired"
	}
	return c, c.RequestID, ""
}

// verify checks a signed message against WEBHOOK_SECRETS, then QUEUE_SECRETS, and names the key
// that signed it ("webhook:<index>" or "queue:<index>"). Of two refusals the more telling one is
// kept (expired says the signature was good).
func (o opener) verify(env queue.Envelope, now time.Time, maxAge time.Duration) (string, error) {
	err := webhook.ErrSignature
	for _, set := range []struct {
		keys   webhook.Keys
		prefix string
	}{{o.keys, "webhook:"}, {o.queueKeys, "queue:"}} {
		if set.keys.Len() == 0 {
			continue
		}
		s, verr := set.keys.Verify(env.Header(), []byte(env.Body), now, maxAge, o.tolerance)
		if verr == nil {
			return set.prefix + strconv.Itoa(s.KeyIndex), nil
		}
		if errors.Is(err, webhook.ErrSignature) {
			err = verr
		}
	}
	return "", err
}

// rejecter completes what a queue trigger delivered and can never succeed: it records why (the
// WebhookRejected event is the log line) and keeps a copy in the queue's poison queue. If the
// copy fails the invocation fails, so the host retries and poisons it itself.
type rejecter struct {
	audit  Auditor
	poison Poisoner // nil without storage
	logger *slog.Logger
	what   string // "message" or "check", for the host's log
}

func (j rejecter) reject(ctx context.Context, w http.ResponseWriter, text []byte, requestID, reason string) {
	j.audit.Rejected(ctx, telemetry.Rejection{Reason: reason, Trigger: revoke.TriggerQueue, RequestID: requestID})
	rejected := j.what + " rejected (" + reason + ")"
	if j.poison == nil {
		reply(w, http.StatusOK, rejected+"; no storage configured to keep a copy")
		return
	}
	if err := j.poison.Poison(ctx, text); err != nil {
		j.logger.Error("poison copy failed", "request_id", requestID, "error", err)
		reply(w, http.StatusServiceUnavailable, rejected+"; poison copy failed, retrying")
		return
	}
	reply(w, http.StatusOK, rejected+" and copied to the poison queue")
}
