package state

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// sharedGuard is the rate guard across instances: one bucket entity in the table holds a
// minute's worth of tokens and refills continuously, like the per-instance bucket. An instance
// takes tokens from it in small chunks with a write conditional on the bucket's ETag (no lost
// update, so no over-use), keeps them locally for a few seconds, and drops what it has not used
// by then (under-use, never over-use). Key: rateGuardKey, one for the table, so every instance
// of the Function App meets on it — that is the point.
//
// No lock is held across a round trip to the table: one caller at a time (the filler) reads and
// writes the bucket, for itself and for every caller that arrives meanwhile, who wait for that
// write (within their own deadline) and then take from the chunk it brought. So a slow table
// slows takers down by one round trip, never by a queue of them, and a caller's table time limit
// starts when its own round trip does.
type sharedGuard struct {
	limit float64 // tokens per minute; 0 turns the guard off

	mu         sync.Mutex
	local      float64   // tokens this instance took and has not used
	localUntil time.Time // when the local tokens are dropped
	// Demand of this instance: tokens taken in the current and the previous window, to size the
	// next chunk by what the instance really uses.
	windowStart     time.Time
	thisWin, prevWi float64
	// filling is the write of the bucket in flight, nil when none; waiting is what the callers
	// waiting for it want, so that the write takes it for them too.
	filling *fill
	waiting float64
	// offset is how far this instance's clock is behind the latest bucket time it has seen: an
	// instance whose clock runs ahead writes a Last in everyone else's future, and those behind
	// adopt its time for the bucket instead of refilling nothing until they catch up.
	offset time.Duration

	// The bucket as last read or written; its ETag makes the next write conditional. Another
	// instance's write makes it stale, which the conditional write detects. Only the filler
	// touches these, so they need no lock.
	known     bool
	tokens    float64
	last      time.Time
	want      float64   // tokens held back for a large job that was refused (see write)
	wantUntil time.Time // when that hold lapses
	etag      azcore.ETag
}

// fill is one write of the bucket that callers wait for.
type fill struct {
	done chan struct{}
	err  error // the table failed the write
}

// errFollowed wraps the error of a bucket write that a caller waited for rather than made: the
// caller falls back like the writer, but the failure is counted once, for the writer.
type errFollowed struct{ err error }

func (e errFollowed) Error() string { return "rate guard: " + e.err.Error() }
func (e errFollowed) Unwrap() error { return e.err }

const (
	// chunkHold is how long an instance keeps tokens it took but did not use.
	chunkHold = 5 * time.Second
	// demandWindow is the window over which an instance's demand sizes its next chunk.
	demandWindow = 2 * time.Second
	// bucketIdleTTL is how long the bucket entity is kept after its last write; once idle that
	// long it is full anyway, and Cleanup may delete it.
	bucketIdleTTL = time.Hour
	// skewAdopt is the least lead of the bucket's Last over this instance's clock taken for a
	// clock ahead (see adopt): well above the spread of writes, well below a frozen bucket.
	skewAdopt = 2 * time.Second
	// wantGrace is how long a large job's hold outlasts the wait it was told, for it to come back.
	wantGrace = 5 * time.Second
)

func newSharedGuard(perMinute int) *sharedGuard { return &sharedGuard{limit: float64(perMinute)} }

// maxChunk is the most an instance takes beyond what it needs: a second's worth of the limit, at
// least one token.
func (g *sharedGuard) maxChunk() float64 { return max(1, float64(int(g.limit/60))) }

func (g *sharedGuard) take(ctx context.Context, t *Table, n int) (time.Duration, bool, error) {
	if g.limit == 0 || n <= 0 {
		return 0, true, nil
	}
	for {
		g.mu.Lock()
		now := t.now().Add(g.offset)
		g.noteDemand(now, 0)
		if !now.Before(g.localUntil) {
			g.local = 0
		}
		if g.local >= float64(n) {
			g.local -= float64(n)
			g.noteDemand(now, float64(n))
			g.mu.Unlock()
			return 0, true, nil
		}
		if f := g.filling; f != nil {
			// Someone is writing the bucket: it takes for us too; then look again.
			g.waiting += float64(n)
			g.mu.Unlock()
			var err error
			select {
			case <-f.done:
				err = f.err
			case <-ctx.Done():
				err = ctx.Err()
			}
			g.mu.Lock()
			g.waiting -= float64(n)
			g.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					err = errFollowed{err}
				}
				return 0, false, err
			}
			continue
		}
		f := &fill{done: make(chan struct{})}
		g.filling = f
		need := float64(n) - g.local
		others := g.waiting
		extra := min(g.maxChunk(), g.thisWin+g.prevWi)
		g.mu.Unlock()

		grant, wait, err := g.write(ctx, t, now, need, others+extra)

		g.mu.Lock()
		g.filling = nil
		f.err = err
		close(f.done)
		if err != nil || grant == 0 {
			g.mu.Unlock()
			return wait, false, err
		}
		g.local += grant - float64(n)
		g.localUntil = now.Add(chunkHold)
		g.noteDemand(now, float64(n))
		g.mu.Unlock()
		return 0, true, nil
	}
}

