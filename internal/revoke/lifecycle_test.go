package revoke_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// outcomes is the real engine on a Graph whose answer each UPN names: "denied@…" is refused,
// "throttled@…" throttled and "flaky@…" fails; anyone else is revoked. It counts who reached the
// engine's processing (an audit record each), so a user finished by an earlier attempt is not
// counted again.
type outcomes struct {
	*revoke.Engine
	sink  *fakeSink
	graph *fakeGraph
}

func newOutcomes(t *testing.T) *outcomes {
	g := &fakeGraph{revoke: func(_ context.Context, user string) (revoke.GraphResult, error) {
		name, _, _ := strings.Cut(user, "@")
		switch name {
		case "denied":
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}
		case "throttled":
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, RetryAfter: time.Second}
		case "flaky":
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503}
		}
		return revoke.GraphResult{RequestID: "req-" + user, Attempts: 1}, nil
	}}
	e, sink := newEngine(t, g, nil)
	return &outcomes{Engine: e, sink: sink, graph: g}
}

// calls counts u's revocation calls to Graph, retries of a failed one included.
func (o *outcomes) calls(u string) int {
	o.graph.mu.Lock()
	defer o.graph.mu.Unlock()
	n := 0
	for _, r := range o.graph.revoked {
		if r == u {
			n++
		}
	}
	return n
}

func (o *outcomes) times(u string) int {
	n := 0
	for _, out := range o.sink.outcomes() {
		if out.UPN == u {
			n++
		}
	}
	return n
}

// plain renders an answer as the result's JSON, 200 when every user succeeded, else 207.
type plain struct{}

func (plain) Render(res revoke.Result, link string, poll bool) revoke.Answer {
	b, _ := json.Marshal(res)
	st := 207
	if res.Status.Succeeded() {
		st = 200
	}
	return revoke.Answer{Status: st, Body: b}
}

type poisoned struct {
	mu    sync.Mutex
	texts []string
}

func (p *poisoned) Poison(_ context.Context, text []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.texts = append(p.texts, string(text))
	return nil
}

func newLifecycle(t *testing.T, e revoke.Runner, poison revoke.Poisoner) *revoke.Lifecycle {
	t.Helper()
	return revoke.NewLifecycle(revoke.LifecycleConfig{
		Engine: e, Store: state.NewMemory(state.MemoryConfig{}), Render: plain{}, Poison: poison,
		IdempotencyTTL: time.Hour, MaxDequeueCount: 3,
	})
}

func submission(id, body string, users ...string) revoke.Submission {
	return revoke.Submission{
		Job:      revoke.Job{Meta: revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: id}, Users: users},
		Remember: true, Scope: "webhook", Body: []byte(body),
	}
}

// A final answer is kept and replayed to a repeat of its id, without running it again; the same id
// with another body is a conflict; a generated id is never remembered.
func TestSubmitReplaysFinalAnswers(t *testing.T) {
	t.Parallel()
	e := newOutcomes(t)
	l := newLifecycle(t, e, nil)
	ctx := context.Background()
	first, err := l.Submit(ctx, submission("msg_1", "h1", "alice@contoso.com"))
	if err != nil || first.Replayed || !first.Final {
		t.Fatalf("first Submit = %+v, %v; want a final answer", first, err)
	}
	again, err := l.Submit(ctx, submission("msg_1", "h1", "alice@contoso.com"))
	if err != nil || !again.Replayed || string(again.Body) != string(first.Body) || again.Status != first.Status {
		t.Errorf("repeat = %+v, %v; want the first answer replayed", again, err)
	}
	if n := e.times("alice@contoso.com"); n != 1 {
		t.Errorf("alice was revoked %d times; want 1", n)
	}
	if _, err := l.Submit(ctx, submission("msg_1", "h2", "bob@contoso.com")); !errors.Is(err, revoke.ErrConflict) {
		t.Errorf("same id, other body = %v; want ErrConflict", err)
	}
	s := submission("gen", "h1", "alice@contoso.com")
	s.Remember = false
	for range 2 {
		if ans, err := l.Submit(ctx, s); err != nil || ans.Replayed {
			t.Fatalf("generated id = %+v, %v; want a fresh answer", ans, err)
		}
	}
	if n := e.times("alice@contoso.com"); n != 3 {
		t.Errorf("alice was revoked %d times after two generated ids; want 3", n)
	}
}

// Answers a retry or a configuration change could change are answered but not kept: a repeat
// runs again, skipping the users an earlier attempt finished.
func TestSubmitRunsAgainWhatCouldChange(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"dryrun@contoso.com", "denied@contoso.com", "throttled@contoso.com"} {
		e := newOutcomes(t)
		l := newLifecycle(t, e, nil)
		for range 2 {
			s := submission("msg_"+u, "h", "alice@contoso.com", u)
			s.Job.DryRun = u == "dryrun@contoso.com"
			ans, err := l.Submit(context.Background(), s)
			if err != nil || ans.Replayed || ans.Final {
				t.Fatalf("%s: Submit = %+v, %v; want an answer not kept", u, ans, err)
			}
		}
		alice := 1
		if u == "dryrun@contoso.com" {
			alice = 2 // a dry run's every user is asked again: going live changes them all
		}
		if e.times(u) != 2 || e.times("alice@contoso.com") != alice {
			t.Errorf("%s: asked %d times, alice %d; want 2 and %d", u, e.times(u), e.times("alice@contoso.com"), alice)
		}
	}
}

