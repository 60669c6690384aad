package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ttl = 10 * time.Minute

var (
	bodyA = []byte(`{"upn":"alice@contoso.com"}`)
	bodyB = []byte(`{"upn":"bob@contoso.com"}`)
)

// clock is an injectable time source. Every reading is also announced on calls (when set), which
// tells a test that a goroutine has reached Claim's lookup, and so will wait, without sleeping.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	calls chan struct{}
}

func newClock(buffer int) *clock {
	return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), calls: make(chan struct{}, buffer)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case c.calls <- struct{}{}:
	default:
	}
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitReadings blocks until the store has read the clock n more times.
func (c *clock) waitReadings(t *testing.T, n int) {
	t.Helper()
	for range n {
		<-c.calls
	}
}

// drain forgets the readings so far.
func (c *clock) drain() {
	for {
		select {
		case <-c.calls:
		default:
			return
		}
	}
}

// mustClaimFirst claims key and fails unless the caller is the first (gets a commit function).
func mustClaimFirst(t *testing.T, s *Store, key string, body []byte) func(*Response) {
	t.Helper()
	resp, commit, err := s.Claim(context.Background(), key, body)
	if err != nil || resp != nil || commit == nil {
		t.Fatalf("Claim(%q, %s) = %v, commit %v, %v; want a fresh claim", key, body, resp, commit != nil, err)
	}
	return commit
}

// mustReplay claims key and fails unless it gets want back.
func mustReplay(t *testing.T, s *Store, key string, body []byte, want *Response) {
	t.Helper()
	resp, commit, err := s.Claim(context.Background(), key, body)
	if err != nil || commit != nil || !reflect.DeepEqual(resp, want) {
		t.Fatalf("Claim(%q, %s) = %+v, commit %v, %v; want replay of %+v", key, body, resp, commit != nil, err, want)
	}
}

func okResponse(s string) *Response {
	return &Response{Status: 200, ContentType: "application/json", Body: []byte(s)}
}

func TestClaimCommitReplay(t *testing.T) {
	t.Parallel()
	s := New(ttl, newClock(0).now)
	commit := mustClaimFirst(t, s, "msg_1", bodyA)
	want := okResponse(`{"status":"revoked"}`)
	commit(want)
	mustReplay(t, s, "msg_1", bodyA, want)
	mustReplay(t, s, "msg_1", bodyA, want)

	// Another key is independent.
	mustClaimFirst(t, s, "msg_2", bodyA)(okResponse("2"))
	mustReplay(t, s, "msg_1", bodyA, want)
	if got := s.Len(); got != 2 {
		t.Errorf("Len() = %d; want 2", got)
	}
}

func TestClaimConflict(t *testing.T) {
	t.Parallel()
	s := New(ttl, newClock(0).now)
	commit := mustClaimFirst(t, s, "msg_1", bodyA)

	// While the first request runs. A cancelled context makes a wrongly waiting Claim return
	// ctx.Err() at once instead of hanging the test.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if resp, c, err := s.Claim(cancelled, "msg_1", bodyB); !errors.Is(err, ErrConflict) || resp != nil || c != nil {
		t.Errorf("Claim(msg_1, other body) in flight = %v, commit %v, %v; want %v", resp, c != nil, err, ErrConflict)
	}

	want := okResponse("first")
	commit(want)
	if resp, c, err := s.Claim(context.Background(), "msg_1", bodyB); !errors.Is(err, ErrConflict) || resp != nil || c != nil {
		t.Errorf("Claim(msg_1, other body) after commit = %v, commit %v, %v; want %v", resp, c != nil, err, ErrConflict)
	}
	// The conflict changed nothing: the original body still replays.
	mustReplay(t, s, "msg_1", bodyA, want)

	// A body differing only in whitespace is a different body: the hash is over the raw bytes,
	// which is what the signature covered.
	if _, _, err := s.Claim(context.Background(), "msg_1", append(append([]byte{}, bodyA...), ' ')); !errors.Is(err, ErrConflict) {
		t.Errorf("Claim(msg_1, body plus a space) error = %v; want %v", err, ErrConflict)
	}
}

