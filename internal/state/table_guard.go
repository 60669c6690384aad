package state

// The rate guard on the table (the bucket itself is sharedGuard, guard.go).

import (
	"context"
	"time"
)

// Take implements Store with the bucket shared by all instances (see sharedGuard). When the table
// cannot be reached it falls back to this instance's own bucket.
func (t *Table) Take(ctx context.Context, n int) (time.Duration, bool) {
	wait, ok, err := t.take(ctx, n)
	if err != nil {
		t.logger.Warn("state table rate guard unreachable, using the instance's own", "error", err)
		return t.fallbackGuard.take(n)
	}
	return wait, ok
}

// take is Take without the fallback. Its time limit (opTimeout) covers the table's round trips
// only, never the wait for another caller's write of the bucket (see sharedGuard).
func (t *Table) take(ctx context.Context, n int) (time.Duration, bool, error) {
	return t.guard.take(ctx, t, n)
}

// Refund implements Store: the tokens go back to this instance's chunk (see sharedGuard).
func (t *Table) Refund(n int) { t.guard.refund(t.now(), n) }
