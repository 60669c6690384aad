package revoke

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// A status record is a request's result as it stands (Result as JSON, with the request's
// callbackUrl), kept in Statuses under its handle. Key: the handle alone, 128 random bits that
// no two requests share. A deferred request's record is created before its message is enqueued,
// so the queue trigger always finds it, and it is updated in place (ETag) as users reach their
// final outcome and as the sign-in watch adds its checks.

// statusDeliveryMargin is how long after its signature's oldest accepted age a deferred message
// may still be worked on: the delivery that starts just in time, and its bookkeeping.
const statusDeliveryMargin = time.Hour

// StatusTTL is how long a status record is kept after its last write: IDEMPOTENCY_TTL, but never
// less than a deferred message can live — it is accepted until QUEUE_SIGNATURE_MAX_AGE — so that a
// short IDEMPOTENCY_TTL does not expire a link whose message is still queued.
func StatusTTL(idempotencyTTL, queueMaxAge time.Duration) time.Duration {
	return max(idempotencyTTL, queueMaxAge+statusDeliveryMargin)
}

// statusRecord is a status record as stored: the request's result as it stands, and where its
// outcome events go (read by the sign-in watch, whose checks carry only the handle). A status
// link answers with the result alone: the callback URL is never shown.
type statusRecord struct {
	Result
	CallbackURL string `json:"callbackUrl,omitempty"`
}

// Status reads the result behind a status link as it stands now: ErrNotFound for an unknown or
// expired handle, ErrUnavailable when the shared state cannot be read right now.
func (l *Lifecycle) Status(ctx context.Context, handle string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, stateBudget)
	defer cancel()
	record, err := l.cfg.Store.GetStatus(ctx, handle)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if err := json.Unmarshal(record, &res); err != nil {
		return Result{}, err
	}
	if len(res.Results) == 0 {
		return Result{}, errors.New("status record without users")
	}
	res.Status = Overall(res.Results)
	return res, nil
}

// updateStatus records a deferred request's outcomes in its status record: every final one, and
// on the last delivery the throttled and failed ones too, since they are final then. A record
// that is missing — its instance could not write it to the table — is rebuilt from what the
// signed message carries: the request id, the handle and the message's users, queued. Any other
// error is returned so that the delivery can be retried.
func (l *Lifecycle) updateStatus(ctx context.Context, meta Meta, users []string, res Result, final bool) error {
	var outcomes []UserResult
	for _, u := range res.Results {
		if u.Status != StatusQueued && (final || !u.Status.Retryable()) {
			outcomes = append(outcomes, u)
		}
	}
	if len(outcomes) == 0 {
		return nil
	}
	apply := func(record []byte) ([]byte, error) { return applyOutcomes(record, outcomes) }
	err := l.cfg.Store.UpdateStatus(ctx, meta.StatusHandle, l.cfg.StatusTTL, apply)
	if errors.Is(err, ErrNotFound) {
		var record []byte
		if record, err = rebuiltStatus(meta, users, res.DryRun, outcomes); err == nil {
			err = l.cfg.Store.PutStatus(ctx, meta.StatusHandle, record, l.cfg.StatusTTL)
		}
		if err == nil {
			l.cfg.Logger.Info("status rebuilt from the message", "request_id", meta.RequestID)
		}
	}
	if err != nil {
		// The outcome itself is recorded (stdout, telemetry); only the link lags.
		l.cfg.Logger.Warn("status not updated", "request_id", meta.RequestID, "error", err)
	}
	return err
}

// rebuiltStatus is a status record made from a deferred message alone: its users queued, then
// the outcomes applied. Users the original request finished itself are not in the message, so
// the link shows the message's users only.
func rebuiltStatus(meta Meta, users []string, dryRun bool, outcomes []UserResult) ([]byte, error) {
	res := Result{ID: meta.RequestID, DryRun: dryRun, Results: make([]UserResult, len(users))}
	for i, u := range users {
		res.Results[i] = UserResult{UPN: u, Status: StatusQueued}
	}
	res.Status = Overall(res.Results)
	record, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	return applyOutcomes(record, outcomes)
}

