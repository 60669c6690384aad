package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the injected clock of every store under test, so TTLs and leases are tested by
// moving time, not by sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// instances opens two stores that stand for two instances sharing state (for *Memory, the same
// store twice: one process). Each call gets fresh, empty state.
type instances func(t *testing.T, clock *fakeClock, ratePerMinute int) (a, b Store)

// testConformance is the suite every Store passes.
func testConformance(t *testing.T, open instances) {
	tests := []struct {
		name string
		rate int
		run  func(t *testing.T, clock *fakeClock, a, b Store)
	}{
		{"claim finish replay on the other instance", 0, testClaimFinishReplay},
		{"different body conflicts", 0, testConflict},
		{"concurrent duplicate is in progress", 0, testInProgress},
		{"expired lease is taken over and the old lease is lost", 0, testLeaseTakeover},
		{"release keeps progress for a retry", 0, testReleaseProgress},
		{"unknown lease is lost", 0, testUnknownLease},
		{"replay expires after its ttl", 0, testReplayTTL},
		{"concurrent claims have exactly one winner", 0, testConcurrentClaims},
		{"message progress", 0, testMessageProgress},
		{"status put get update", 0, testStatus},
		{"concurrent status updates lose nothing", 0, testStatusConcurrency},
		{"rate guard across instances", 600, testRateGuard},
		{"rate guard over time", 120, testRateGuardOverTime},
		{"rate guard lets a big job through a full bucket", 60, testRateGuardBigJob},
		{"rate guard off", 0, testRateGuardOff},
		{"cleanup deletes what expired", 0, testCleanup},
		{"100-user bodies fit", 0, testLargeBodies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			a, b := open(t, clock, tt.rate)
			tt.run(t, clock, a, b)
		})
	}
}

func mustClaim(t *testing.T, s Store, key RequestKey, hash string, lease time.Duration) Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), key, hash, lease)
	if err != nil {
		t.Fatalf("Claim(%v, %q) error = %v; want a claim", key, hash, err)
	}
	return c
}

func mustLease(t *testing.T, s Store, key RequestKey, hash string, lease time.Duration) Claim {
	t.Helper()
	c := mustClaim(t, s, key, hash, lease)
	if c.Lease == "" || c.Replay != nil {
		t.Fatalf("Claim(%v, %q) = %+v; want a lease, no replay", key, hash, c)
	}
	return c
}

func mustFinish(t *testing.T, s Store, key RequestKey, lease string, resp Response, ttl time.Duration) {
	t.Helper()
	if err := s.Finish(context.Background(), key, lease, resp, ttl); err != nil {
		t.Fatalf("Finish(%v) = %v; want nil", key, err)
	}
}

func testClaimFinishReplay(t *testing.T, _ *fakeClock, a, b Store) {
	ctx := context.Background()
	key := RequestKey{Scope: "webhook", ID: "msg_1"}
	c := mustLease(t, a, key, "h1", 30*time.Second)
	if c.Progress != nil {
		t.Errorf("first Claim progress = %q; want nil", c.Progress)
	}
	want := Response{Status: 200, Body: []byte(`{"status":"revoked"}`)}
	mustFinish(t, a, key, c.Lease, want, time.Hour)
	for name, s := range map[string]Store{"same": a, "other": b} {
		got := mustClaim(t, s, key, "h1", 30*time.Second)
		if got.Replay == nil || got.Lease != "" {
			t.Fatalf("%s instance: Claim after Finish = %+v; want a replay and no lease", name, got)
		}
		if got.Replay.Status != want.Status || !bytes.Equal(got.Replay.Body, want.Body) {
			t.Errorf("%s instance: replay = %d %s; want %d %s", name, got.Replay.Status, got.Replay.Body, want.Status, want.Body)
		}
	}
	// The same id from another caller is another request.
	other := RequestKey{Scope: "entra:tenant:client", ID: "msg_1"}
	mustLease(t, b, other, "h2", 30*time.Second)
	// Finishing twice: the lease ended with the first Finish.
	if err := a.Finish(ctx, key, c.Lease, want, time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("second Finish = %v; want ErrLeaseLost", err)
	}
}

