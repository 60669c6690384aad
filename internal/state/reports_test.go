package state

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// taker is either reports limit.
type taker interface {
	Take(ctx context.Context) (time.Duration, bool)
}

// mustHoldLimit takes from the takers (instances) concurrently, advancing the clock, and checks
// that no window of ReportsWindow ever admitted more than ReportsLimit.
func mustHoldLimit(t *testing.T, clock *fakeClock, takers ...taker) {
	t.Helper()
	var admitted []time.Time
	for step := 0; step < 30; step++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, tk := range takers {
			for range 3 {
				wg.Go(func() {
					if _, ok := tk.Take(context.Background()); ok {
						mu.Lock()
						admitted = append(admitted, clock.Now())
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		clock.Advance(time.Second)
	}
	if len(admitted) < 10 {
		t.Fatalf("admitted %d requests in 30 s; want the limit used, about 14", len(admitted))
	}
	for i, a := range admitted {
		n := 0
		for _, b := range admitted[i:] {
			if b.Sub(a) < ReportsWindow {
				n++
			}
		}
		if n > ReportsLimit {
			t.Fatalf("%d requests admitted within %s from %s; want at most %d", n, ReportsWindow, a, ReportsLimit)
		}
	}
}

func TestReportsLimitInMemory(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := NewReports(clock.Now)
	mustHoldLimit(t, clock, r)
	// A full window says how long until the oldest leaves it.
	clock.Advance(time.Hour)
	for range ReportsLimit {
		r.Take(context.Background())
	}
	if wait, ok := r.Take(context.Background()); ok || wait <= 0 || wait > ReportsWindow+reportsMargin {
		t.Errorf("Take on a full window = %v, %v; want refused with a wait within the window", wait, ok)
	}
}

func TestReportsLimitAcrossInstances(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	clock := newFakeClock()
	name := tableName()
	a := NewTableReports(mustTable(t, az.ConnectionString, name, clock, 0))
	b := NewTableReports(mustTable(t, az.ConnectionString, name, clock, 0))
	mustHoldLimit(t, clock, a, b)
}