func TestCommitNilForgets(t *testing.T) {
	t.Parallel()
	s := New(ttl, newClock(0).now)
	mustClaimFirst(t, s, "msg_1", bodyA)(nil)
	if got := s.Len(); got != 0 {
		t.Errorf("Len() after commit(nil) = %d; want 0", got)
	}
	// The retry runs again, and may even carry another body: nothing was remembered.
	commit := mustClaimFirst(t, s, "msg_1", bodyB)
	want := okResponse("second run")
	commit(want)
	mustReplay(t, s, "msg_1", bodyB, want)
}

// The commit function acts once; later calls change nothing.
func TestCommitOnce(t *testing.T) {
	t.Parallel()
	s := New(ttl, newClock(0).now)
	commit := mustClaimFirst(t, s, "msg_1", bodyA)
	want := okResponse("kept")
	commit(want)
	commit(nil)
	commit(okResponse("ignored"))
	mustReplay(t, s, "msg_1", bodyA, want)

	forget := mustClaimFirst(t, s, "msg_2", bodyA)
	forget(nil)
	again := mustClaimFirst(t, s, "msg_2", bodyA)
	forget(nil) // a stale commit must not forget the new claim
	again(want)
	mustReplay(t, s, "msg_2", bodyA, want)
}

// Concurrent requests with one key: exactly one runs; the others wait for it and replay its
// response.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	const n = 16
	clk := newClock(4 * n)
	s := New(ttl, clk.now)

	type result struct {
		resp   *Response
		commit func(*Response)
		err    error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			resp, commit, err := s.Claim(context.Background(), "msg_1", bodyA)
			results <- result{resp, commit, err}
		})
	}
	close(start)

	// Every claimant has looked the key up once: one holds it, the others are now waiting.
	clk.waitReadings(t, n)
	first := <-results
	if first.err != nil || first.commit == nil {
		t.Fatalf("first Claim to return = %+v; want the one that runs", first)
	}
	select {
	case r := <-results:
		t.Fatalf("a second Claim returned %+v before the first committed; want it to wait", r)
	default:
	}
	want := okResponse(`{"status":"revoked"}`)
	first.commit(want)
	wg.Wait()
	close(results)
	replays := 0
	for r := range results {
		if r.err != nil || r.commit != nil || !sameResponse(r.resp, want) {
			t.Errorf("waiting Claim = %+v, commit %v, %v; want the first response replayed", r.resp, r.commit != nil, r.err)
			continue
		}
		replays++
	}
	if replays != n-1 {
		t.Errorf("%d claims replayed; want %d", replays, n-1)
	}
}

// When the running request forgets (a retryable outcome), one waiter runs again and the rest wait
// for that one.
func TestConcurrentClaimsAfterForget(t *testing.T) {
	t.Parallel()
	clk := newClock(16)
	s := New(ttl, clk.now)
	commit := mustClaimFirst(t, s, "msg_1", bodyA)
	clk.drain()

	type result struct {
		resp   *Response
		commit func(*Response)
		err    error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			resp, c, err := s.Claim(context.Background(), "msg_1", bodyA)
			results <- result{resp, c, err}
		}()
	}
	clk.waitReadings(t, 2) // both are waiting on the first request
	commit(nil)

	second := <-results
	if second.err != nil || second.commit == nil {
		t.Fatalf("after commit(nil), first Claim to return = %+v; want one that runs again", second)
	}
	want := okResponse("second run")
	second.commit(want)
	third := <-results
	if third.err != nil || third.commit != nil || !sameResponse(third.resp, want) {
		t.Errorf("last Claim = %+v, commit %v, %v; want the second run's response", third.resp, third.commit != nil, third.err)
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	clk := newClock(0)
	s := New(ttl, clk.now)
	want := okResponse("first")
	mustClaimFirst(t, s, "msg_1", bodyA)(want)

	clk.advance(ttl - time.Nanosecond)
	mustReplay(t, s, "msg_1", bodyA, want)
	if _, _, err := s.Claim(context.Background(), "msg_1", bodyB); !errors.Is(err, ErrConflict) {
		t.Errorf("Claim(msg_1, other body) just within the TTL error = %v; want %v", err, ErrConflict)
	}

	clk.advance(time.Nanosecond)
	// Expired: the id may be used again, with any body, and runs.
	commit := mustClaimFirst(t, s, "msg_1", bodyB)
	second := okResponse("second")
	commit(second)
	mustReplay(t, s, "msg_1", bodyB, second)
}

