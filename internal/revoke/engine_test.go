package revoke_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// fakeGraph is a function-field fake of the engine's Graph seams; tests of the real client run
// against an HTTP Graph fake in internal/graph.
type fakeGraph struct {
	revoke   func(ctx context.Context, user string) (revoke.GraphResult, error)
	lookup   func(ctx context.Context, user string) (revoke.User, error)
	sessions func(ctx context.Context, user string) (revoke.User, error)

	mu      sync.Mutex
	revoked []string
	lookups []string
}

var (
	_ revoke.Revoker    = (*fakeGraph)(nil)
	_ revoke.UserReader = (*fakeGraph)(nil)
)

func (f *fakeGraph) RevokeSignInSessions(ctx context.Context, user string) (revoke.GraphResult, error) {
	f.mu.Lock()
	f.revoked = append(f.revoked, user)
	f.mu.Unlock()
	if f.revoke != nil {
		return f.revoke(ctx, user)
	}
	return revoke.GraphResult{RequestID: "req-" + user, Attempts: 1}, nil
}

func (f *fakeGraph) LookupUser(ctx context.Context, user string) (revoke.User, error) {
	f.mu.Lock()
	f.lookups = append(f.lookups, user)
	f.mu.Unlock()
	if f.lookup != nil {
		return f.lookup(ctx, user)
	}
	return revoke.User{}, &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound"}
}

func (f *fakeGraph) ReadSessions(ctx context.Context, user string) (revoke.User, error) {
	if f.sessions != nil {
		return f.sessions(ctx, user)
	}
	return revoke.User{}, &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}
}

func (f *fakeGraph) revokedUsers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.revoked...)
}

type fakeSink struct {
	mu  sync.Mutex
	out []revoke.Outcome
}

func (s *fakeSink) Outcome(_ context.Context, o revoke.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = append(s.out, o)
}

func (s *fakeSink) outcomes() []revoke.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]revoke.Outcome(nil), s.out...)
}

type fakeDeferrer struct {
	err error
	mu  sync.Mutex
	got []revoke.Deferral
}

func (d *fakeDeferrer) Defer(_ context.Context, def revoke.Deferral) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, def)
	return d.err
}

// directory is a small tenant: a member, a guest, a break-glass account.
var directory = map[string]revoke.User{
	"alice@contoso.com": {ID: "11111111-1111-1111-1111-111111111111", UPN: "alice@contoso.com", UserType: "Member"},
	"jane_fabrikam.com#EXT#@contoso.onmicrosoft.com": {ID: "22222222-2222-2222-2222-222222222222", UPN: "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", UserType: "Guest"},
	"breakglass@contoso.com":                         {ID: "33333333-3333-3333-3333-333333333333", UPN: "breakglass@contoso.com", UserType: "Member"},
	"bob@fabrikam.com":                               {ID: "44444444-4444-4444-4444-444444444444", UPN: "bob@fabrikam.com", UserType: "Member"},
}

func lookupDirectory(_ context.Context, user string) (revoke.User, error) {
	for _, u := range directory {
		if strings.EqualFold(u.UPN, user) || strings.EqualFold(u.ID, user) {
			return u, nil
		}
	}
	return revoke.User{}, &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound", Message: "Resource does not exist"}
}

func newEngine(t *testing.T, g *fakeGraph, mutate func(*revoke.Config)) (*revoke.Engine, *fakeSink) {
	t.Helper()
	sink := &fakeSink{}
	cfg := revoke.Config{Revoker: g, Users: g, Sink: sink, Concurrency: 8}
	if mutate != nil {
		mutate(&cfg)
	}
	return revoke.New(cfg), sink
}

func job(users ...string) revoke.Job {
	return revoke.Job{
		Meta:  revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "msg_1", Caller: "webhook:0", InvocationID: "inv-1"},
		Users: users, Ticket: "INC1", Reason: "Lost phone", Final: true,
	}
}

func mustRun(t *testing.T, e *revoke.Engine, j revoke.Job) revoke.Result {
	t.Helper()
	res, err := e.Run(context.Background(), j)
	if err != nil {
		t.Fatalf("Run(%v) error = %v", j.Users, err)
	}
	return res
}

