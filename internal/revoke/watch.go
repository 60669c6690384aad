package revoke

import (
	"context"
	"time"
)

// AccessTokenLifetime is how long an access token issued just before a revocation may still be
// used by an app without Continuous Access Evaluation: Entra's default lifetime is 60–90 minutes,
// so a revocation's accessUntil is its revokedAt plus the longest of them.
const AccessTokenLifetime = 90 * time.Minute

// scheduleBudget bounds the scheduling of sign-in checks after a job, which may run after the
// job's own budget was spent.
const scheduleBudget = 10 * time.Second

// Scheduler arranges sign-in checks for users this job revoked (WATCH_AFTER). It is called once
// per run with the users revoked in that run (not those an earlier attempt finished, which that
// attempt scheduled) and the whole result as the caller is about to see it. It never fails the
// revocation: a check that cannot be scheduled is logged and recorded by the scheduler itself.
type Scheduler interface {
	Schedule(ctx context.Context, job Job, revoked []UserResult, whole Result)
}

// schedule hands the users revoked in this run to the scheduler.
func (e *Engine) schedule(ctx context.Context, job Job, done map[int]UserResult, res Result) {
	if e.cfg.Scheduler == nil || job.DryRun {
		return
	}
	var revoked []UserResult
	for i, r := range res.Results {
		if _, ok := done[i]; !ok && r.Status == StatusRevoked {
			revoked = append(revoked, r)
		}
	}
	if len(revoked) == 0 {
		return
	}
	// Like a deferral, the checks get a budget of their own: the job's may be spent.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scheduleBudget)
	defer cancel()
	e.cfg.Scheduler.Schedule(sctx, job, revoked, res)
}