// write takes need tokens, and up to more besides when the bucket has them, by a write
// conditional on the bucket's ETag; or reports how long until need would be there (grant 0).
// Only the filler calls it.
func (g *sharedGuard) write(ctx context.Context, t *Table, now time.Time, need, more float64) (grant float64, wait time.Duration, err error) {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	for attempt := range maxUpdateAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return 0, 0, err
		}
		if !g.known {
			if err := g.read(ctx, t, now); err != nil {
				return 0, 0, err
			}
			now = g.adopt(t, now)
		}
		tokens, last := g.tokens, g.last
		if now.After(last) {
			tokens = min(g.limit, tokens+now.Sub(last).Minutes()*g.limit)
			last = now
		}
		// A large job refused earlier holds back what it needs, so that a steady flow of small
		// ones cannot keep the bucket below it for ever; smaller jobs take only what is beyond.
		grant, wait = 0, 0
		want, wantUntil := g.want, g.wantUntil
		if !now.Before(wantUntil) {
			want, wantUntil = 0, time.Time{}
		}
		avail := tokens
		if need < want {
			avail = tokens - want
		}
		hold := false
		switch {
		case need > g.limit && tokens >= g.limit:
			grant = need // a job larger than the limit goes through a full bucket
		case need > g.limit:
			wait = time.Duration((g.limit - tokens) / g.limit * float64(time.Minute))
			hold = want < g.limit
		case avail < need:
			wait = time.Duration((need - avail) / g.limit * float64(time.Minute))
			// A job beyond what an instance takes in a chunk holds the bucket for itself; a
			// small one just waits (no write: the bucket as known is if anything fuller).
			hold = need > g.maxChunk() && need > want
		default:
			grant = need + min(more, float64(int(avail-need)))
		}
		if grant == 0 && !hold {
			return 0, wait, nil
		}
		if grant > 0 && need >= want {
			want, wantUntil = 0, time.Time{} // the hold was for this job, or a smaller one
		}
		if hold {
			want, wantUntil = min(need, g.limit), now.Add(wait+wantGrace)
		}
		e := newEntity(rateGuardKey, kindRate, t.now().Add(bucketIdleTTL))
		e.props[propTokens] = tokens - grant
		e.props[propLast] = aztables.EDMInt64(last.UnixNano())
		e.props[propWant] = want
		e.props[propWantUntil] = aztables.EDMInt64(0)
		if !wantUntil.IsZero() {
			e.props[propWantUntil] = aztables.EDMInt64(wantUntil.UnixNano())
		}
		etag, err := t.update(ctx, e, g.etag, aztables.UpdateModeReplace)
		if err == nil {
			g.tokens, g.last, g.want, g.wantUntil, g.etag = tokens-grant, last, want, wantUntil, etag
			return grant, wait, nil
		}
		g.known = false
		if !conditionFailed(err) && !notFound(err) {
			return 0, 0, err
		}
	}
	// Sustained contention: ask the caller to come back shortly rather than spin.
	return 0, time.Second, nil
}

// adopt moves this instance's bucket clock forward to the bucket's Last when another instance's
// clock put it in our future, and returns now on the adopted clock. The bucket's time never runs
// backwards, so skew cannot add tokens; adopting the latest time keeps it from freezing the
// bucket for the instances behind. Only the filler calls it.
//
// A Last only a little ahead is the ordinary spread of writes (another instance wrote after we
// read our clock): adopting it would creep this clock forward with every conflict and add tokens,
// so only a lead beyond skewAdopt counts as a clock ahead; below it the bucket waits, at most that
// long.
func (g *sharedGuard) adopt(t *Table, now time.Time) time.Time {
	ahead := g.last.Sub(now)
	if ahead <= skewAdopt {
		return now
	}
	g.mu.Lock()
	g.offset += ahead
	g.mu.Unlock()
	t.logger.Warn("rate guard: another instance's clock is ahead of this one; using its time for the bucket", "ahead", ahead.String())
	return now.Add(ahead)
}

// read loads the bucket, creating it full when missing.
func (g *sharedGuard) read(ctx context.Context, t *Table, now time.Time) error {
	e, ok, err := t.get(ctx, rateGuardKey)
	if err != nil {
		return err
	}
	if !ok {
		fresh := newEntity(rateGuardKey, kindRate, t.now().Add(bucketIdleTTL))
		fresh.props[propTokens] = g.limit
		fresh.props[propLast] = aztables.EDMInt64(now.UnixNano())
		etag, err := t.add(ctx, fresh)
		if hasCode(err, aztables.EntityAlreadyExists) {
			return g.read(ctx, t, now) // another instance created it first
		}
		if err != nil {
			return err
		}
		g.known, g.tokens, g.last, g.want, g.wantUntil, g.etag = true, g.limit, now, 0, time.Time{}, etag
		return nil
	}
	g.known, g.tokens, g.last, g.etag = true, e.float(propTokens), time.Unix(0, e.int(propLast)), e.etag
	g.want, g.wantUntil = e.float(propWant), time.Time{}
	if until := e.int(propWantUntil); until > 0 {
		g.wantUntil = time.Unix(0, until)
	}
	return nil
}

// noteDemand counts n tokens taken at now into the demand windows.
func (g *sharedGuard) noteDemand(now time.Time, n float64) {
	switch elapsed := now.Sub(g.windowStart); {
	case elapsed >= 2*demandWindow || elapsed < 0:
		g.prevWi, g.thisWin, g.windowStart = 0, 0, now
	case elapsed >= demandWindow:
		g.prevWi, g.thisWin, g.windowStart = g.thisWin, 0, g.windowStart.Add(demandWindow)
	}
	g.thisWin += n
}

// refund returns n tokens to this instance's chunk; they are dropped with it if unused.
func (g *sharedGuard) refund(now time.Time, n int) {
	if g.limit == 0 || n <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now = now.Add(g.offset)
	if !now.Before(g.localUntil) {
		g.local = 0
	}
	g.local = min(g.limit, g.local+float64(n))
	g.localUntil = now.Add(chunkHold)
}

// followed reports whether err is a bucket write failure that the caller waited for.
func followed(err error) bool {
	var f errFollowed
	return errors.As(err, &f)
}