func statuses(res revoke.Result) []revoke.Status {
	out := make([]revoke.Status, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Status
	}
	return out
}

func TestRevokeSingleUser(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{}
	e, sink := newEngine(t, g, nil)
	res := mustRun(t, e, job("alice@contoso.com"))
	if res.Status != revoke.StatusRevoked || res.ID != "msg_1" || res.DryRun {
		t.Fatalf("result = %+v; want revoked, id msg_1, not dry run", res)
	}
	r := res.Results[0]
	if r.GraphRequestID != "req-alice@contoso.com" || r.RevokedAt.IsZero() {
		t.Errorf("user result = %+v; want graphRequestId and revokedAt", r)
	}
	if got := g.revokedUsers(); len(got) != 1 || got[0] != "alice@contoso.com" {
		t.Errorf("Graph revocations = %v; want exactly alice", got)
	}
	out := sink.outcomes()
	if len(out) != 1 {
		t.Fatalf("outcomes = %d; want 1", len(out))
	}
	o := out[0]
	if o.Status != revoke.StatusRevoked || o.UPN != "alice@contoso.com" || o.Ticket != "INC1" || o.Caller != "webhook:0" ||
		o.RequestID != "msg_1" || o.InvocationID != "inv-1" || o.Trigger != revoke.TriggerHTTP || o.Attempts != 1 {
		t.Errorf("outcome = %+v; want the request's audit fields", o)
	}
}

func TestDryRunNeverRevokes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		jobDryRun bool
		cfgDryRun bool
	}{
		{"request dryRun", true, false},
		{"DRY_RUN setting", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &fakeGraph{}
			e, sink := newEngine(t, g, func(c *revoke.Config) { c.DryRun = tt.cfgDryRun })
			j := job("alice@contoso.com", "bob@fabrikam.com")
			j.DryRun = tt.jobDryRun
			res := mustRun(t, e, j)
			if res.Status != revoke.StatusDryRun || !res.DryRun {
				t.Errorf("result = %+v; want dry_run", res)
			}
			if got := g.revokedUsers(); len(got) != 0 {
				t.Errorf("Graph revocations = %v; want none in a dry run", got)
			}
			if out := sink.outcomes(); len(out) != 2 || !out[0].DryRun {
				t.Errorf("outcomes = %+v; want two dry-run outcomes", out)
			}
		})
	}
}