// applyOutcomes records users' outcomes in a status record: each replaces the entry of the same
// user (case-insensitively) while that entry is still queued. Entries finished by the HTTP request
// itself are never touched, and nobody is added.
func applyOutcomes(record []byte, outcomes []UserResult) ([]byte, error) {
	var rec statusRecord
	if err := json.Unmarshal(record, &rec); err != nil {
		return nil, err
	}
	res := &rec.Result
	changed := false
	for _, o := range outcomes {
		for i := range res.Results {
			cur := &res.Results[i]
			if cur.Status == StatusQueued && strings.EqualFold(cur.UPN, o.UPN) {
				o.UPN = cur.UPN
				*cur = o
				changed = true
				break
			}
		}
	}
	if !changed {
		return record, nil
	}
	res.Status = Overall(res.Results)
	return json.Marshal(rec)
}

// AnyQueued reports whether some user of res is still queued: its status link is then to be polled.
func AnyQueued(res Result) bool {
	for _, u := range res.Results {
		if u.Status == StatusQueued {
			return true
		}
	}
	return false
}

// StatusDeferrer wraps the queue's Deferrer so that a deferred request's status record exists
// before its message does: the queue trigger may finish the message before the HTTP response is
// even written. Requests without a status handle (messages enqueued by others) pass through.
type StatusDeferrer struct {
	Next     Deferrer
	Statuses Statuses
	TTL      time.Duration // StatusTTL
	Logger   interface {
		Warn(msg string, args ...any)
	}
}

var _ Deferrer = (*StatusDeferrer)(nil)

// Defer implements Deferrer.
func (s *StatusDeferrer) Defer(ctx context.Context, d Deferral) error {
	if h := d.Meta.StatusHandle; h != "" {
		body, err := json.Marshal(statusRecord{Result: d.Request, CallbackURL: d.Meta.CallbackURL})
		if err == nil {
			err = s.Statuses.PutStatus(ctx, h, body, s.TTL)
		}
		if err != nil && s.Logger != nil {
			// The revocation matters more than its status link: defer it anyway. The message
			// carries the handle, so the queue trigger rebuilds the record when it finishes.
			s.Logger.Warn("status record not created; the queue trigger will rebuild it", "request_id", d.Meta.RequestID, "error", err)
		}
	}
	return s.Next.Defer(ctx, d)
}

// StatusScheduler puts a status record in front of the sign-in checks of an HTTP request that
// has none yet (no user was deferred), so that every check finds a record to add its result to
// and the response's statusUrl leads somewhere. A deferred request's record exists already and
// is left alone: the queue trigger may be updating it.
type StatusScheduler struct {
	Next     Scheduler
	Statuses Statuses
	TTL      time.Duration // how long a watched request's status is kept: past its last check
	Logger   interface {
		Warn(msg string, args ...any)
	}
}

var _ Scheduler = (*StatusScheduler)(nil)

// Schedule implements Scheduler.
func (s *StatusScheduler) Schedule(ctx context.Context, job Job, revoked []UserResult, whole Result) {
	if h := job.StatusHandle; h != "" && job.Trigger == TriggerHTTP {
		_, err := s.Statuses.GetStatus(ctx, h)
		if errors.Is(err, ErrNotFound) {
			var body []byte
			// The record keeps the request's callbackUrl, so that its checks can tell the caller.
			if body, err = json.Marshal(statusRecord{Result: whole, CallbackURL: job.CallbackURL}); err == nil {
				err = s.Statuses.PutStatus(ctx, h, body, s.TTL)
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

// StatusRecords keeps the sign-in watch's results in status records (the watch's Records): a
// check's result is appended to the user's watch array, replacing an earlier result of the same
// duration, so a repeat changes nothing.
type StatusRecords struct {
	Statuses Statuses
	TTL      time.Duration
}

// errNotInRecord: the record holds no such user.
var errNotInRecord = errors.New("user not in the request status")

// AppendWatch adds entry (a check's result, with its "after") to the revoked user's watch. An
// expired record is no error: the result is reported, not stored (false).
func (s StatusRecords) AppendWatch(ctx context.Context, handle, userID, upn string, entry []byte) (bool, error) {
	var after struct {
		After string `json:"after"`
	}
	if err := json.Unmarshal(entry, &after); err != nil {
		return false, err
	}
	err := s.Statuses.UpdateStatus(ctx, handle, s.TTL, func(record []byte) ([]byte, error) {
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
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// userIndex finds the revoked user in a status record: by object ID, else as requested.
func userIndex(res Result, userID, upn string) int {
	for i, u := range res.Results {
		if u.Status == StatusRevoked && userID != "" && strings.EqualFold(u.UserID, userID) {
			return i
		}
	}
	for i, u := range res.Results {
		if u.Status == StatusRevoked && strings.EqualFold(u.UPN, upn) {
			return i
		}
	}
	return -1
}