// failingClaims is a store whose claims fail outright, as a table outage without memory would.
type failingClaims struct{ *state.Memory }

func (failingClaims) Claim(context.Context, revoke.RequestKey, string, time.Duration) (revoke.Claim, error) {
	return revoke.Claim{}, errors.New("table down")
}

// A revocation already authorised is not lost to an outage of its bookkeeping.
func TestSubmitRunsWhenClaimsFail(t *testing.T) {
	t.Parallel()
	e := newOutcomes(t)
	l := revoke.NewLifecycle(revoke.LifecycleConfig{Engine: e, Store: failingClaims{state.NewMemory(state.MemoryConfig{})}, Render: plain{}})
	ans, err := l.Submit(context.Background(), submission("msg_1", "h", "alice@contoso.com"))
	if err != nil || ans.Status != 200 || e.times("alice@contoso.com") != 1 {
		t.Errorf("Submit with claims failing = %+v, %v (alice asked %d); want alice revoked", ans, err, e.times("alice@contoso.com"))
	}
}

// A delivery that leaves a user failed asks for another; the next skips the users finished; the
// last makes every outcome final and keeps a poison copy; a completed message is a no-op.
func TestDeliverFinality(t *testing.T) {
	t.Parallel()
	e := newOutcomes(t)
	p := &poisoned{}
	l := newLifecycle(t, e, p)
	text := []byte(`{"upns":["alice@contoso.com","flaky@contoso.com"]}`)
	deliver := func(n int) revoke.Delivered {
		t.Helper()
		out, err := l.Deliver(context.Background(), revoke.Delivery{
			MessageID: "m1", Text: text,
			Job: revoke.Job{Meta: revoke.Meta{Trigger: revoke.TriggerQueue, RequestID: "r1", DequeueCount: n},
				Users: []string{"alice@contoso.com", "flaky@contoso.com"}},
		})
		if err != nil {
			t.Fatalf("delivery %d: %v", n, err)
		}
		return out
	}
	if out := deliver(1); out.Done {
		t.Errorf("delivery 1 with flaky failed = done; want another delivery")
	}
	if out := deliver(2); out.Done || e.calls("alice@contoso.com") != 1 {
		t.Errorf("delivery 2: done %v, alice revoked %d times; want not done and alice not asked again", out.Done, e.calls("alice@contoso.com"))
	}
	if out := deliver(3); !out.Done || len(p.texts) != 1 || p.texts[0] != string(text) {
		t.Errorf("last delivery: done %v, poison copies %q; want done and the message copied", out.Done, p.texts)
	}
	if out := deliver(4); !out.Already || e.calls("flaky@contoso.com") != 3 || e.times("flaky@contoso.com") != 1 {
		t.Errorf("after completion: %+v, flaky tried %d times, recorded %d; want already completed, 3 tries, one final record", out, e.calls("flaky@contoso.com"), e.times("flaky@contoso.com"))
	}
}

// A deferred request's status record is made before its message, updated by the delivery that
// finishes its users, and read back through Status.
func TestStatusRecordFollowsTheRequest(t *testing.T) {
	t.Parallel()
	st := state.NewMemory(state.MemoryConfig{})
	l := revoke.NewLifecycle(revoke.LifecycleConfig{Engine: newOutcomes(t), Store: st, Render: plain{}})
	ctx := context.Background()
	queued := revoke.Result{ID: "r1", Status: revoke.StatusQueued, Results: []revoke.UserResult{
		{UPN: "alice@contoso.com", Status: revoke.StatusRevoked},
		{UPN: "bob@contoso.com", Status: revoke.StatusQueued},
	}}
	d := &revoke.StatusDeferrer{Next: nopDeferrer{}, Statuses: st, TTL: time.Hour}
	meta := revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "r1", StatusHandle: "h-1"}
	if err := d.Defer(ctx, revoke.Deferral{Meta: meta, Users: []string{"bob@contoso.com"}, Request: queued}); err != nil {
		t.Fatal(err)
	}
	if res, err := l.Status(ctx, "h-1"); err != nil || !revoke.AnyQueued(res) {
		t.Fatalf("Status before delivery = %+v, %v; want queued", res, err)
	}
	meta.Trigger = revoke.TriggerQueue
	if _, err := l.Deliver(ctx, revoke.Delivery{MessageID: "m", Text: []byte("bob"), Job: revoke.Job{Meta: meta, Users: []string{"BOB@contoso.com"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := l.Status(ctx, "h-1")
	if err != nil || res.Status != revoke.StatusRevoked || res.Results[1].UPN != "bob@contoso.com" {
		t.Errorf("Status after delivery = %+v, %v; want both revoked, bob as first requested", res, err)
	}
	if _, err := l.Status(ctx, "unknown"); !errors.Is(err, revoke.ErrNotFound) {
		t.Errorf("Status(unknown) = %v; want ErrNotFound", err)
	}
}

type nopDeferrer struct{}

func (nopDeferrer) Defer(context.Context, revoke.Deferral) error { return nil }