func TestGuardRails(t *testing.T) {
	t.Parallel()
	refused := func(context.Context, string) (revoke.User, error) {
		return revoke.User{}, &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied", Message: "Insufficient privileges to complete the operation."}
	}
	failing := func(context.Context, string) (revoke.User, error) {
		return revoke.User{}, &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"}
	}
	tests := []struct {
		name       string
		protected  []string
		domains    []string
		lookup     func(context.Context, string) (revoke.User, error)
		user       string
		want       revoke.Status
		wantLookup bool
	}{
		{"protected UPN exact", []string{"breakglass@contoso.com"}, nil, nil, "breakglass@contoso.com", revoke.StatusProtected, false},
		{"protected UPN other case", []string{"BreakGlass@Contoso.com"}, nil, nil, "breakglass@CONTOSO.COM", revoke.StatusProtected, false},
		{"protected ID by ID", []string{"33333333-3333-3333-3333-333333333333"}, nil, nil, "33333333-3333-3333-3333-333333333333", revoke.StatusProtected, false},
		{"protected ID uppercase request", []string{"33333333-3333-3333-3333-333333333333"}, nil, nil, "33333333-3333-3333-3333-333333333333", revoke.StatusProtected, false},
		{"protected ID by UPN needs lookup", []string{"33333333-3333-3333-3333-333333333333"}, nil, lookupDirectory, "breakglass@contoso.com", revoke.StatusProtected, true},
		{"protected UPN by ID needs lookup", []string{"breakglass@contoso.com"}, nil, lookupDirectory, "33333333-3333-3333-3333-333333333333", revoke.StatusProtected, true},
		{"protected lookup refused fails closed", []string{"breakglass@contoso.com"}, nil, refused, "33333333-3333-3333-3333-333333333333", revoke.StatusDenied, true},
		{"protected lookup failing fails closed", []string{"breakglass@contoso.com"}, nil, failing, "33333333-3333-3333-3333-333333333333", revoke.StatusFailed, true},
		{"protected lookup unknown user", []string{"breakglass@contoso.com"}, nil, lookupDirectory, "99999999-9999-9999-9999-999999999999", revoke.StatusNotFound, true},
		{"other user with protected ID passes after lookup", []string{"33333333-3333-3333-3333-333333333333"}, nil, lookupDirectory, "alice@contoso.com", revoke.StatusRevoked, true},
		{"domain allowed", nil, []string{"contoso.com"}, nil, "alice@contoso.com", revoke.StatusRevoked, false},
		{"domain allowed other case", nil, []string{"Contoso.COM"}, nil, "alice@CONTOSO.com", revoke.StatusRevoked, false},
		{"domain not allowed", nil, []string{"contoso.com"}, nil, "bob@fabrikam.com", revoke.StatusOutOfScope, false},
		{"subdomain is not the domain", nil, []string{"contoso.com"}, nil, "eve@evil.contoso.com", revoke.StatusOutOfScope, false},
		{"guest UPN domain is the host tenant's", nil, []string{"contoso.onmicrosoft.com"}, nil, "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", revoke.StatusRevoked, false},
		{"object ID in allowed domain", nil, []string{"contoso.com"}, lookupDirectory, "11111111-1111-1111-1111-111111111111", revoke.StatusRevoked, true},
		{"object ID out of scope", nil, []string{"contoso.com"}, lookupDirectory, "44444444-4444-4444-4444-444444444444", revoke.StatusOutOfScope, true},
		{"object ID lookup refused", nil, []string{"contoso.com"}, refused, "44444444-4444-4444-4444-444444444444", revoke.StatusDenied, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &fakeGraph{lookup: tt.lookup}
			e, sink := newEngine(t, g, func(c *revoke.Config) { c.ProtectedUsers, c.AllowedDomains = tt.protected, tt.domains })
			res := mustRun(t, e, job(tt.user))
			if got := res.Results[0].Status; got != tt.want {
				t.Fatalf("Run(%q) status = %s; want %s (result %+v)", tt.user, got, tt.want, res.Results[0])
			}
			revoked := g.revokedUsers()
			if tt.want != revoke.StatusRevoked && len(revoked) != 0 {
				t.Errorf("Graph revocations = %v; want none for %s", revoked, tt.want)
			}
			if (len(g.lookups) > 0) != tt.wantLookup {
				t.Errorf("lookups = %v; want lookup %v", g.lookups, tt.wantLookup)
			}
			out := sink.outcomes()
			if len(out) != 1 || out[0].Guard == "" {
				t.Errorf("outcomes = %+v; want one with the guard-rail decision", out)
			}
		})
	}
}

