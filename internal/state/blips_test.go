package state

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// Shared on Azurite with a fault proxy between it and the table: blips, slow tables, a clock
// ahead and a first start with the table down. Run by TestOnAzurite.
func testBlips(t *testing.T, az testenv.Azurite) {
	t.Run("one refused connection takes no second lease", func(t *testing.T) { testRefusedConnection(t, az) })
	t.Run("150 ms and 600 ms latency are not an outage", func(t *testing.T) { testSlowTable(t, az) })
	t.Run("rate guard within its limit at 150 ms latency", func(t *testing.T) { testRateGuardSlowTable(t, az) })
	t.Run("a clock ahead does not freeze the rate guard", func(t *testing.T) { testClockAhead(t, az) })
	t.Run("a table down at start is not reported as up", func(t *testing.T) { testDownAtStart(t, az) })
	t.Run("a large job is not starved by small ones", func(t *testing.T) { testLargeJobNotStarved(t, az) })
}

// proxied is a Shared (real clock unless clock is given) whose table is behind a fault proxy.
func proxied(t *testing.T, az testenv.Azurite, name string, clock *fakeClock, rate int, f *fallbacks) (*Shared, *testenv.FaultProxy) {
	t.Helper()
	p := testenv.StartFaultProxy(t, testenv.HostPort(az.TableEndpoint))
	cfg := tableConfig(t, withTableEndpoint(az.ConnectionString, p.TableEndpoint()), name, newFakeClock(), rate)
	cfg.Now = time.Now
	memNow := time.Now
	if clock != nil {
		cfg.Now, memNow = clock.Now, clock.Now
	}
	tb, err := NewTable(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := NewShared(tb, NewMemory(MemoryConfig{RatePerMinute: rate, Now: memNow}), f.record)
	t.Cleanup(s.Close)
	return s, p
}

func testRefusedConnection(t *testing.T, az testenv.Azurite) {
	ctx := context.Background()
	f := &fallbacks{}
	name := tableName()
	a, p := proxied(t, az, name, nil, 600, f)
	b := mustTable(t, az.ConnectionString, name, newFakeClock(), 600)
	b.now = time.Now
	for _, refused := range []int{1, 2} {
		key := RequestKey{Scope: "webhook", ID: "held-by-b-" + string(rune('0'+refused))}
		mustLease(t, b, key, "h", 30*time.Second)
		// A blip on another operation first, then on the claim itself.
		p.RefuseNext(refused)
		if _, err := a.GetStatus(ctx, "no-such-status-handle"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%d refused: GetStatus = %v; want ErrNotFound from the table", refused, err)
		}
		p.RefuseNext(refused)
		_, err := a.Claim(ctx, key, "h", 30*time.Second)
		var busy *InProgressError
		if !errors.As(err, &busy) {
			t.Errorf("%d refused connections: claim of an id another instance holds = %v; want in progress (no second lease)", refused, err)
		}
		if got := a.Mode(); got != ModeTable {
			t.Errorf("%d refused connections: Mode() = %q; want %q", refused, got, ModeTable)
		}
	}
	if got := f.list(); len(got) != 0 {
		t.Errorf("onFallback calls %v; want none for blips", got)
	}
}

func testSlowTable(t *testing.T, az testenv.Azurite) {
	ctx := context.Background()
	for _, latency := range []time.Duration{150 * time.Millisecond, 600 * time.Millisecond} {
		f := &fallbacks{}
		a, p := proxied(t, az, tableName(), nil, 600, f)
		p.SetLatency(latency)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				key := RequestKey{Scope: "webhook", ID: "slow-" + string(rune('a'+i))}
				c, err := a.Claim(ctx, key, "h", 40*time.Second)
				if err != nil || c.Lease == "" || c.Lease[0] != 't' {
					t.Errorf("%v: Claim = %+v, %v; want a table lease", latency, c, err)
					return
				}
				if _, ok := a.Take(ctx, 1); !ok {
					t.Errorf("%v: Take refused", latency)
				}
				handle := "slow-status-handle-" + string(rune('a'+i))
				if err := a.PutStatus(ctx, handle, []byte(`{}`), time.Hour); err != nil {
					t.Errorf("%v: PutStatus = %v", latency, err)
				}
				if err := a.UpdateStatus(ctx, handle, time.Hour, func([]byte) ([]byte, error) { return []byte(`{"v":1}`), nil }); err != nil {
					t.Errorf("%v: UpdateStatus = %v", latency, err)
				}
				if err := a.Finish(ctx, key, c.Lease, Response{Status: 200}, time.Hour); err != nil {
					t.Errorf("%v: Finish = %v", latency, err)
				}
			})
		}
		wg.Wait()
		if got := a.Mode(); got != ModeTable {
			t.Errorf("%v latency: Mode() = %q; want %q", latency, got, ModeTable)
		}
		if got := f.list(); len(got) != 0 {
			t.Errorf("%v latency: onFallback calls %v; want none", latency, got)
		}
	}
}

