package revoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/request"
)

// verifySkew is how much earlier than our own start a read-back signInSessionsValidFromDateTime
// may be and still prove the revocation: Graph and our clock are not synchronised.
const verifySkew = 5 * time.Minute

// deferBudget bounds an enqueue after the job's own budget may have run out.
const deferBudget = 5 * time.Second

// DeferMode says when users go to the queue instead of Graph.
type DeferMode int

// Defer modes.
const (
	DeferNever     DeferMode = iota // the queue trigger itself, the CLI, or no storage
	DeferOnFailure                  // queue users whose outcome would be throttled or failed
	DeferAll                        // "Prefer: respond-async": queue every user that passes the guard rails
)

// Config wires the engine to its collaborators and the tenant's guard rails.
type Config struct {
	Revoker  Revoker
	Users    UserReader
	Deferrer Deferrer // nil when no storage is configured
	Sink     OutcomeSink
	Logger   *slog.Logger

	ProtectedUsers []string // UPNs and/or object IDs never revoked
	AllowedDomains []string // when set, only UPNs in these domains
	DryRun         bool     // DRY_RUN: every request is a dry run
	Verify         bool     // VERIFY_REVOCATION

	Concurrency int       // Graph calls in flight per instance
	RateGuard   RateGuard // MAX_REVOCATIONS_PER_MINUTE; nil = unlimited
	Scheduler   Scheduler // WATCH_AFTER: sign-in checks after each revocation; nil = none
	Now         func() time.Time
}

// RateGuard holds revocations to MAX_REVOCATIONS_PER_MINUTE against a runaway or compromised
// caller: across all instances when the handler's state is shared, else per process.
type RateGuard interface {
	// Take reserves n revocations, or reports how long until they would be available. A job
	// larger than the whole limit is let through on a full bucket: slowed, never refused forever.
	Take(ctx context.Context, n int) (wait time.Duration, ok bool)
	// Refund returns tokens for revocations that did not reach Graph.
	Refund(n int)
}

// unlimited is the RateGuard of an engine configured without one.
type unlimited struct{}

func (unlimited) Take(context.Context, int) (time.Duration, bool) { return 0, true }
func (unlimited) Refund(int)                                      {}

// Engine runs revocation jobs. One Engine serves every request of a process, so its concurrency
// limit is per instance.
type Engine struct {
	cfg     Config
	sem     chan struct{}
	protUPN map[string]bool
	protID  map[string]bool
	domains map[string]bool
}

// New returns an engine for cfg.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.RateGuard == nil {
		cfg.RateGuard = unlimited{}
	}
	e := &Engine{
		cfg:     cfg,
		sem:     make(chan struct{}, cfg.Concurrency),
		protUPN: map[string]bool{},
		protID:  map[string]bool{},
		domains: map[string]bool{},
	}
	for _, p := range cfg.ProtectedUsers {
		if request.IsObjectID(p) {
			e.protID[strings.ToLower(p)] = true
		} else {
			e.protUPN[strings.ToLower(p)] = true
		}
	}
	for _, d := range cfg.AllowedDomains {
		e.domains[strings.ToLower(strings.TrimPrefix(d, "@"))] = true
	}
	return e
}

// Job is one request: its users and what to do with them.
type Job struct {
	Meta
	Users       []string
	Ticket      string
	Reason      string
	RequestedBy string
	DryRun      bool
	Defer       DeferMode
	// Final marks the last chance: throttled and failed outcomes are recorded as final rather than
	// left for a retry (HTTP requests, and a queue message's last delivery).
	Final bool
	// LastDelivery marks a queue message's last delivery: a refusal by the rate guard is then
	// recorded as a final throttled outcome instead of failing the job.
	LastDelivery bool
	// WaitForRate makes the job wait for the rate guard (within ctx) instead of failing at once:
	// a queue drains at the guard's pace rather than burning its deliveries on refusals.
	WaitForRate bool
	// Prior holds outcomes of an earlier attempt at the same request (a redelivered message, a
	// caller's retry). They are matched to Users by the user as requested, case-insensitively,
	// never by position; only final outcomes count, and a user with one is not processed again.
	Prior []UserResult
	// Settled, when set, is called with each user's outcome the moment it is final (after its
	// audit record), from that user's goroutine, so that progress is saved as it is made: a crash
	// then repeats only the users in flight. Outcomes decided at the end (queued, or left for a
	// retry) are not passed.
	Settled func(UserResult)
}