func testConflict(t *testing.T, _ *fakeClock, a, b Store) {
	ctx := context.Background()
	check := func(stage string, key RequestKey) {
		t.Helper()
		if _, err := b.Claim(ctx, key, "other-body", time.Minute); !errors.Is(err, ErrConflict) {
			t.Errorf("%s: Claim with another body = %v; want ErrConflict", stage, err)
		}
	}
	inFlight := RequestKey{Scope: "webhook", ID: "in-flight"}
	mustLease(t, a, inFlight, "h1", time.Minute)
	check("in flight", inFlight)

	finished := RequestKey{Scope: "webhook", ID: "finished"}
	c := mustLease(t, a, finished, "h1", time.Minute)
	mustFinish(t, a, finished, c.Lease, Response{Status: 200, Body: []byte(`{}`)}, time.Hour)
	check("finished", finished)

	released := RequestKey{Scope: "webhook", ID: "released"}
	c = mustLease(t, a, released, "h1", time.Minute)
	if err := a.Release(ctx, released, c.Lease, []byte("p")); err != nil {
		t.Fatalf("Release = %v", err)
	}
	check("released", released)
}

func testInProgress(t *testing.T, clock *fakeClock, a, b Store) {
	key := RequestKey{Scope: "webhook", ID: "busy"}
	mustLease(t, a, key, "h1", 40*time.Second)
	clock.Advance(10*time.Second + 300*time.Millisecond)
	for name, s := range map[string]Store{"same": a, "other": b} {
		_, err := s.Claim(context.Background(), key, "h1", 40*time.Second)
		var ip *InProgressError
		if !errors.As(err, &ip) {
			t.Fatalf("%s instance: concurrent Claim = %v; want *InProgressError", name, err)
		}
		// 29.7 s left, rounded up to whole seconds for Retry-After.
		if ip.RetryAfter != 30*time.Second {
			t.Errorf("%s instance: RetryAfter = %v; want 30s", name, ip.RetryAfter)
		}
	}
	clock.Advance(29*time.Second + 600*time.Millisecond) // 0.1 s left: still at least a second
	_, err := b.Claim(context.Background(), key, "h1", 40*time.Second)
	var ip *InProgressError
	if !errors.As(err, &ip) || ip.RetryAfter != time.Second {
		t.Errorf("Claim with 0.1 s left = %v; want *InProgressError of 1s", err)
	}
}

func testLeaseTakeover(t *testing.T, clock *fakeClock, a, b Store) {
	ctx := context.Background()
	key := RequestKey{Scope: "webhook", ID: "crashed"}
	first := mustLease(t, a, key, "h1", 30*time.Second)
	clock.Advance(31 * time.Second) // the first attempt's instance died
	second := mustLease(t, b, key, "h1", 30*time.Second)
	if second.Lease == first.Lease {
		t.Fatalf("takeover lease = first lease %q; want a new one", first.Lease)
	}
	resp := Response{Status: 200, Body: []byte(`{"by":"first"}`)}
	if err := a.Finish(ctx, key, first.Lease, resp, time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Finish with the stale lease = %v; want ErrLeaseLost", err)
	}
	if err := a.Release(ctx, key, first.Lease, []byte("stale")); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Release with the stale lease = %v; want ErrLeaseLost", err)
	}
	want := Response{Status: 207, Body: []byte(`{"by":"second"}`)}
	mustFinish(t, b, key, second.Lease, want, time.Hour)
	got := mustClaim(t, a, key, "h1", 30*time.Second)
	if got.Replay == nil || !bytes.Equal(got.Replay.Body, want.Body) || got.Replay.Status != 207 {
		t.Errorf("replay = %+v; want %d %s", got.Replay, want.Status, want.Body)
	}

	// A lease that expired but that nobody took over still finishes.
	late := RequestKey{Scope: "webhook", ID: "late"}
	c := mustLease(t, a, late, "h1", 30*time.Second)
	clock.Advance(time.Minute)
	mustFinish(t, a, late, c.Lease, want, time.Hour)
}

