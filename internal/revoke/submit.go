package revoke

import (
	"context"
	"errors"
)

// Submission is a request whose caller waits for the answer (the webhook route, the CLI),
// decoded and authenticated by its adapter.
type Submission struct {
	// Job is the request: its users and Meta (trigger, request id, caller, invocation id,
	// callbackUrl). Defer is DeferOnFailure, or DeferAll when the caller prefers an answer at
	// once; without storage nothing is deferred whatever it says.
	Job Job
	// Remember: the request id is the caller's own, so it is claimed under (Scope, id) before any
	// work and its final answer replayed to a repeat. A generated id is never seen again.
	Remember bool
	Scope    string
	// Body is the request as sent: its hash binds the id to it, so the same id with another body
	// is ErrConflict.
	Body []byte
	// Invalid, when set, is the answer to a request that could not be decoded; it is kept like
	// any other answer when Invalid.Final.
	Invalid *Answer
	// StatusURL makes the status link of a handle, as this caller reaches the app.
	StatusURL func(handle string) string
}

// Submit answers a request. Only one attempt at a (Scope, id) runs at a time, on any instance; a
// final answer is kept for replay, and an answer a retry could change releases the claim with
// the users already finished, so that the retry skips them.
//
// Errors: ErrConflict (the id was used with another body), *InProgressError (another attempt
// holds it), *RateLimitedError (the rate guard refused the job), and anything else is internal.
func (l *Lifecycle) Submit(ctx context.Context, s Submission) (Answer, error) {
	if !s.Remember {
		ans, _, err := l.answer(ctx, s, nil)
		return ans, err
	}
	key := RequestKey{Scope: s.Scope, ID: s.Job.RequestID}
	cctx, cancel := context.WithTimeout(ctx, stateBudget)
	claim, err := l.cfg.Store.Claim(cctx, key, contentHash(s.Body), claimLease)
	cancel()
	var busy *InProgressError
	switch {
	case errors.Is(err, ErrConflict), errors.As(err, &busy):
		return Answer{}, err
	case err != nil:
		// The store failed outright. A revocation already authorised must not be lost to an
		// outage of its bookkeeping: run it, unprotected against a concurrent duplicate.
		l.cfg.Logger.Error("request claim failed; running without idempotency", "request_id", key.ID, "error", err)
		ans, _, err := l.answer(ctx, s, nil)
		return ans, err
	case claim.Replay != nil:
		return Answer{Status: claim.Replay.Status, Body: claim.Replay.Body, Final: true, Replayed: true}, nil
	}

	// Whatever happens from here — a panic included — the claim ends with an answer kept or
	// released, never held until its lease runs out.
	recorded := false
	defer func() {
		if !recorded {
			bctx, cancel := bookkeeping(ctx)
			defer cancel()
			if err := l.cfg.Store.Release(bctx, key, claim.Lease, nil); err != nil {
				l.cfg.Logger.Warn("request release failed", "request_id", key.ID, "error", err)
			}
		}
	}()
	ans, progress, err := l.answer(ctx, s, decodeProgress(claim.Progress))
	bctx, bcancel := bookkeeping(ctx)
	defer bcancel()
	var kerr error
	if err == nil && ans.Final {
		kerr = l.cfg.Store.Finish(bctx, key, claim.Lease, Response{Status: ans.Status, Body: ans.Body}, l.cfg.IdempotencyTTL)
	} else {
		kerr = l.cfg.Store.Release(bctx, key, claim.Lease, progress)
	}
	recorded = true
	if kerr != nil {
		// The answer stands; only its replay (or the skipping of finished users) is lost.
		l.cfg.Logger.Warn("request outcome not remembered", "request_id", key.ID, "error", kerr)
	}
	return ans, err
}

// answer runs one attempt at a submission; prior holds what an earlier attempt at the same id
// and body finished. It returns the answer and, when the answer is not final, the progress a
// retry starts from.
func (l *Lifecycle) answer(ctx context.Context, s Submission, prior []UserResult) (Answer, []byte, error) {
	if s.Invalid != nil {
		return *s.Invalid, nil, nil
	}
	job := s.Job
	job.Final, job.Prior = true, prior
	if !l.cfg.CanDefer || s.StatusURL == nil {
		job.Defer = DeferNever
	}
	if job.Defer != DeferNever {
		// Only used if some user is deferred or watched; cheap enough to make for every request.
		job.StatusHandle = newHandle()
		if job.CallbackURL != "" {
			job.StatusURL = s.StatusURL(job.StatusHandle)
		}
	}

	wctx, cancel := l.workContext(ctx, HTTPBudget)
	defer cancel()
	res, err := l.cfg.Engine.Run(wctx, job)
	if err != nil {
		return Answer{}, nil, err
	}
	link, poll := "", AnyQueued(res) && job.StatusHandle != ""
	if poll || (job.StatusHandle != "" && l.watched(res)) {
		// Without queued users the answer is final; the link only gathers the sign-in checks.
		link = s.StatusURL(job.StatusHandle)
	}
	ans := l.cfg.Render.Render(res, link, poll)
	ans.Final = replayable(res)
	var p []byte
	if !ans.Final {
		p = encodeProgress(res.Results)
	}
	l.completedNow(ctx, job.Meta, res, ans)
	return ans, p, nil
}