// ErrorInfo is Graph's (or our) error code and message for one user.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// UserResult is the outcome for one user, as returned to the caller.
type UserResult struct {
	UPN               string     `json:"upn"`
	Status            Status     `json:"status"`
	UserID            string     `json:"userId,omitempty"`
	RevokedAt         time.Time  `json:"revokedAt,omitzero"`   // UTC, whole seconds
	AccessUntil       time.Time  `json:"accessUntil,omitzero"` // RevokedAt + AccessTokenLifetime
	Verified          *bool      `json:"verified,omitempty"`
	SessionsValidFrom time.Time  `json:"sessionsValidFrom,omitzero"` // UTC, whole seconds
	GraphRequestID    string     `json:"graphRequestId,omitempty"`
	Warning           string     `json:"warning,omitempty"`
	Error             *ErrorInfo `json:"error,omitempty"`
	// Watch holds the sign-in checks made after the revocation, as the watch wrote them; the
	// engine only carries them through status records.
	Watch []json.RawMessage `json:"watch,omitempty"`

	RetryAfter    time.Duration `json:"-"` // for throttled
	Guard         string        `json:"-"` // the guard-rail decision, for audit
	GraphDuration time.Duration `json:"-"` // time spent in Graph calls
	Attempts      int           `json:"-"` // Graph HTTP attempts
}

// Result is the outcome of a job.
type Result struct {
	ID      string       `json:"id"`
	Status  Status       `json:"status"`
	DryRun  bool         `json:"dryRun"`
	Results []UserResult `json:"results"`
}

// RetryAfter returns the longest Retry-After among throttled users.
func (r Result) RetryAfter() time.Duration {
	var d time.Duration
	for _, u := range r.Results {
		d = max(d, u.RetryAfter)
	}
	return d
}

// Retryable reports whether some user's outcome may change on a later attempt.
func (r Result) Retryable() bool {
	for _, u := range r.Results {
		if u.Status.Retryable() {
			return true
		}
	}
	return false
}

// RateLimitedError is returned when the rate guard (MAX_REVOCATIONS_PER_MINUTE, across instances
// when the state is shared) refuses a job.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("revocation rate limit reached, retry after %s", e.RetryAfter)
}

// ErrNoUsers is returned for a job without users; request validation prevents it.
var ErrNoUsers = errors.New("no users in job")