func testReleaseProgress(t *testing.T, clock *fakeClock, a, b Store) {
	ctx := context.Background()
	key := RequestKey{Scope: "webhook", ID: "retryable"}
	c := mustLease(t, a, key, "h1", 30*time.Second)
	if err := a.Release(ctx, key, c.Lease, []byte(`{"done":[0]}`)); err != nil {
		t.Fatalf("Release = %v", err)
	}
	c2 := mustLease(t, b, key, "h1", 30*time.Second)
	if string(c2.Progress) != `{"done":[0]}` {
		t.Errorf("Claim after Release progress = %q; want %q", c2.Progress, `{"done":[0]}`)
	}
	if err := b.Release(ctx, key, c2.Lease, nil); err != nil {
		t.Fatalf("Release(nil) = %v", err)
	}
	c3 := mustLease(t, a, key, "h1", 30*time.Second)
	if string(c3.Progress) != `{"done":[0]}` {
		t.Errorf("Claim after Release(nil) progress = %q; want the earlier %q", c3.Progress, `{"done":[0]}`)
	}
	// Progress survives a crashed attempt too.
	clock.Advance(31 * time.Second)
	c4 := mustLease(t, b, key, "h1", 30*time.Second)
	if string(c4.Progress) != `{"done":[0]}` {
		t.Errorf("Claim after takeover progress = %q; want %q", c4.Progress, `{"done":[0]}`)
	}
	mustFinish(t, b, key, c4.Lease, Response{Status: 200, Body: []byte(`{}`)}, time.Hour)
	if r := mustClaim(t, a, key, "h1", time.Second); r.Progress != nil || r.Replay == nil {
		t.Errorf("Claim after Finish = %+v; want a replay without progress", r)
	}
}

func testUnknownLease(t *testing.T, _ *fakeClock, a, b Store) {
	ctx := context.Background()
	key := RequestKey{Scope: "webhook", ID: "nobody"}
	if err := a.Finish(ctx, key, "made-up", Response{Status: 200}, time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Finish of an unclaimed key = %v; want ErrLeaseLost", err)
	}
	mustLease(t, a, key, "h1", time.Minute)
	if err := b.Release(ctx, key, "made-up", nil); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Release with a wrong lease = %v; want ErrLeaseLost", err)
	}
	if err := b.Finish(ctx, key, "", Response{Status: 200}, time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Finish with an empty lease = %v; want ErrLeaseLost", err)
	}
}

func testReplayTTL(t *testing.T, clock *fakeClock, a, b Store) {
	key := RequestKey{Scope: "webhook", ID: "ttl"}
	c := mustLease(t, a, key, "h1", time.Minute)
	mustFinish(t, a, key, c.Lease, Response{Status: 200, Body: []byte(`{}`)}, 24*time.Hour)
	clock.Advance(23*time.Hour + 59*time.Minute)
	if r := mustClaim(t, b, key, "h1", time.Minute); r.Replay == nil {
		t.Fatalf("Claim within the ttl = %+v; want a replay", r)
	}
	clock.Advance(2 * time.Minute)
	// After the ttl the id is free again, even for another body.
	if r := mustClaim(t, b, key, "h2", time.Minute); r.Replay != nil || r.Lease == "" || r.Progress != nil {
		t.Errorf("Claim after the ttl = %+v; want a fresh lease", r)
	}
}

func testConcurrentClaims(t *testing.T, _ *fakeClock, a, b Store) {
	const n = 8
	key := RequestKey{Scope: "webhook", ID: "race"}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		leases  []string
		busy    int
		unknown []error
	)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			c, err := s.Claim(context.Background(), key, "h1", time.Minute)
			mu.Lock()
			defer mu.Unlock()
			var ip *InProgressError
			switch {
			case err == nil && c.Lease != "":
				leases = append(leases, c.Lease)
			case errors.As(err, &ip):
				busy++
			default:
				unknown = append(unknown, fmt.Errorf("claim = %+v, %w", c, err))
			}
		})
	}
	wg.Wait()
	if len(leases) != 1 || busy != n-1 || len(unknown) > 0 {
		t.Errorf("%d concurrent claims: %d leases, %d in progress, others %v; want 1, %d, none", n, len(leases), busy, unknown, n-1)
	}
}

func testMessageProgress(t *testing.T, clock *fakeClock, a, b Store) {
	ctx := context.Background()
	key := MessageKey{MessageID: "9d5c0b8e-1", ContentHash: "c1"}
	p, done, err := a.MessageProgress(ctx, key)
	if p != nil || done || err != nil {
		t.Fatalf("MessageProgress(unknown) = %q, %v, %v; want nil, false, nil", p, done, err)
	}
	if err := a.SaveMessageProgress(ctx, key, []byte("half"), false); err != nil {
		t.Fatalf("SaveMessageProgress = %v", err)
	}
	if p, done, err := b.MessageProgress(ctx, key); string(p) != "half" || done || err != nil {
		t.Errorf("MessageProgress on the other instance = %q, %v, %v; want half, false, nil", p, done, err)
	}
	// The same message id with other content is another message.
	if p, done, err := b.MessageProgress(ctx, MessageKey{MessageID: key.MessageID, ContentHash: "c2"}); p != nil || done || err != nil {
		t.Errorf("MessageProgress(same id, other content) = %q, %v, %v; want nil, false, nil", p, done, err)
	}
	if err := b.SaveMessageProgress(ctx, key, []byte("all"), true); err != nil {
		t.Fatalf("SaveMessageProgress(done) = %v", err)
	}
	clock.Advance(MessageTTL - time.Minute)
	if p, done, err := a.MessageProgress(ctx, key); string(p) != "all" || !done || err != nil {
		t.Errorf("MessageProgress within a week = %q, %v, %v; want all, true, nil", p, done, err)
	}
	clock.Advance(2 * time.Minute)
	if p, done, err := a.MessageProgress(ctx, key); p != nil || done || err != nil {
		t.Errorf("MessageProgress after a week = %q, %v, %v; want nil, false, nil", p, done, err)
	}
}