// The TTL counts from the commit, not from the claim: a slow first request is remembered for the
// whole TTL after it answered.
func TestTTLFromCommit(t *testing.T) {
	t.Parallel()
	clk := newClock(0)
	s := New(ttl, clk.now)
	commit := mustClaimFirst(t, s, "msg_1", bodyA)
	clk.advance(2 * ttl) // an in-flight request never expires
	want := okResponse("slow")
	commit(want)
	clk.advance(ttl - time.Second)
	mustReplay(t, s, "msg_1", bodyA, want)
}

func TestClaimContextCancelled(t *testing.T) {
	t.Parallel()
	clk := newClock(4)
	s := New(ttl, clk.now)
	commit := mustClaimFirst(t, s, "msg_1", bodyA)
	clk.drain()

	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		resp   *Response
		commit func(*Response)
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, c, err := s.Claim(ctx, "msg_1", bodyA)
		done <- result{resp, c, err}
	}()
	clk.waitReadings(t, 1) // the waiter found the running request
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.resp != nil || r.commit != nil {
		t.Errorf("Claim with a cancelled context = %v, commit %v, %v; want %v", r.resp, r.commit != nil, r.err, context.Canceled)
	}

	// The first request is unaffected and still remembered.
	want := okResponse("first")
	commit(want)
	mustReplay(t, s, "msg_1", bodyA, want)

	// A deadline behaves alike.
	hold := mustClaimFirst(t, s, "msg_2", bodyA)
	dctx, dcancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer dcancel()
	if _, _, err := s.Claim(dctx, "msg_2", bodyA); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Claim with an expired deadline error = %v; want %v", err, context.DeadlineExceeded)
	}
	hold(nil)
}

// The store is bounded: a flood of unique ids evicts the oldest finished responses, never a
// request still in flight.
func TestEviction(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("fills the store")
	}
	s := New(ttl, newClock(0).now)
	inflight := mustClaimFirst(t, s, "inflight", bodyA)
	for i := range maxEntries + 10 {
		mustClaimFirst(t, s, fmt.Sprintf("msg_%d", i), bodyA)(okResponse("x"))
	}
	if got := s.Len(); got > maxEntries {
		t.Errorf("Len() = %d after %d ids; want at most %d", got, maxEntries+11, maxEntries)
	}
	last := fmt.Sprintf("msg_%d", maxEntries+9)
	mustReplay(t, s, last, bodyA, okResponse("x"))
	mustClaimFirst(t, s, "msg_0", bodyA)(nil) // the oldest was evicted

	// The in-flight request kept its slot: a concurrent duplicate still conflicts or waits.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Claim(cancelled, "inflight", bodyB); !errors.Is(err, ErrConflict) {
		t.Errorf("Claim(inflight, other body) after eviction error = %v; want %v", err, ErrConflict)
	}
	want := okResponse("inflight")
	inflight(want)
	mustReplay(t, s, "inflight", bodyA, want)
}