// Run processes a job. Users are processed concurrently within the instance's Graph concurrency
// and results keep the input order. The only errors are *RateLimitedError (nothing was done) and
// ErrNoUsers.
func (e *Engine) Run(ctx context.Context, job Job) (Result, error) {
	if len(job.Users) == 0 {
		return Result{}, ErrNoUsers
	}
	job.DryRun = job.DryRun || e.cfg.DryRun
	if job.Defer != DeferNever && e.cfg.Deferrer == nil {
		job.Defer = DeferNever
	}
	res := Result{ID: job.RequestID, DryRun: job.DryRun, Results: make([]UserResult, len(job.Users))}
	done := priorFor(job)

	todo := len(job.Users) - len(done)
	var reserved int
	if !job.DryRun && job.Defer != DeferAll && todo > 0 {
		if wait, ok := e.reserve(ctx, job, todo); !ok {
			if !job.LastDelivery {
				return Result{}, &RateLimitedError{RetryAfter: wait}
			}
			return e.finishRateLimited(ctx, job, done, res, wait), nil
		}
		reserved = todo
	}

	started := make([]time.Time, len(job.Users))
	usedCount := make([]bool, len(job.Users))
	recorded := make([]bool, len(job.Users))
	one := func(i int) {
		started[i] = e.cfg.Now()
		r, calledRevoke := e.processRecovered(ctx, job, job.Users[i])
		usedCount[i] = calledRevoke
		res.Results[i] = r
		if settled(job, r) {
			// Recorded at once: a revocation Graph accepted is never without its audit record,
			// whatever happens to the rest of the job or the process.
			e.record(ctx, job, r, started[i])
			recorded[i] = true
			if job.Settled != nil {
				job.Settled(r)
			}
		}
	}
	if todo == 1 {
		// The common case runs on the caller's goroutine, whose stack has already grown to what
		// the Graph SDK's deep call chain needs; a fresh goroutine would grow and copy its stack
		// on every request.
		for i := range job.Users {
			if r, ok := done[i]; ok {
				res.Results[i] = r
			} else {
				one(i)
			}
		}
	} else {
		var wg sync.WaitGroup
		for i := range job.Users {
			if r, ok := done[i]; ok {
				res.Results[i] = r
				continue
			}
			wg.Go(func() { one(i) })
		}
		wg.Wait()
	}

	if refund := reserved - countTrue(usedCount); refund > 0 {
		e.cfg.RateGuard.Refund(refund)
	}

	e.deferUsers(ctx, job, done, &res)
	res.Status = Overall(res.Results)
	e.schedule(ctx, job, done, res)

	for i := range res.Results {
		if _, ok := done[i]; ok || recorded[i] {
			continue
		}
		r := res.Results[i]
		if r.Status.Retryable() && !job.Final {
			continue // the queue retries this delivery; the final attempt records it
		}
		e.record(ctx, job, r, started[i])
	}
	return res, nil
}

// settled reports whether r is final as soon as it is known: not queued, and not an outcome that
// deferral or a retry may still change.
func settled(job Job, r UserResult) bool {
	switch {
	case r.Status == StatusQueued:
		return false
	case r.Status.Retryable():
		return job.Final && job.Defer == DeferNever
	}
	return true
}

// processRecovered is process, with a panic in it turned into that user's failure: the other
// users of the job, and every other request of the process, carry on.
func (e *Engine) processRecovered(ctx context.Context, job Job, user string) (r UserResult, calledRevoke bool) {
	defer func() {
		if p := recover(); p != nil {
			e.cfg.Logger.Error("panic while revoking a user", "request_id", job.RequestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r = UserResult{UPN: user, Status: StatusFailed, Guard: r.Guard,
				Error: &ErrorInfo{Code: "internal", Message: "internal error"}}
			// Whether Graph was called is unknown: the token stays spent (never over-use).
			calledRevoke = true
		}
	}()
	return e.process(ctx, job, user)
}

// reserve takes n tokens from the rate guard, waiting for them when the job allows and ctx has
// the time.
func (e *Engine) reserve(ctx context.Context, job Job, n int) (time.Duration, bool) {
	for {
		wait, ok := e.cfg.RateGuard.Take(ctx, n)
		if ok || !job.WaitForRate {
			return wait, ok
		}
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
			return wait, false
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return wait, false
		}
	}
}