func testStatus(t *testing.T, clock *fakeClock, a, b Store) {
	ctx := context.Background()
	if _, err := a.GetStatus(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetStatus(unknown) = %v; want ErrNotFound", err)
	}
	if err := a.UpdateStatus(ctx, "unknown", time.Hour, func(b []byte) ([]byte, error) { return b, nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateStatus(unknown) = %v; want ErrNotFound", err)
	}
	const h = "Zm9vYmFyYmF6cXV4cXV1eA"
	if err := a.PutStatus(ctx, h, []byte(`{"v":1}`), time.Hour); err != nil {
		t.Fatalf("PutStatus = %v", err)
	}
	if got, err := b.GetStatus(ctx, h); string(got) != `{"v":1}` || err != nil {
		t.Errorf("GetStatus on the other instance = %q, %v; want {\"v\":1}", got, err)
	}
	boom := errors.New("boom")
	if err := b.UpdateStatus(ctx, h, time.Hour, func([]byte) ([]byte, error) { return []byte("x"), boom }); !errors.Is(err, boom) {
		t.Errorf("UpdateStatus whose update fails = %v; want that error", err)
	}
	if got, _ := a.GetStatus(ctx, h); string(got) != `{"v":1}` {
		t.Errorf("after a failed update, status = %q; want it unchanged", got)
	}
	clock.Advance(50 * time.Minute)
	if err := b.UpdateStatus(ctx, h, time.Hour, func(body []byte) ([]byte, error) {
		if string(body) != `{"v":1}` {
			return nil, fmt.Errorf("update got %q", body)
		}
		return []byte(`{"v":2}`), nil
	}); err != nil {
		t.Fatalf("UpdateStatus = %v", err)
	}
	clock.Advance(50 * time.Minute) // the update restarted the ttl
	if got, err := a.GetStatus(ctx, h); string(got) != `{"v":2}` || err != nil {
		t.Errorf("GetStatus after the update = %q, %v; want {\"v\":2}", got, err)
	}
	clock.Advance(11 * time.Minute)
	if _, err := a.GetStatus(ctx, h); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetStatus after the ttl = %v; want ErrNotFound", err)
	}
}

func testStatusConcurrency(t *testing.T, _ *fakeClock, a, b Store) {
	ctx := context.Background()
	const h = "c3RhdHVzLWNvbmN1cnJlbmN5"
	if err := a.PutStatus(ctx, h, []byte(`[]`), time.Hour); err != nil {
		t.Fatalf("PutStatus = %v", err)
	}
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			errs <- s.UpdateStatus(ctx, h, time.Hour, func(body []byte) ([]byte, error) {
				var list []int
				if err := json.Unmarshal(body, &list); err != nil {
					return nil, err
				}
				return json.Marshal(append(list, i))
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateStatus = %v", err)
		}
	}
	body, err := a.GetStatus(ctx, h)
	var list []int
	if err != nil || json.Unmarshal(body, &list) != nil || len(list) != n {
		t.Errorf("after %d concurrent updates status = %s, %v; want %d entries", n, body, err, n)
	}
}

// takeAll takes single tokens from both instances, alternating, until both refuse.
func takeAll(t *testing.T, a, b Store) int {
	t.Helper()
	granted := 0
	for range 100_000 {
		okA := takeOne(a)
		okB := takeOne(b)
		if okA {
			granted++
		}
		if okB {
			granted++
		}
		if !okA && !okB {
			return granted
		}
	}
	t.Fatal("rate guard never refused")
	return 0
}

