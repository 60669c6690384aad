package watch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// Delay is one WATCH_AFTER duration, with its text as written.
type Delay struct {
	Text     string
	Duration time.Duration
}

// Enqueuer puts a check on the watch queue, hidden until visibleIn has passed (a Storage queue's
// visibility delay).
type Enqueuer interface {
	EnqueueCheck(ctx context.Context, c Check, visibleIn time.Duration) error
}

// UserLookup reads a user's object ID when the request named the user by UPN.
type UserLookup interface {
	LookupUser(ctx context.Context, user string) (revoke.User, error)
}

// ScheduleFailure is a check that could not be scheduled: the revocation stands, but nobody
// will look at the user's sign-ins unless an operator does.
type ScheduleFailure struct {
	RequestID, UPN, After, Reason string
	Err                           error
}

// Scheduler implements revoke.Scheduler: one check per revoked user and Delay, visible at
// revokedAt + delay. It never fails or delays a revocation beyond its context: failures are
// logged and reported to OnFailure.
type Scheduler struct {
	Queue     Enqueuer
	Users     UserLookup
	After     []Delay
	Logger    *slog.Logger
	Now       func() time.Time
	OnFailure func(ctx context.Context, f ScheduleFailure) // optional: telemetry
}

var _ revoke.Scheduler = (*Scheduler)(nil)

// scheduleConcurrency bounds enqueues in flight for one job (a 100-user request).
const scheduleConcurrency = 8

// Schedule implements revoke.Scheduler.
func (s *Scheduler) Schedule(ctx context.Context, job revoke.Job, revoked []revoke.UserResult, _ revoke.Result) {
	sem := make(chan struct{}, scheduleConcurrency)
	var wg sync.WaitGroup
	for _, r := range revoked {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s.user(ctx, job, r)
		})
	}
	wg.Wait()
}

func (s *Scheduler) user(ctx context.Context, job revoke.Job, r revoke.UserResult) {
	revokedAt := r.RevokedAt
	if revokedAt.IsZero() {
		s.fail(ctx, ScheduleFailure{RequestID: job.RequestID, UPN: r.UPN, Reason: "no_revocation_time", Err: errors.New("revoked without a time")})
		return
	}
	userID := r.UserID
	if userID == "" && request.IsObjectID(r.UPN) {
		userID = r.UPN
	}
	if userID == "" {
		// Sign-ins are filtered by object ID; the revocation named a UPN and nothing looked the
		// user up (no guard rail needed it), so look it up now.
		u, err := s.Users.LookupUser(ctx, r.UPN)
		if err != nil {
			s.fail(ctx, ScheduleFailure{RequestID: job.RequestID, UPN: r.UPN, Reason: "lookup_failed", Err: err})
			return
		}
		userID = u.ID
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	for _, d := range s.After {
		c := Check{
			RequestID: job.RequestID, Caller: job.Caller, StatusHandle: job.StatusHandle, Ticket: job.Ticket,
			UPN: r.UPN, UserID: userID, RevokedAt: revokedAt, After: d.Text, Delay: d.Duration,
		}
		visibleIn := max(0, c.Due().Sub(now()))
		if err := s.Queue.EnqueueCheck(ctx, c, visibleIn); err != nil {
			s.fail(ctx, ScheduleFailure{RequestID: job.RequestID, UPN: r.UPN, After: d.Text, Reason: "enqueue_failed", Err: err})
		}
	}
}

func (s *Scheduler) fail(ctx context.Context, f ScheduleFailure) {
	if s.Logger != nil {
		s.Logger.Error("sign-in check not scheduled", "request_id", f.RequestID, "after", f.After, "reason", f.Reason, "error", f.Err)
	}
	if s.OnFailure != nil {
		s.OnFailure(ctx, f)
	}
}