// priorFor maps the index of each of job's users that an earlier attempt finished to that
// outcome. The match is by user, case-insensitively (UPNs and object IDs both compare so): a prior
// outcome about someone else, or one a retry could still change, is never applied. For an HTTP
// retry that includes dry_run and denied: going live or granting a permission changes them, and
// the caller's repeat is how it asks again.
func priorFor(job Job) map[int]UserResult {
	if len(job.Prior) == 0 {
		return nil
	}
	byUser := make(map[string]UserResult, len(job.Prior))
	for _, r := range job.Prior {
		if r.Status == "" || r.Status == StatusQueued || r.Status.Retryable() {
			continue
		}
		if job.Trigger == TriggerHTTP && (r.Status == StatusDryRun || r.Status == StatusDenied) {
			continue
		}
		byUser[strings.ToLower(r.UPN)] = r
	}
	done := map[int]UserResult{}
	for i, u := range job.Users {
		if r, ok := byUser[strings.ToLower(u)]; ok {
			r.UPN = u // the spelling of this request, which the caller sees
			done[i] = r
		}
	}
	return done
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// finishRateLimited records a last delivery refused by the rate guard as throttled.
func (e *Engine) finishRateLimited(ctx context.Context, job Job, done map[int]UserResult, res Result, wait time.Duration) Result {
	now := e.cfg.Now()
	for i, u := range job.Users {
		if r, ok := done[i]; ok {
			res.Results[i] = r
			continue
		}
		res.Results[i] = UserResult{UPN: u, Status: StatusThrottled, RetryAfter: wait,
			Error: &ErrorInfo{Code: "rate_limited", Message: "the revocation rate limit (MAX_REVOCATIONS_PER_MINUTE) was reached"}}
		e.record(ctx, job, res.Results[i], now)
	}
	res.Status = Overall(res.Results)
	return res
}

// process applies the guard rails to one user and, if they pass, revokes (or defers, or dry-runs).
// calledRevoke reports whether a revocation reached Graph, for the rate guard.
func (e *Engine) process(ctx context.Context, job Job, user string) (r UserResult, calledRevoke bool) {
	r = UserResult{UPN: user}

	// Static guard rails first: they need no Graph call, so they also apply to deferred users.
	if blocked, ok := e.staticGuard(user, &r); ok {
		return blocked, false
	}
	if job.Defer == DeferAll {
		r.Status = StatusQueued
		return r, false
	}

	if err := e.acquire(ctx); err != nil {
		return failure(r, &GraphError{Status: StatusFailed, Err: err}), false
	}
	defer e.release()

	if e.needsLookup(user) {
		u, err := e.cfg.Users.LookupUser(ctx, user)
		if err != nil {
			return e.lookupFailure(r, err), false
		}
		r.UserID = u.ID
		if blocked, ok := e.lookupGuard(u, &r); ok {
			return blocked, false
		}
	}
	if r.Guard == "" {
		r.Guard = "passed"
	}

	if job.DryRun {
		r.Status = StatusDryRun
		return r, false
	}

	begin := e.cfg.Now()
	gr, err := e.cfg.Revoker.RevokeSignInSessions(ctx, user)
	if err != nil {
		r = failure(r, err)
		return r, true
	}
	r.Status = StatusRevoked
	r.GraphRequestID = gr.RequestID
	r.GraphDuration += gr.Duration
	r.Attempts += gr.Attempts
	// Whole seconds in UTC: what the contract shows (RFC 3339, "…Z"), and what a check compares.
	r.RevokedAt = e.cfg.Now().UTC().Truncate(time.Second)
	r.AccessUntil = r.RevokedAt.Add(AccessTokenLifetime)
	if e.cfg.Verify {
		e.verify(ctx, user, begin, &r)
	}
	return r, true
}

func (e *Engine) acquire(ctx context.Context) error {
	select {
	case e.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a Graph slot: %w", ctx.Err())
	}
}

func (e *Engine) release() { <-e.sem }

// staticGuard applies the guard rails that the requested form alone decides.
func (e *Engine) staticGuard(user string, r *UserResult) (UserResult, bool) {
	if request.IsObjectID(user) {
		if e.protID[strings.ToLower(user)] {
			r.Status, r.Guard = StatusProtected, "protected:id"
			r.Error = &ErrorInfo{Code: "protected_user", Message: "this account is on PROTECTED_USERS and is never revoked"}
			return *r, true
		}
		return *r, false
	}
	if e.protUPN[strings.ToLower(user)] {
		r.Status, r.Guard = StatusProtected, "protected:upn"
		r.Error = &ErrorInfo{Code: "protected_user", Message: "this account is on PROTECTED_USERS and is never revoked"}
		return *r, true
	}
	if len(e.domains) > 0 {
		if !e.domains[domainOf(user)] {
			r.Status, r.Guard = StatusOutOfScope, "out_of_scope:domain"
			r.Error = &ErrorInfo{Code: "out_of_scope", Message: "the user's domain is not in ALLOWED_DOMAINS"}
			return *r, true
		}
		r.Guard = "allowed_domain"
	}
	return *r, false
}

// needsLookup reports whether the user must be read before a guard rail can decide: an object ID
// checked against protected UPNs or allowed domains, or a UPN checked against protected IDs.
func (e *Engine) needsLookup(user string) bool {
	if request.IsObjectID(user) {
		return len(e.protUPN) > 0 || len(e.domains) > 0
	}
	return len(e.protID) > 0
}

// lookupGuard applies the guard rails to the user as Graph knows it.
func (e *Engine) lookupGuard(u User, r *UserResult) (UserResult, bool) {
	if e.protID[strings.ToLower(u.ID)] || e.protUPN[strings.ToLower(u.UPN)] {
		r.Status, r.Guard = StatusProtected, "protected:lookup"
		r.Error = &ErrorInfo{Code: "protected_user", Message: "this account is on PROTECTED_USERS and is never revoked"}
		return *r, true
	}
	if len(e.domains) > 0 {
		if !e.domains[domainOf(u.UPN)] {
			r.Status, r.Guard = StatusOutOfScope, "out_of_scope:lookup"
			r.Error = &ErrorInfo{Code: "out_of_scope", Message: "the user's domain is not in ALLOWED_DOMAINS"}
			return *r, true
		}
		r.Guard = "allowed_domain:lookup"
	} else {
		r.Guard = "passed:lookup"
	}
	return *r, false
}

// lookupFailure fails closed — a user we could not identify is never revoked — but says why, as
// a revocation would: a refused lookup (401/403) is denied and a missing user not_found, both
// final; throttling and outages are throttled or failed, which a retry may change, so they are
// deferred and retried like any transient failure instead of becoming a permanent refusal.
func (e *Engine) lookupFailure(r UserResult, err error) UserResult {
	r = failure(r, err)
	var ge *GraphError
	if errors.As(err, &ge) && (ge.HTTPStatus == 401 || ge.HTTPStatus == 403) {
		r.Status, r.RetryAfter = StatusDenied, 0
	}
	r.Guard = "lookup_" + string(r.Status)
	return r
}

// verify reads the user back; a refused read leaves Verified unset and explains why.
func (e *Engine) verify(ctx context.Context, user string, begin time.Time, r *UserResult) {
	u, err := e.cfg.Users.ReadSessions(ctx, user)
	if err != nil {
		r.Warning = "revoked, but the result could not be verified (reading the user needs User.Read.All)"
		var ge *GraphError
		if errors.As(err, &ge) && ge.Status != StatusDenied {
			r.Warning = "revoked, but the result could not be verified: " + string(ge.Status)
		}
		return
	}
	if u.ID != "" {
		r.UserID = u.ID
	}
	ok := !u.SessionsValidFrom.IsZero() && !u.SessionsValidFrom.Before(begin.Add(-verifySkew))
	r.Verified = &ok
	if !u.SessionsValidFrom.IsZero() {
		r.SessionsValidFrom = u.SessionsValidFrom.UTC().Truncate(time.Second)
	}
	if strings.EqualFold(u.UserType, "Guest") {
		r.Warning = "guest user: sessions in the user's home tenant are not revoked"
	}
}

// failure turns a Graph error into the user's outcome.
func failure(r UserResult, err error) UserResult {
	var ge *GraphError
	if !errors.As(err, &ge) {
		ge = &GraphError{Status: StatusFailed, Err: err}
	}
	r.Status = ge.Status
	if !r.Status.Retryable() && r.Status != StatusNotFound && r.Status != StatusDenied {
		r.Status = StatusFailed
	}
	r.GraphRequestID = ge.RequestID
	r.RetryAfter = ge.RetryAfter
	r.GraphDuration += ge.Duration
	r.Attempts += ge.Attempts
	switch {
	case ge.Code != "":
		r.Error = &ErrorInfo{Code: ge.Code, Message: ge.Message}
	case errors.Is(err, context.DeadlineExceeded):
		r.Error = &ErrorInfo{Code: "timeout", Message: "Microsoft Graph did not answer in time"}
	case ge.HTTPStatus == 0:
		r.Error = &ErrorInfo{Code: "graph_unavailable", Message: "Microsoft Graph could not be reached or no token could be obtained"}
	default:
		r.Error = &ErrorInfo{Code: fmt.Sprintf("http_%d", ge.HTTPStatus), Message: "Microsoft Graph answered with an error"}
	}
	return r
}

// deferUsers hands retryable (or, with DeferAll, queued) users to the queue as one message. If the
// queue is unavailable they are reported failed: never a silent drop.
func (e *Engine) deferUsers(ctx context.Context, job Job, done map[int]UserResult, res *Result) {
	if job.Defer == DeferNever {
		return
	}
	var idx []int
	for i, r := range res.Results {
		if _, ok := done[i]; ok {
			continue
		}
		if r.Status == StatusQueued || (job.Defer == DeferOnFailure && r.Status.Retryable()) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	d := Deferral{Meta: job.Meta, Ticket: job.Ticket, Reason: job.Reason, RequestedBy: job.RequestedBy, DryRun: job.DryRun}
	for _, i := range idx {
		d.Users = append(d.Users, job.Users[i])
	}
	d.Request = Result{ID: res.ID, DryRun: res.DryRun, Results: slices.Clone(res.Results)}
	for _, i := range idx {
		d.Request.Results[i].Status, d.Request.Results[i].RetryAfter = StatusQueued, 0
	}
	d.Request.Status = Overall(d.Request.Results)
	// The job's own budget may be spent (a slow Graph is a reason to defer): the enqueue gets a
	// short budget of its own, so that "queued" does not depend on time Graph already used.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deferBudget)
	defer cancel()
	err := e.cfg.Deferrer.Defer(dctx, d)
	for _, i := range idx {
		r := &res.Results[i]
		if err != nil {
			r.Status, r.RetryAfter = StatusFailed, 0
			r.Error = &ErrorInfo{Code: "queue_unavailable", Message: "the request could not be queued; retry later"}
			continue
		}
		r.Status, r.RetryAfter = StatusQueued, 0
	}
	if err != nil {
		e.cfg.Logger.Error("deferral failed", "request_id", job.RequestID, "users", len(idx), "error", err)
	}
}

func (e *Engine) record(ctx context.Context, job Job, r UserResult, started time.Time) {
	if e.cfg.Sink == nil {
		return
	}
	o := Outcome{
		Meta: job.Meta, Status: r.Status, UPN: r.UPN, UserID: r.UserID,
		Ticket: job.Ticket, Reason: job.Reason, RequestedBy: job.RequestedBy, DryRun: job.DryRun,
		GraphRequestID: r.GraphRequestID, Verified: r.Verified, Guard: r.Guard, Warning: r.Warning,
		Duration: e.cfg.Now().Sub(started), GraphDuration: r.GraphDuration, Attempts: r.Attempts,
	}
	if r.Error != nil {
		o.ErrorCode, o.ErrorMessage = r.Error.Code, r.Error.Message
	}
	o.SessionsValidFrom = r.SessionsValidFrom
	e.cfg.Sink.Outcome(ctx, o)
}

// Overall is the top-level status of a result: the users' shared status, else partial.
func Overall(rs []UserResult) Status {
	if len(rs) == 0 {
		return StatusPartial
	}
	s := rs[0].Status
	for _, r := range rs[1:] {
		if r.Status != s {
			return StatusPartial
		}
	}
	return s
}

func domainOf(upn string) string {
	_, d, _ := strings.Cut(upn, "@")
	return strings.ToLower(d)
}