func takeOne(s Store) bool {
	_, ok := s.Take(context.Background(), 1)
	return ok
}

func testRateGuard(t *testing.T, _ *fakeClock, a, b Store) {
	const limit = 600
	granted := takeAll(t, a, b)
	if granted > limit*11/10 || granted < limit/2 {
		t.Errorf("full bucket of %d: granted %d; want at most %d and at least %d", limit, granted, limit*11/10, limit/2)
	}
	wait, ok := a.Take(context.Background(), 1)
	if ok || wait <= 0 || wait > time.Minute {
		t.Errorf("Take on an empty bucket = %v, %v; want a wait within a minute, false", wait, ok)
	}
	// Refunded tokens can be taken again.
	a.Refund(5)
	if _, ok := a.Take(context.Background(), 5); !ok {
		t.Errorf("Take(5) after Refund(5) refused")
	}
}

func testRateGuardOverTime(t *testing.T, clock *fakeClock, a, b Store) {
	const limit, minutes = 120, 5
	granted := 0
	for range minutes * 60 {
		granted += takeAll(t, a, b)
		clock.Advance(time.Second)
	}
	granted += takeAll(t, a, b)
	// The bucket starts full, then refills at the limit.
	most := limit + limit*minutes*11/10
	least := limit * minutes * 8 / 10
	if granted > most || granted < least {
		t.Errorf("%d minutes at %d a minute: granted %d; want between %d and %d", minutes, limit, granted, least, most)
	}
}

func testRateGuardBigJob(t *testing.T, clock *fakeClock, a, b Store) {
	ctx := context.Background()
	if _, ok := a.Take(ctx, 100); !ok {
		t.Fatalf("Take(100) of a full bucket of 60 refused; want it let through")
	}
	if wait, ok := b.Take(ctx, 1); ok || wait <= 0 {
		t.Errorf("Take(1) after the big job = %v, %v; want a wait", wait, ok)
	}
	clock.Advance(2 * time.Minute)
	if _, ok := b.Take(ctx, 1); !ok {
		t.Errorf("Take(1) two minutes later refused")
	}
}

func testRateGuardOff(t *testing.T, _ *fakeClock, a, b Store) {
	for i := range 2000 {
		if wait, ok := a.Take(context.Background(), 1); !ok {
			t.Fatalf("Take #%d with the guard off = %v, false; want ok", i, wait)
		}
	}
	if _, ok := b.Take(context.Background(), 10_000); !ok {
		t.Fatalf("Take(10000) with the guard off refused")
	}
}