// Many keys at once, some conflicting, some forgetting: run with -race.
func TestConcurrentMixedUse(t *testing.T) {
	t.Parallel()
	s := New(ttl, nil)
	var ran, replayed, conflicts atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			key := fmt.Sprintf("msg_%d", i%8)
			body := bodyA
			if i%16 == 15 {
				body = bodyB
			}
			resp, commit, err := s.Claim(context.Background(), key, body)
			switch {
			case errors.Is(err, ErrConflict):
				conflicts.Add(1)
			case err != nil:
				t.Errorf("Claim(%q) error = %v", key, err)
			case commit != nil:
				ran.Add(1)
				if i%3 == 0 {
					commit(nil)
				} else {
					commit(okResponse(key))
				}
			case resp == nil || string(resp.Body) != key:
				t.Errorf("Claim(%q) replayed %+v; want the response for %q", key, resp, key)
			default:
				replayed.Add(1)
			}
		})
	}
	wg.Wait()
	if total := ran.Load() + replayed.Load() + conflicts.Load(); total != 64 {
		t.Errorf("ran %d + replayed %d + conflicts %d = %d; want 64", ran.Load(), replayed.Load(), conflicts.Load(), total)
	}
	if ran.Load() < 8 {
		t.Errorf("ran %d requests; want at least one per key (8)", ran.Load())
	}
}

// Expired responses leave as new ids arrive, long before the count bound: memory follows the TTL.
func TestExpiredIDsAreDropped(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := New(time.Minute, clock)
	for i := range 1000 {
		mustClaimFirst(t, s, fmt.Sprintf("old_%d", i), bodyA)(okResponse("x"))
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	mustClaimFirst(t, s, "new", bodyA)(okResponse("y"))
	if got := s.Len(); got != 1 {
		t.Errorf("Len() = %d after every other id expired; want 1", got)
	}
}

// Large responses are bounded by bytes, not only by count.
func TestByteBound(t *testing.T) {
	t.Parallel()
	s := New(time.Hour, nil)
	big := &Response{Status: 200, ContentType: "application/json", Body: make([]byte, 100<<10)}
	for i := range 200 { // 20 MiB of responses
		mustClaimFirst(t, s, fmt.Sprintf("big_%d", i), bodyA)(big)
	}
	if got, limit := s.Len(), maxBytes/(100<<10)+1; got > limit {
		t.Errorf("Len() = %d with 100 KiB responses; want at most %d (maxBytes)", got, limit)
	}
	mustReplay(t, s, "big_199", bodyA, big)
}

func sameResponse(a, b *Response) bool {
	return a != nil && b != nil && a.Status == b.Status && a.ContentType == b.ContentType && bytes.Equal(a.Body, b.Body)
}

// The byte bound is only as honest as the accounting: what the store counts must match what
// its entries really hold on the heap (slot, map entry, order, key, body).
func TestAccountedBytesMatchTheHeap(t *testing.T) {
	const n = 3000
	keys := make([]string, n)
	bodies := make([][]byte, n)
	for i := range n {
		keys[i] = fmt.Sprintf("webhook\x00msg_2KWPBgLlAfxdpx2AI54p%07d", i)
		bodies[i] = bytes.Repeat([]byte{'x'}, 200)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := New(time.Hour, nil)
	for i := range n {
		_, commit, err := s.Claim(t.Context(), keys[i], nil)
		if err != nil || commit == nil {
			t.Fatalf("Claim: %v", err)
		}
		commit(&Response{Status: 200, ContentType: "application/json", Body: bodies[i]})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// keys and bodies were allocated before: count them as the store's, as in production.
	var own int
	for i := range n {
		own += len(keys[i]) + cap(bodies[i])
	}
	heap := int(after.HeapAlloc) - int(before.HeapAlloc) + own
	s.mu.Lock()
	accounted := s.bytes
	s.mu.Unlock()
	t.Logf("%d entries: heap %d B (%d per entry), accounted %d B (%d per entry)", n, heap, heap/n, accounted, accounted/n)
	if ratio := float64(accounted) / float64(heap); ratio < 0.8 || ratio > 1.3 {
		t.Errorf("accounted %d bytes for %d on the heap (ratio %.2f); want within 0.8-1.3", accounted, heap, ratio)
	}
	runtime.KeepAlive(s)
}