// A guard rail's lookup that fails is never a revocation, but only a refusal (401/403) is denied:
// throttling and outages stay retryable, so that they are deferred rather than refused for good.
func TestLookupFailuresKeepTheirMeaning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want revoke.Status
	}{
		{"403 refused", &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}, revoke.StatusDenied},
		{"401 refused", &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 401, Code: "InvalidAuthenticationToken"}, revoke.StatusDenied},
		{"401 classified otherwise by the adapter", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 401}, revoke.StatusDenied},
		{"404 unknown user", &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound"}, revoke.StatusNotFound},
		{"429 after retries", &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, Code: "TooManyRequests", RetryAfter: 3 * time.Second}, revoke.StatusThrottled},
		{"503", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"}, revoke.StatusFailed},
		{"500", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 500}, revoke.StatusFailed},
		{"timeout", &revoke.GraphError{Status: revoke.StatusFailed, Err: context.DeadlineExceeded}, revoke.StatusFailed},
		{"token failure", &revoke.GraphError{Status: revoke.StatusFailed, Err: errors.New("managed identity unavailable")}, revoke.StatusFailed},
		{"not a GraphError", errors.New("connection reset"), revoke.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &fakeGraph{lookup: func(context.Context, string) (revoke.User, error) { return revoke.User{}, tt.err }}
			e, sink := newEngine(t, g, func(c *revoke.Config) { c.ProtectedUsers = []string{"breakglass@contoso.com"} })
			res := mustRun(t, e, job("33333333-3333-3333-3333-333333333333"))
			if got := res.Results[0]; got.Status != tt.want || got.Error == nil || got.Error.Code == "" {
				t.Fatalf("lookup error %v: result %+v; want %s with an error code", tt.err, got, tt.want)
			}
			if got := g.revokedUsers(); len(got) != 0 {
				t.Errorf("lookup error %v: revocations %v; want none without a successful lookup", tt.err, got)
			}
			if out := sink.outcomes(); len(out) != 1 || out[0].Guard != "lookup_"+string(tt.want) {
				t.Errorf("outcomes = %+v; want one with guard lookup_%s", out, tt.want)
			}

			// With storage, the retryable ones are deferred like any transient failure.
			d := &fakeDeferrer{}
			e, _ = newEngine(t, g, func(c *revoke.Config) {
				c.ProtectedUsers, c.Deferrer = []string{"breakglass@contoso.com"}, d
			})
			j := job("33333333-3333-3333-3333-333333333333")
			j.Defer = revoke.DeferOnFailure
			res = mustRun(t, e, j)
			wantDeferred := tt.want.Retryable()
			if got := res.Results[0].Status; (got == revoke.StatusQueued) != wantDeferred {
				t.Errorf("with storage: status %s; want queued %v", got, wantDeferred)
			}
			if (len(d.got) == 1) != wantDeferred {
				t.Errorf("with storage: deferrals %+v; want deferred %v", d.got, wantDeferred)
			}
		})
	}
}

// Outcomes of an earlier attempt are applied to the users they are about, whatever their position
// or spelling, and never to anyone else.
func TestPriorOutcomesMatchByUser(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{}
	e, sink := newEngine(t, g, nil)
	j := job("Alice@Contoso.com", "bob@fabrikam.com", "carol@contoso.com", "11111111-1111-1111-1111-11111111AAAA")
	then := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	j.Prior = []revoke.UserResult{
		{UPN: "mallory@contoso.com", Status: revoke.StatusRevoked},                   // someone else: ignored
		{UPN: "alice@contoso.com", Status: revoke.StatusRevoked, RevokedAt: then},    // other position and case
		{UPN: "carol@contoso.com", Status: revoke.StatusFailed},                      // retryable: runs again
		{UPN: "11111111-1111-1111-1111-11111111aaaa", Status: revoke.StatusNotFound}, // object ID, other case
	}
	res := mustRun(t, e, j)
	if got := statuses(res); fmt.Sprint(got) != "[revoked revoked revoked not_found]" {
		t.Fatalf("statuses = %v; want [revoked revoked revoked not_found]", got)
	}
	if r := res.Results[0]; r.UPN != "Alice@Contoso.com" || !r.RevokedAt.Equal(then) {
		t.Errorf("results[0] = %+v; want alice's earlier outcome under this request's spelling", r)
	}
	if got := fmt.Sprint(g.revokedUsers()); !strings.Contains(got, "bob@fabrikam.com") || !strings.Contains(got, "carol@contoso.com") || len(g.revokedUsers()) != 2 {
		t.Errorf("revocations = %v; want bob and carol only", got)
	}
	if out := sink.outcomes(); len(out) != 2 {
		t.Errorf("outcomes = %+v; want only the two users processed now", out)
	}
}

func TestGraphErrorsClassified(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want revoke.Status
		code string
	}{
		{"not found", &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound", Message: "gone", RequestID: "r1"}, revoke.StatusNotFound, "Request_ResourceNotFound"},
		{"denied", &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied", Message: "Insufficient privileges"}, revoke.StatusDenied, "Authorization_RequestDenied"},
		{"throttled", &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, Code: "TooManyRequests", RetryAfter: 7 * time.Second}, revoke.StatusThrottled, "TooManyRequests"},
		{"server error", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"}, revoke.StatusFailed, "ServiceUnavailable"},
		{"timeout", &revoke.GraphError{Status: revoke.StatusFailed, Err: context.DeadlineExceeded}, revoke.StatusFailed, "timeout"},
		{"token failure", &revoke.GraphError{Status: revoke.StatusFailed, Err: errors.New("identity endpoint unreachable")}, revoke.StatusFailed, "graph_unavailable"},
		{"plain error", errors.New("boom"), revoke.StatusFailed, "graph_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &fakeGraph{revoke: func(context.Context, string) (revoke.GraphResult, error) { return revoke.GraphResult{}, tt.err }}
			e, _ := newEngine(t, g, nil)
			r := mustRun(t, e, job("alice@contoso.com")).Results[0]
			if r.Status != tt.want || r.Error == nil || r.Error.Code != tt.code {
				t.Fatalf("status %s error %+v; want %s with code %s", r.Status, r.Error, tt.want, tt.code)
			}
			if strings.Contains(r.Error.Message, "unreachable") || strings.Contains(r.Error.Message, "boom") {
				t.Errorf("error message %q leaks an internal error", r.Error.Message)
			}
		})
	}
}

