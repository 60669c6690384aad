package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
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
		wctx, cancel := workContext(r, d, queueBudget)
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

// watched reports whether res has users the sign-in watch follows: then the request has a
// status record and a status link, even when answered 200.
func watched(d Deps, res revoke.Result) bool {
	if d.Watcher == nil || res.DryRun {
		return false
	}
	for _, u := range res.Results {
		if u.Status == revoke.StatusRevoked {
			return true
		}
	}
	return false
}

// StatusScheduler puts a status record in front of the sign-in checks of an HTTP request that
// has none yet (no user was deferred), so that every check finds a record to add its result to
// and the response's statusUrl leads somewhere. A deferred request's record exists already and
// is left alone: the queue trigger may be updating it.
type StatusScheduler struct {
	Next   revoke.Scheduler
	Status Statuses
	TTL    time.Duration // how long a watched request's status is kept: past its last check
	Logger interface {
		Warn(msg string, args ...any)
	}
}

var _ revoke.Scheduler = (*StatusScheduler)(nil)

// Schedule implements revoke.Scheduler.
func (s *StatusScheduler) Schedule(ctx context.Context, job revoke.Job, revoked []revoke.UserResult, whole revoke.Result) {
	if h := job.StatusHandle; h != "" && job.Trigger == revoke.TriggerHTTP {
		_, err := s.Status.GetStatus(ctx, h)
		if errors.Is(err, state.ErrNotFound) {
			var body []byte
			// The record keeps the request's callbackUrl, so that its checks can tell the caller.
			if body, err = json.Marshal(statusRecord{Result: whole, CallbackURL: job.CallbackURL}); err == nil {
				err = s.Status.PutStatus(ctx, h, body, s.TTL)
			}
		}
		if err != nil {
			// The checks matter more than the link: they are still made and reported.
			if s.Logger != nil {
				s.Logger.Warn("status record for the sign-in watch not created", "request_id", job.RequestID, "error", err)
			}
			job.StatusHandle = ""
		}
	}
	s.Next.Schedule(ctx, job, revoked, whole)
}

// checkScope is the state scope of sign-in checks' once-only claims. Callers' scopes are
// "webhook" and "entra:<tenant>:<client>", so no request id can meet a check's key.
const checkScope = "watch-check"

// checkBodyHash binds every check key to the same "body": a key is the check itself.
const checkBodyHash = "sign-in-check"

// CheckOnce implements watch.Once on the state store's request claims: key = scope
// "watch-check" and the check's key (request id, caller, user's object ID, duration). Only
// deliveries of the same check — redeliveries, or a copy on another instance — share it. A
// finished check is kept TTL (past the last delivery its message could have).
type CheckOnce struct {
	Requests Requests
	Lease    time.Duration // a delivery's budget and a margin
	TTL      time.Duration
}

var _ watch.Once = CheckOnce{}

// Begin implements watch.Once.
func (o CheckOnce) Begin(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, stateBudget)
	defer cancel()
	c, err := o.Requests.Claim(ctx, state.RequestKey{Scope: checkScope, ID: key}, checkBodyHash, o.Lease)
	var busy *state.InProgressError
	switch {
	case errors.As(err, &busy):
		return "", false, watch.ErrBusy
	case err != nil:
		return "", false, err
	case c.Replay != nil:
		return "", true, nil
	}
	return c.Lease, false, nil
}

// Finish implements watch.Once.
func (o CheckOnce) Finish(ctx context.Context, key, lease string, result []byte) error {
	ctx, cancel := context.WithTimeout(ctx, stateBudget)
	defer cancel()
	return o.Requests.Finish(ctx, state.RequestKey{Scope: checkScope, ID: key}, lease, state.Response{Status: http.StatusOK, Body: result}, o.TTL)
}

// Abandon implements watch.Once.
func (o CheckOnce) Abandon(ctx context.Context, key, lease string) error {
	ctx, cancel := context.WithTimeout(ctx, stateBudget)
	defer cancel()
	return o.Requests.Release(ctx, state.RequestKey{Scope: checkScope, ID: key}, lease, nil)
}

// StatusRecords implements watch.Records on status records: a check's result is appended to
// the user's watch array (replacing an earlier result of the same duration, so a repeat changes
// nothing).
type StatusRecords struct {
	Status Statuses
	TTL    time.Duration
}

var _ watch.Records = StatusRecords{}

// errNotInRecord: the record holds no such user.
var errNotInRecord = errors.New("user not in the request status")

// AppendWatch implements watch.Records.
func (s StatusRecords) AppendWatch(ctx context.Context, handle, userID, upn string, entry []byte) (bool, error) {
	var after struct {
		After string `json:"after"`
	}
	if err := json.Unmarshal(entry, &after); err != nil {
		return false, err
	}
	err := s.Status.UpdateStatus(ctx, handle, s.TTL, func(record []byte) ([]byte, error) {
		var res statusRecord // the whole record: its callbackUrl must survive the update
		if err := json.Unmarshal(record, &res); err != nil {
			return nil, err
		}
		i := userIndex(res.Result, userID, upn)
		if i < 0 {
			return nil, errNotInRecord
		}
		u := &res.Results[i]
		for j, old := range u.Watch {
			var o struct {
				After string `json:"after"`
			}
			if json.Unmarshal(old, &o) == nil && o.After == after.After {
				u.Watch[j] = entry
				return json.Marshal(res)
			}
		}
		u.Watch = append(u.Watch, entry)
		return json.Marshal(res)
	})
	if errors.Is(err, state.ErrNotFound) {
		return false, nil // expired: reported, not stored
	}
	return err == nil, err
}

// userIndex finds the revoked user in a status record: by object ID, else as requested.
func userIndex(res revoke.Result, userID, upn string) int {
	for i, u := range res.Results {
		if u.Status == revoke.StatusRevoked && userID != "" && strings.EqualFold(u.UserID, userID) {
			return i
		}
	}
	for i, u := range res.Results {
		if u.Status == revoke.StatusRevoked && strings.EqualFold(u.UPN, upn) {
			return i
		}
	}
	return -1
}

// queuedIn reports whether a remembered response body has a queued user: its status link is
// then a Location to poll, not only where the sign-in checks gather.
func queuedIn(body []byte) bool {
	var res revoke.Result
	return json.Unmarshal(body, &res) == nil && anyQueued(res)
}