func testCleanup(t *testing.T, clock *fakeClock, a, b Store) {
	ctx := context.Background()
	for i := range 5 {
		key := RequestKey{Scope: "webhook", ID: fmt.Sprintf("old-%d", i)}
		c := mustLease(t, a, key, "h", time.Minute)
		mustFinish(t, a, key, c.Lease, Response{Status: 200, Body: []byte(`{}`)}, time.Hour)
		if err := a.PutStatus(ctx, fmt.Sprintf("old-status-%d", i), []byte(`{}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	keep := RequestKey{Scope: "webhook", ID: "keep"}
	c := mustLease(t, a, keep, "h", time.Minute)
	mustFinish(t, a, keep, c.Lease, Response{Status: 200, Body: []byte(`{"kept":true}`)}, 48*time.Hour)
	if err := a.SaveMessageProgress(ctx, MessageKey{MessageID: "m", ContentHash: "c"}, []byte("p"), false); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	deleted, err := b.Cleanup(ctx)
	if err != nil || deleted < 10 {
		t.Fatalf("Cleanup = %d, %v; want at least the 10 expired entries", deleted, err)
	}
	if r := mustClaim(t, a, keep, "h", time.Minute); r.Replay == nil || string(r.Replay.Body) != `{"kept":true}` {
		t.Errorf("after Cleanup, the unexpired answer = %+v; want it replayed", r)
	}
	if p, _, err := a.MessageProgress(ctx, MessageKey{MessageID: "m", ContentHash: "c"}); string(p) != "p" || err != nil {
		t.Errorf("after Cleanup, message progress = %q, %v; want p", p, err)
	}
	if _, err := a.GetStatus(ctx, "old-status-0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Cleanup, expired status = %v; want ErrNotFound", err)
	}
	if again, err := b.Cleanup(ctx); err != nil || again != 0 {
		t.Errorf("second Cleanup = %d, %v; want 0, nil", again, err)
	}
	// A Cleanup whose context has ended stops.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Cleanup(done); err == nil {
		t.Errorf("Cleanup with an ended context = nil error; want the context's error")
	}
}

// bigResult is a 100-user response as the handler could write it: the longest valid UPNs
// (113 characters), every optional field, a long Graph error and warning for each user.
func bigResult() []byte {
	type graphError struct{ Code, Message string }
	type result struct {
		UPN               string      `json:"upn"`
		Status            string      `json:"status"`
		UserID            string      `json:"userId"`
		RevokedAt         string      `json:"revokedAt"`
		Verified          bool        `json:"verified"`
		SessionsValidFrom string      `json:"sessionsValidFrom"`
		GraphRequestID    string      `json:"graphRequestId"`
		Warning           string      `json:"warning"`
		Error             *graphError `json:"error"`
	}
	var results []result
	for i := range 100 {
		local := fmt.Sprintf("%03d", i) + strings.Repeat("a", 61)
		results = append(results, result{
			UPN: local + "@" + strings.Repeat("d", 43) + ".com", Status: "failed",
			UserID: "3f1c2b7e-8a51-4c3e-9a1d-0b7b5e6f4a2c", RevokedAt: "2026-11-21T23:59:01Z",
			SessionsValidFrom: "2026-11-21T23:59:00Z", GraphRequestID: "b1e2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
			Warning: strings.Repeat("guest account: home-tenant sessions are not revoked ", 3),
			Error:   &graphError{Code: "serviceUnavailable", Message: strings.Repeat("The service is temporarily unavailable. ", 8)},
		})
	}
	body, _ := json.Marshal(map[string]any{
		"id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "status": "failed", "dryRun": false,
		"reason": strings.Repeat("r", 1024), "statusUrl": "https://example.net/api/revoke/status/" + strings.Repeat("h", 43),
		"results": results,
	})
	return body
}

func testLargeBodies(t *testing.T, _ *fakeClock, a, b Store) {
	ctx := context.Background()
	body := bigResult()
	if len(body) < 80<<10 {
		t.Fatalf("test body is %d bytes; want over 80 KiB, beyond one table property", len(body))
	}
	key := RequestKey{Scope: "entra:" + strings.Repeat("t", 36) + ":" + strings.Repeat("c", 36), ID: strings.Repeat("i", 255)}
	c := mustLease(t, a, key, strings.Repeat("f", 64), time.Minute)
	if err := a.Release(ctx, key, c.Lease, body); err != nil {
		t.Fatalf("Release(%d bytes of progress) = %v", len(body), err)
	}
	c = mustLease(t, b, key, strings.Repeat("f", 64), time.Minute)
	if !bytes.Equal(c.Progress, body) {
		t.Errorf("progress came back as %d bytes; want the %d stored", len(c.Progress), len(body))
	}
	mustFinish(t, b, key, c.Lease, Response{Status: 503, Body: body}, time.Hour)
	r := mustClaim(t, a, key, strings.Repeat("f", 64), time.Minute)
	if r.Replay == nil || r.Replay.Status != 503 || !bytes.Equal(r.Replay.Body, body) {
		t.Errorf("replay of a %d-byte body: %+v; want it whole", len(body), r.Replay != nil)
	}

	msg := MessageKey{MessageID: strings.Repeat("m", 64), ContentHash: strings.Repeat("c", 64)}
	if err := a.SaveMessageProgress(ctx, msg, body, false); err != nil {
		t.Fatalf("SaveMessageProgress(%d bytes) = %v", len(body), err)
	}
	if p, _, err := b.MessageProgress(ctx, msg); !bytes.Equal(p, body) || err != nil {
		t.Errorf("MessageProgress = %d bytes, %v; want the %d stored", len(p), err, len(body))
	}

	h := strings.Repeat("s", 43)
	if err := a.PutStatus(ctx, h, body, time.Hour); err != nil {
		t.Fatalf("PutStatus(%d bytes) = %v", len(body), err)
	}
	bigger := append(clone(body), body...)
	if err := b.UpdateStatus(ctx, h, time.Hour, func([]byte) ([]byte, error) { return bigger, nil }); err != nil {
		t.Fatalf("UpdateStatus to %d bytes = %v", len(bigger), err)
	}
	if got, err := a.GetStatus(ctx, h); !bytes.Equal(got, bigger) || err != nil {
		t.Errorf("GetStatus = %d bytes, %v; want the %d stored", len(got), err, len(bigger))
	}
}