func TestDeferral(t *testing.T) {
	t.Parallel()
	failing := func(_ context.Context, user string) (revoke.GraphResult, error) {
		if user == "bob@fabrikam.com" {
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, Code: "TooManyRequests", RetryAfter: time.Second}
		}
		return revoke.GraphResult{RequestID: "ok"}, nil
	}
	t.Run("failed users are queued", func(t *testing.T) {
		t.Parallel()
		d := &fakeDeferrer{}
		e, sink := newEngine(t, &fakeGraph{revoke: failing}, func(c *revoke.Config) { c.Deferrer = d })
		j := job("alice@contoso.com", "bob@fabrikam.com")
		j.Defer = revoke.DeferOnFailure
		res := mustRun(t, e, j)
		if got := statuses(res); got[0] != revoke.StatusRevoked || got[1] != revoke.StatusQueued || res.Status != revoke.StatusPartial {
			t.Fatalf("statuses = %v (%s); want [revoked queued] partial", got, res.Status)
		}
		if len(d.got) != 1 || len(d.got[0].Users) != 1 || d.got[0].Users[0] != "bob@fabrikam.com" || d.got[0].Ticket != "INC1" || d.got[0].Meta.RequestID != "msg_1" {
			t.Errorf("deferrals = %+v; want bob with the request's ticket and id", d.got)
		}
		if out := sink.outcomes(); len(out) != 2 || out[1].Status != revoke.StatusQueued {
			t.Errorf("outcomes = %+v; want revoked and queued", out)
		}
	})
	t.Run("enqueue failure is never a silent drop", func(t *testing.T) {
		t.Parallel()
		d := &fakeDeferrer{err: errors.New("storage down")}
		e, _ := newEngine(t, &fakeGraph{revoke: failing}, func(c *revoke.Config) { c.Deferrer = d })
		j := job("bob@fabrikam.com")
		j.Defer = revoke.DeferOnFailure
		r := mustRun(t, e, j).Results[0]
		if r.Status != revoke.StatusFailed || r.Error == nil || r.Error.Code != "queue_unavailable" {
			t.Fatalf("result = %+v; want failed with queue_unavailable", r)
		}
	})
	t.Run("respond-async queues without calling Graph but keeps static guard rails", func(t *testing.T) {
		t.Parallel()
		d := &fakeDeferrer{}
		g := &fakeGraph{}
		e, _ := newEngine(t, g, func(c *revoke.Config) {
			c.Deferrer, c.ProtectedUsers = d, []string{"breakglass@contoso.com"}
		})
		j := job("alice@contoso.com", "breakglass@contoso.com")
		j.Defer = revoke.DeferAll
		res := mustRun(t, e, j)
		if got := statuses(res); got[0] != revoke.StatusQueued || got[1] != revoke.StatusProtected {
			t.Fatalf("statuses = %v; want [queued protected]", got)
		}
		if len(g.revokedUsers()) != 0 || len(d.got) != 1 || len(d.got[0].Users) != 1 {
			t.Errorf("revoked %v deferred %+v; want no Graph call and alice alone deferred", g.revokedUsers(), d.got)
		}
	})
	t.Run("without a deferrer failures stand", func(t *testing.T) {
		t.Parallel()
		e, _ := newEngine(t, &fakeGraph{revoke: failing}, nil)
		j := job("bob@fabrikam.com")
		j.Defer = revoke.DeferOnFailure
		res := mustRun(t, e, j)
		if res.Results[0].Status != revoke.StatusThrottled || res.RetryAfter() != time.Second {
			t.Fatalf("result = %+v; want throttled with Retry-After 1s", res)
		}
	})
}

