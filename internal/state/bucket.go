package state

import (
	"math"
	"sync"
	"time"
)

// bucket is a token bucket holding a minute's worth of revocations: it refills continuously, so
// a runaway or compromised caller is held to the configured rate without a cliff at each minute.
// It is one process's rate guard (*Memory); *Table shares one across instances.
type bucket struct {
	mu     sync.Mutex
	limit  float64 // tokens per minute and bucket size; 0 disables the guard
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(perMinute int, now func() time.Time) *bucket {
	return &bucket{limit: float64(perMinute), tokens: float64(perMinute), last: now(), now: now}
}

// take takes n tokens, or reports how long until they would be there. A job larger than the
// whole bucket is let through on a full bucket (and drives the balance negative), so that a
// legitimate bulk request is slowed, not refused forever.
func (g *bucket) take(n int) (wait time.Duration, ok bool) {
	if g.limit == 0 || n <= 0 {
		return 0, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refill()
	need := math.Min(float64(n), g.limit)
	if g.tokens >= need {
		g.tokens -= float64(n)
		return 0, true
	}
	// Precise, so that a waiting job wakes when its token is there; HTTP rounds up for Retry-After.
	wait = time.Duration(math.Ceil((need - g.tokens) / g.limit * float64(time.Minute)))
	return wait, false
}

// refund returns tokens for revocations that did not reach Graph (guard rails, lookups failed).
func (g *bucket) refund(n int) {
	if g.limit == 0 || n <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens = math.Min(g.limit, g.tokens+float64(n))
}

func (g *bucket) refill() {
	now := g.now()
	if elapsed := now.Sub(g.last); elapsed > 0 {
		g.tokens = math.Min(g.limit, g.tokens+elapsed.Minutes()*g.limit)
	}
	g.last = now
}