// testRateGuardSlowTable: two instances, 25 bulk jobs each, taking for 15 s from a table that
// answers in 150 ms: none of it falls back to the instances' own buckets, and together they
// stay within the limit (+10 %).
func testRateGuardSlowTable(t *testing.T, az testenv.Azurite) {
	const rate, jobs, per, run = 600, 25, 10, 15 * time.Second
	name := tableName()
	f := &fallbacks{}
	var granted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 2 {
		s, p := proxied(t, az, name, nil, rate, f)
		p.SetLatency(150 * time.Millisecond)
		for range jobs {
			wg.Go(func() {
				for time.Since(start) < run {
					ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
					wait, ok := s.Take(ctx, per)
					cancel()
					if ok {
						granted.Add(per)
						continue
					}
					time.Sleep(min(wait, time.Second))
				}
			})
		}
		t.Cleanup(func() {
			if got := s.Mode(); got != ModeTable {
				t.Errorf("Mode() after the run = %q; want %q", got, ModeTable)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	allowed := float64(rate) + elapsed.Minutes()*rate
	if got := float64(granted.Load()); got > 1.1*allowed || got < float64(rate) {
		t.Errorf("granted %v in %v at 150 ms latency; want at most %v (+10%%) and at least the first bucket (%d)", got, elapsed, 1.1*allowed, rate)
	}
	if got := f.list(); len(got) != 0 {
		t.Errorf("onFallback calls %v; want none: a slow table is not an outage", got)
	}
	t.Logf("granted %d of %.0f allowed in %v", granted.Load(), allowed, elapsed.Round(time.Millisecond))
}

// testClockAhead: instance B's clock runs a minute ahead. After B empties the bucket, A (on
// time) refills as time passes instead of waiting for B's clock, and neither takes more than
// the refill.
func testClockAhead(t *testing.T, az testenv.Azurite) {
	ctx := context.Background()
	name := tableName()
	clockA := newFakeClock()
	clockB := &fakeClock{t: clockA.Now().Add(time.Minute)}
	a := mustTable(t, az.ConnectionString, name, clockA, 60)
	b := mustTable(t, az.ConnectionString, name, clockB, 60)
	if _, ok, err := b.take(ctx, 60); !ok || err != nil {
		t.Fatalf("B takes the whole bucket = %v, %v", ok, err)
	}
	if _, ok, _ := a.take(ctx, 1); ok {
		t.Errorf("A took from an empty bucket")
	}
	clockA.Advance(10 * time.Second)
	clockB.Advance(10 * time.Second)
	if _, ok, err := a.take(ctx, 9); !ok || err != nil {
		t.Errorf("A after 10 s (10 tokens refilled) = %v, %v; want the bucket not frozen by B's clock", ok, err)
	}
	if _, ok, _ := b.take(ctx, 5); ok {
		t.Errorf("B took 5 more after A took 9 of the 10 refilled: over-use (A %+v, B %+v)", a.guard, b.guard)
	}
}

func testDownAtStart(t *testing.T, az testenv.Azurite) {
	p := testenv.StartFaultProxy(t, testenv.HostPort(az.TableEndpoint))
	p.Set("down")
	cfg := tableConfig(t, withTableEndpoint(az.ConnectionString, p.TableEndpoint()), tableName(), newFakeClock(), 600)
	cfg.Now = time.Now
	tb, err := NewTable(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fallbacks{}
	s := NewShared(tb, NewMemory(MemoryConfig{RatePerMinute: 600}), f.record)
	t.Cleanup(s.Close)
	if got := s.Mode(); got != ModeDegraded {
		t.Errorf("Mode() with the table down at start = %q; want %q", got, ModeDegraded)
	}
	if got := f.list(); len(got) != 1 || got[0] != "start" {
		t.Errorf("onFallback calls %v; want one, for start", got)
	}
	p.Set("up")
	mustMode(t, s, ModeTable, "the table up after a start without it")
}

// testLargeJobNotStarved: a 100-token job refused on a low bucket holds it; steady single takes
// from another instance then wait for it instead of keeping the bucket below 100 for ever.
func testLargeJobNotStarved(t *testing.T, az testenv.Azurite) {
	ctx := context.Background()
	name := tableName()
	clock := newFakeClock()
	big := mustTable(t, az.ConnectionString, name, clock, 600)
	small := mustTable(t, az.ConnectionString, name, clock, 600)
	if _, ok, err := small.take(ctx, 600); !ok || err != nil {
		t.Fatalf("emptying the bucket = %v, %v", ok, err)
	}
	wait, ok, err := big.take(ctx, 100)
	if ok || err != nil || wait <= 0 {
		t.Fatalf("large job on an empty bucket = %v, %v, %v; want refused with a wait", wait, ok, err)
	}
	// Single takes every 100 ms (the refill's pace): without the hold they would keep the bucket
	// near empty; with it they wait until the large job has had its turn.
	for range 100 {
		clock.Advance(100 * time.Millisecond)
		small.guard.mu.Lock()
		small.guard.local = 0 // no chunk kept: every take goes to the bucket
		small.guard.mu.Unlock()
		_, _, _ = small.take(ctx, 1)
	}
	if _, ok, err := big.take(ctx, 100); !ok || err != nil {
		t.Errorf("large job after 10 s of single takes = %v, %v; want its turn (100 refilled, held for it)", ok, err)
	}
}
