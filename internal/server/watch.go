package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/watch"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// WatchRunner makes sign-in checks (*watch.Watcher).
type WatchRunner interface {
	Run(ctx context.Context, d watch.Delivery) (res watch.Result, already bool, err error)
}

// maxWatchAfter is the longest WATCH_AFTER duration: a check's signature may be that much older
// than its due time, from which the message's age is counted.
const maxWatchAfter = 168 * time.Hour

// handleWatch serves POST /revoke-watch, the sign-in checks' queue trigger. Like the request
// queue's, it answers 200 when the check is finished (made, made before, or poisoned) and non-2xx
// only while a later delivery could still make it.
func handleWatch(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			d.Logger.Error("watch invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		ctx := r.Context()
		if d.Watcher == nil {
			// WATCH_AFTER was turned off while checks were queued: keep them for an operator.
			poisonCheck(ctx, w, d, inv, inv.ID, "watch_disabled")
			return
		}
		check, requestID, reason := openCheck(d, inv)
		if reason != "" {
			poisonCheck(ctx, w, d, inv, requestID, reason)
			return
		}
		last := inv.DequeueCount >= d.MaxDequeueCount
		wctx, cancel := workContext(r, d, revoke.QueueBudget)
		defer cancel()
		res, already, err := d.Watcher.Run(wctx, watch.Delivery{
			Check: check, Last: last, DequeueCount: inv.DequeueCount,
			InvocationID: r.Header.Get("X-Azure-Functions-InvocationId"),
		})
		switch {
		case errors.Is(err, watch.ErrPostponed):
			reply(w, http.StatusOK, "sign-in check "+check.After+" postponed: Graph's reports limit is busy; a copy is queued for later")
		case errors.Is(err, watch.ErrRetry):
			reply(w, http.StatusServiceUnavailable, "sign-in check not made yet; the host will retry")
		case err != nil:
			d.Logger.Error("sign-in check failed", "request_id", check.RequestID, "error", err)
			reply(w, http.StatusInternalServerError, "internal error")
		case already:
			reply(w, http.StatusOK, "sign-in check "+check.After+" was already made")
		default:
			reply(w, http.StatusOK, fmt.Sprintf("sign-in check %s: %s (%d sign-ins)", check.After, res.Finding, res.SignIns))
		}
	})
}

// openCheck verifies a check message and decodes it, or returns why it can never succeed. Only
// signed checks are accepted, whatever QUEUE_ALLOW_UNSIGNED says: the handler writes every check
// itself, and a check names a status record to write into. The signature's age is counted from
// when the check came due (revokedAt + after), not from when it was signed.
func openCheck(d Deps, inv queueInvocation) (c watch.Check, requestID, reason string) {
	requestID = inv.ID
	env, signed, err := queue.ParseMessage(inv.Message)
	switch {
	case err != nil:
		return c, requestID, "malformed_message"
	case !signed:
		return c, requestID, "unsigned_message"
	case d.Keys.Len() == 0 && d.QueueKeys.Len() == 0:
		return c, requestID, "bad_signature"
	}
	now := d.Now()
	// Checks are signed with the first queue secret; either list verifies, as for deferred requests.
	verr := webhook.ErrSignature
	for _, keys := range []webhook.Keys{d.QueueKeys, d.Keys} {
		if keys.Len() == 0 {
			continue
		}
		if _, err := keys.Verify(env.Header(), []byte(env.Body), now, d.QueueMaxAge+maxWatchAfter, d.Tolerance); err == nil {
			verr = nil
			break
		} else if errors.Is(verr, webhook.ErrSignature) {
			verr = err
		}
	}
	if verr != nil {
		return c, requestID, verr.Error()
	}
	c, err = queue.ParseCheck([]byte(env.Body))
	if err != nil {
		return c, requestID, "invalid_check"
	}
	if now.Sub(c.Due()) > d.QueueMaxAge {
		return c, c.RequestID, "expired"
	}
	return c, c.RequestID, ""
}

// poisonCheck copies a check that can never succeed to <WATCH_QUEUE>-poison, records why, and
// completes it; if the copy fails, the host retries and poisons it itself.
func poisonCheck(ctx context.Context, w http.ResponseWriter, d Deps, inv queueInvocation, requestID, reason string) {
	d.Audit.Rejected(ctx, telemetry.Rejection{Reason: reason, Trigger: revoke.TriggerQueue, RequestID: requestID})
	if d.WatchPoison == nil {
		reply(w, http.StatusOK, "check rejected ("+reason+"); no storage configured to keep a copy")
		return
	}
	if err := d.WatchPoison.Poison(ctx, inv.Message); err != nil {
		d.Logger.Error("poison copy failed", "request_id", requestID, "error", err)
		reply(w, http.StatusServiceUnavailable, "check rejected ("+reason+"); poison copy failed, retrying")
		return
	}
	reply(w, http.StatusOK, "check rejected ("+reason+") and copied to the poison queue")
}