func TestQueueAttemptsRecordOnlyFinalOutcomes(t *testing.T) {
	t.Parallel()
	calls := atomic.Int32{}
	g := &fakeGraph{revoke: func(_ context.Context, user string) (revoke.GraphResult, error) {
		if user == "bob@fabrikam.com" {
			calls.Add(1)
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"}
		}
		return revoke.GraphResult{RequestID: "ok"}, nil
	}}
	e, sink := newEngine(t, g, nil)
	j := job("alice@contoso.com", "bob@fabrikam.com")
	j.Trigger, j.Final = revoke.TriggerQueue, false
	first := mustRun(t, e, j)
	if out := sink.outcomes(); len(out) != 1 || out[0].UPN != "alice@contoso.com" {
		t.Fatalf("after a non-final attempt outcomes = %+v; want only alice's", out)
	}
	// The last delivery skips alice (prior outcome) and records bob's failure as final.
	j.Final, j.Prior = true, []revoke.UserResult{first.Results[0], {}}
	res := mustRun(t, e, j)
	if got := g.revokedUsers(); strings.Count(strings.Join(got, ","), "alice") != 1 {
		t.Errorf("revocations = %v; want alice revoked once across deliveries", got)
	}
	if res.Results[0].Status != revoke.StatusRevoked || res.Results[1].Status != revoke.StatusFailed {
		t.Errorf("final statuses = %v; want [revoked failed]", statuses(res))
	}
	if out := sink.outcomes(); len(out) != 2 || out[1].UPN != "bob@fabrikam.com" || out[1].Status != revoke.StatusFailed {
		t.Errorf("outcomes = %+v; want alice's then bob's final failure", out)
	}
}

func TestBulkKeepsOrderAndSharesConcurrency(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int32
	g := &fakeGraph{revoke: func(ctx context.Context, user string) (revoke.GraphResult, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer inFlight.Add(-1)
		time.Sleep(20 * time.Millisecond)
		if strings.HasPrefix(user, "missing") {
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound"}
		}
		return revoke.GraphResult{RequestID: user}, nil
	}}
	e, _ := newEngine(t, g, func(c *revoke.Config) { c.Concurrency = 4 })

	var wg sync.WaitGroup
	results := make([]revoke.Result, 2)
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users := make([]string, 30)
			for i := range users {
				prefix := "user"
				if i%7 == 3 {
					prefix = "missing"
				}
				users[i] = fmt.Sprintf("%s%d-%d@contoso.com", prefix, k, i)
			}
			results[k] = mustRun(t, e, job(users...))
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 4 {
		t.Errorf("peak Graph calls in flight = %d; want at most 4 across both requests", p)
	}
	for k, res := range results {
		if res.Status != revoke.StatusPartial {
			t.Errorf("request %d status = %s; want partial", k, res.Status)
		}
		for i, r := range res.Results {
			want := revoke.StatusRevoked
			if i%7 == 3 {
				want = revoke.StatusNotFound
			}
			if !strings.HasSuffix(r.UPN, fmt.Sprintf("%d-%d@contoso.com", k, i)) || r.Status != want {
				t.Errorf("request %d result %d = %s %s; want input order and %s", k, i, r.UPN, r.Status, want)
			}
		}
	}
}

// A 100-user request against a Graph that takes 200 ms per call must finish in under 4 s (issue 6):
// with the default concurrency of 8 it takes about 2.6 s; the assertion leaves the margin to 4 s.
func TestBulkHundredUsersWithinFourSeconds(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{revoke: func(ctx context.Context, user string) (revoke.GraphResult, error) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return revoke.GraphResult{}, ctx.Err()
		}
		return revoke.GraphResult{RequestID: user}, nil
	}}
	e, _ := newEngine(t, g, func(c *revoke.Config) { c.Concurrency = 8 })
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("user%03d@contoso.com", i)
	}
	start := time.Now()
	res := mustRun(t, e, job(users...))
	if took := time.Since(start); took >= 4*time.Second {
		t.Errorf("100 users took %s; want under 4s", took)
	}
	if res.Status != revoke.StatusRevoked || len(res.Results) != 100 || res.Results[99].UPN != "user099@contoso.com" {
		t.Errorf("result status %s, %d results; want 100 revoked in order", res.Status, len(res.Results))
	}
}

