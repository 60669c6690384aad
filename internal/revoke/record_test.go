package revoke_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// A panic while revoking one user of a bulk job fails that user; the others, and the process,
// carry on. The single-user path (on the caller's goroutine) recovers too.
func TestPanicFailsOnlyItsUser(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{revoke: func(_ context.Context, user string) (revoke.GraphResult, error) {
		if user == "bug@contoso.com" {
			panic("a bug for one user")
		}
		return revoke.GraphResult{RequestID: "req-" + user, Attempts: 1}, nil
	}}
	e, sink := newEngine(t, g, nil)
	tests := []struct {
		name  string
		users []string
		want  []revoke.Status
	}{
		{"bulk", []string{"alice@contoso.com", "bug@contoso.com", "carol@contoso.com"},
			[]revoke.Status{revoke.StatusRevoked, revoke.StatusFailed, revoke.StatusRevoked}},
		{"single", []string{"bug@contoso.com"}, []revoke.Status{revoke.StatusFailed}},
	}
	for _, tt := range tests {
		res := mustRun(t, e, job(tt.users...))
		if got := statuses(res); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Run(%v) = %v; want %v", tt.name, tt.users, got, tt.want)
		}
		for _, r := range res.Results {
			if r.Status == revoke.StatusFailed && (r.Error == nil || r.Error.Code != "internal") {
				t.Errorf("%s: the panicking user's error = %+v; want code internal", tt.name, r.Error)
			}
		}
	}
	if n := len(sink.outcomes()); n != 4 {
		t.Errorf("outcomes recorded = %d; want 4, the panicking users' included", n)
	}
}

// A user's outcome is recorded (audit record, Settled) the moment it is final, while other users
// of the same job are still in flight: a crash then leaves no accepted revocation unrecorded.
func TestOutcomesRecordedAsEachUserFinishes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := &fakeGraph{revoke: func(ctx context.Context, user string) (revoke.GraphResult, error) {
		if user == "slow@contoso.com" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return revoke.GraphResult{RequestID: "req-" + user, Attempts: 1}, nil
	}}
	e, sink := newEngine(t, g, nil)
	var mu sync.Mutex
	var settled []string
	j := job("alice@contoso.com", "slow@contoso.com", "carol@contoso.com")
	j.Trigger, j.Final = revoke.TriggerQueue, false
	j.Settled = func(r revoke.UserResult) {
		mu.Lock()
		defer mu.Unlock()
		settled = append(settled, r.UPN)
	}
	done := make(chan revoke.Result)
	go func() { done <- mustRun(t, e, j) }()

	deadline := time.Now().Add(10 * time.Second)
	for len(sink.outcomes()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("outcomes while one user is in flight = %d; want the two finished users recorded at once", len(sink.outcomes()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	got := slices.Sorted(slices.Values(settled))
	mu.Unlock()
	if want := []string{"alice@contoso.com", "carol@contoso.com"}; !slices.Equal(got, want) {
		t.Errorf("settled while one user is in flight = %v; want %v", got, want)
	}
	close(release)
	<-done
	if n := len(sink.outcomes()); n != 3 {
		t.Errorf("outcomes after the job = %d; want 3, each once", n)
	}
}

// Outcomes a later attempt may change are not settled: a throttled user on a queue delivery that
// is not the last is neither recorded nor saved as progress.
func TestRetryableOutcomesAreNotSettled(t *testing.T) {
	t.Parallel()
	g := &fakeGraph{revoke: func(_ context.Context, user string) (revoke.GraphResult, error) {
		return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, RetryAfter: time.Second}
	}}
	e, sink := newEngine(t, g, nil)
	j := job("alice@contoso.com", "bob@contoso.com")
	j.Trigger, j.Final = revoke.TriggerQueue, false
	j.Settled = func(r revoke.UserResult) {
		t.Errorf("Settled(%+v) for a throttled user on a delivery that is not the last", r)
	}
	mustRun(t, e, j)
	if n := len(sink.outcomes()); n != 0 {
		t.Errorf("outcomes recorded = %d; want none until the last delivery", n)
	}
}