func TestRateGuard(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	g := &fakeGraph{}
	e, sink := newEngine(t, g, func(c *revoke.Config) {
		c.Now, c.ProtectedUsers = clock, []string{"breakglass@contoso.com"}
		c.RateGuard = state.NewMemory(state.MemoryConfig{RatePerMinute: 3, Now: clock})
	})
	mustRun(t, e, job("a@contoso.com", "b@contoso.com"))
	// Guard rails that stop a user before Graph give the token back.
	mustRun(t, e, job("breakglass@contoso.com"))
	mustRun(t, e, job("c@contoso.com"))

	_, err := e.Run(context.Background(), job("d@contoso.com"))
	var rl *revoke.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Minute {
		t.Fatalf("fourth revocation error = %v; want RateLimitedError with a Retry-After within a minute", err)
	}
	if got := len(g.revokedUsers()); got != 3 {
		t.Errorf("revocations = %d; want 3", got)
	}
	// A dry run is not a revocation.
	dry := job("d@contoso.com")
	dry.DryRun = true
	mustRun(t, e, dry)

	// On a queue message's last delivery the refusal is recorded as a final throttled outcome.
	last := job("e@contoso.com")
	last.Trigger, last.LastDelivery = revoke.TriggerQueue, true
	res := mustRun(t, e, last)
	if res.Results[0].Status != revoke.StatusThrottled || res.Results[0].Error.Code != "rate_limited" {
		t.Errorf("last delivery result = %+v; want throttled rate_limited", res.Results[0])
	}
	if out := sink.outcomes(); out[len(out)-1].Status != revoke.StatusThrottled {
		t.Errorf("last outcome = %+v; want throttled recorded", out[len(out)-1])
	}

	advance(time.Minute)
	mustRun(t, e, job("d@contoso.com"))
	if got := len(g.revokedUsers()); got != 4 {
		t.Errorf("revocations after a minute = %d; want 4", got)
	}
}

func TestVerification(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		read         func(context.Context, string) (revoke.User, error)
		wantVerified *bool
		wantWarning  string
		wantFrom     string
	}{
		{
			name: "fresh timestamp verifies",
			read: func(context.Context, string) (revoke.User, error) {
				return revoke.User{ID: "id-1", UPN: "alice@contoso.com", UserType: "Member", SessionsValidFrom: start.Add(time.Second)}, nil
			},
			wantVerified: ptr(true), wantFrom: "2026-11-22T00:00:01Z",
		},
		{
			name: "clock skew within five minutes still verifies",
			read: func(context.Context, string) (revoke.User, error) {
				return revoke.User{ID: "id-1", UserType: "Member", SessionsValidFrom: start.Add(-4 * time.Minute)}, nil
			},
			wantVerified: ptr(true), wantFrom: "2026-11-21T23:56:00Z",
		},
		{
			name: "old timestamp does not verify",
			read: func(context.Context, string) (revoke.User, error) {
				return revoke.User{ID: "id-1", UserType: "Member", SessionsValidFrom: start.Add(-6 * time.Minute)}, nil
			},
			wantVerified: ptr(false), wantFrom: "2026-11-21T23:54:00Z",
		},
		{
			name: "guest gets a warning",
			read: func(context.Context, string) (revoke.User, error) {
				return revoke.User{ID: "id-2", UserType: "Guest", SessionsValidFrom: start}, nil
			},
			wantVerified: ptr(true), wantWarning: "home tenant", wantFrom: "2026-11-22T00:00:00Z",
		},
		{
			name: "refused read leaves verified out",
			read: func(context.Context, string) (revoke.User, error) {
				return revoke.User{}, &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}
			},
			wantWarning: "User.Read.All",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &fakeGraph{sessions: tt.read}
			e, sink := newEngine(t, g, func(c *revoke.Config) { c.Verify, c.Now = true, func() time.Time { return start } })
			r := mustRun(t, e, job("alice@contoso.com")).Results[0]
			if r.Status != revoke.StatusRevoked {
				t.Fatalf("status = %s; verification must never turn a revocation into a failure", r.Status)
			}
			if (r.Verified == nil) != (tt.wantVerified == nil) || (r.Verified != nil && *r.Verified != *tt.wantVerified) {
				t.Errorf("verified = %v; want %v", deref(r.Verified), deref(tt.wantVerified))
			}
			if !strings.Contains(r.Warning, tt.wantWarning) || (tt.wantWarning == "" && r.Warning != "") {
				t.Errorf("warning = %q; want it to mention %q", r.Warning, tt.wantWarning)
			}
			if got := formatTime(r.SessionsValidFrom); got != tt.wantFrom {
				t.Errorf("sessionsValidFrom = %q; want %q", got, tt.wantFrom)
			}
			if tt.wantVerified != nil && r.UserID == "" {
				t.Errorf("userId empty; want the read-back id")
			}
			if o := sink.outcomes()[0]; (o.Verified == nil) != (tt.wantVerified == nil) {
				t.Errorf("outcome verified = %v; want %v", deref(o.Verified), deref(tt.wantVerified))
			}
		})
	}
}

func TestContextDeadlineWhileWaitingForGraphSlot(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := &fakeGraph{revoke: func(ctx context.Context, user string) (revoke.GraphResult, error) {
		<-release
		return revoke.GraphResult{}, nil
	}}
	e, _ := newEngine(t, g, func(c *revoke.Config) { c.Concurrency = 1 })
	go func() { _, _ = e.Run(context.Background(), job("slow@contoso.com")) }()
	for len(g.revokedUsers()) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := e.Run(ctx, job("alice@contoso.com"))
	close(release)
	if err != nil || res.Results[0].Status != revoke.StatusFailed {
		t.Fatalf("Run with an expired budget = %+v, %v; want failed", res, err)
	}
}

func ptr[T any](v T) *T { return &v }

func deref(b *bool) string {
	if b == nil {
		return "<unset>"
	}
	return fmt.Sprint(*b)
}

func TestQueueJobsWaitForTheRateGuard(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{}
	// 120 per minute: a token every 500 ms once the bucket is empty.
	e, _ := newEngine(t, g, func(c *revoke.Config) { c.RateGuard = state.NewMemory(state.MemoryConfig{RatePerMinute: 120}) })
	users := make([]string, 120)
	for i := range users {
		users[i] = fmt.Sprintf("u%d@contoso.com", i)
	}
	mustRun(t, e, job(users...))

	j := job("late@contoso.com")
	j.WaitForRate = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.Run(ctx, j)
	if err != nil || res.Results[0].Status != revoke.StatusRevoked {
		t.Fatalf("waiting job = %+v, %v; want revoked once a token is free", res, err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	_, err = e.Run(short, j)
	var rl *revoke.RateLimitedError
	if !errors.As(err, &rl) {
		t.Errorf("waiting job without the time to wait = %v; want RateLimitedError", err)
	}
}

// ctxDeferrer fails like a queue client would when handed a context that is already done.
type ctxDeferrer struct{ fakeDeferrer }

func (d *ctxDeferrer) Defer(ctx context.Context, def revoke.Deferral) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.fakeDeferrer.Defer(ctx, def)
}

func TestDeferralAfterTheBudgetRanOut(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{revoke: func(ctx context.Context, user string) (revoke.GraphResult, error) {
		<-ctx.Done() // Graph never answers within the budget
		return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusFailed, Err: ctx.Err()}
	}}
	d := &ctxDeferrer{}
	e, _ := newEngine(t, g, func(c *revoke.Config) { c.Deferrer = d })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	j := job("alice@contoso.com")
	j.Defer = revoke.DeferOnFailure
	res, err := e.Run(ctx, j)
	if err != nil || res.Results[0].Status != revoke.StatusQueued {
		t.Fatalf("Run after the budget ran out = %+v, %v; want queued (the enqueue has its own budget)", res.Results, err)
	}
}

// formatTime is a time as the contract shows it: RFC 3339 in UTC, "" when zero.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}
