package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outage handling of *Shared.
const (
	// tripAfter is how many table operations in a row must fail before Shared stops asking the
	// table: one slow or refused call is a blip, and the operations after it still go to the
	// table. A failed probe trips it at once.
	tripAfter = 3
	// probeEvery is how often the background probe asks a table that is down whether it is
	// back, so that an idle instance notices the recovery too.
	probeEvery = 5 * time.Second
	// reportEvery limits onFallback while the table stays down, so a dead table does not flood
	// the logs and telemetry.
	reportEvery = time.Minute
	// maxPending bounds what Shared keeps to write back to the table once it answers again; past
	// it, outcomes stay in memory only (this instance still answers them).
	maxPending = 10_000
	// memTakenFor is how long tokens taken from memory's bucket are counted for refunds: the
	// engine refunds within the job that took them.
	memTakenFor = 2 * time.Minute
)

// Shared is the Store the handler uses with storage: the table, and this instance's memory when
// the table cannot be reached. Revocation beats deduplication during an outage.
//
// One precedence rule: the table when it answers, memory when it does not. An operation the
// table fails (a network error, a timeout, a server error, access refused) is tried once more
// when that is safe, then done in memory; the next operation asks the table again. Only
// tripAfter failures in a row, or a failed probe, make Shared "degraded": operations then go to
// memory at once, a background probe asks the table every probeEvery, and onFallback is told (at
// most once a minute). The first probe that succeeds returns Shared to the table and writes back
// what memory took meanwhile: final responses and progress of leases the table gave, statuses and
// message progress (never over what the table holds).
//
// What memory holds of this instance's own attempts still counts while the table answers: an
// attempt that runs on a lease memory gave, and a final response not yet written back.
type Shared struct {
	table      *Table
	mem        *Memory
	onFallback func(op string, err error)
	stop       chan struct{}
	closeOnce  sync.Once

	mu         sync.Mutex
	degraded   bool
	failures   int  // table operations failed in a row
	checking   bool // the background probe runs
	lastReport time.Time
	memTaken   float64 // tokens memory's bucket gave in the table's place, for Refund
	memTakenAt time.Time
	pending    pending
}

// pending is what memory took in the table's place and is written back when the table answers.
// Keys: those of the entities themselves (see Memory and docs/state.md).
type pending struct {
	requests map[RequestKey]pendingRequest
	statuses map[string]time.Duration // the status's ttl
	messages map[MessageKey]bool
}

// pendingRequest is the outcome of a lease the table gave, which the table could not take.
type pendingRequest struct {
	lease    string // the table's own lease
	resp     *Response
	progress []byte
	ttl      time.Duration
}

func (p *pending) size() int { return len(p.requests) + len(p.statuses) + len(p.messages) }

var _ Store = (*Shared)(nil)

// NewShared returns a Store on t with m as its fallback. onFallback(op, err) is called when the
// table is taken for down (rate-limited); it may be nil. A table that could not be reached when
// it was opened starts Shared degraded, with the probe running. Close stops the probe.
func NewShared(t *Table, m *Memory, onFallback func(op string, err error)) *Shared {
	if onFallback == nil {
		onFallback = func(string, error) {}
	}
	s := &Shared{table: t, mem: m, onFallback: onFallback, stop: make(chan struct{}),
		pending: pending{requests: map[RequestKey]pendingRequest{}, statuses: map[string]time.Duration{}, messages: map[MessageKey]bool{}}}
	if err := t.unreachableAtStart; err != nil {
		s.mu.Lock()
		s.tripLocked("start", err)
		s.checking = true
		s.mu.Unlock()
		go s.check("start")
	}
	return s
}

// Close stops the background probe.
func (s *Shared) Close() { s.closeOnce.Do(func() { close(s.stop) }) }

// tryTable reports whether an operation should go to the table: always, unless degraded.
func (s *Shared) tryTable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.degraded
}

// retry reports whether an operation the table failed with err may be tried again at once: a
// quick failure of the table (a refused or reset connection, an error answer), not one that
// already used the operation's time, nor the caller giving up, and the table not taken for down.
func (s *Shared) retry(ctx context.Context, err error) bool {
	return tableFailed(ctx, err) && !followed(err) && !errors.Is(err, context.DeadlineExceeded) && s.tryTable()
}

// done records how the table answered op and reports whether op must fall back to memory.
func (s *Shared) done(ctx context.Context, op string, err error) (fallback bool) {
	if !tableFailed(ctx, err) {
		if ctx.Err() == nil { // an answer (the caller giving up says nothing of the table)
			s.mu.Lock()
			s.failures = 0
			s.mu.Unlock()
		}
		return false
	}
	if followed(err) {
		return true // the failure of a write this operation waited for, counted for its writer
	}
	s.mu.Lock()
	s.failures++
	if s.failures >= tripAfter && !s.degraded {
		s.tripLocked(op, err)
	}
	start := !s.checking
	s.checking = true
	s.mu.Unlock()
	if start {
		s.table.logger.Warn("state table operation failed; answered from memory", "op", op, "error", err)
		go s.check(op)
	}
	return true
}

// tripLocked takes the table for down. s.mu must be held.
func (s *Shared) tripLocked(op string, err error) {
	now := s.table.now()
	report := !s.degraded || now.Sub(s.lastReport) >= reportEvery
	s.degraded = true
	if report {
		s.lastReport = now
		s.onFallback(op, err)
	}
}

// check probes the table until it answers, taking it for down while it does not; then it
// returns Shared to the table and writes back what memory took meanwhile.
func (s *Shared) check(op string) {
	for {
		err := s.table.probe(context.Background())
		if err == nil {
			s.mu.Lock()
			was := s.degraded
			s.degraded, s.failures, s.checking = false, 0, false
			s.mu.Unlock()
			if was {
				s.table.logger.Info("state table reachable again", "op", op)
			}
			s.writeBack()
			return
		}
		s.mu.Lock()
		s.tripLocked(op, err)
		s.mu.Unlock()
		t := time.NewTimer(probeEvery)
		select {
		case <-s.stop:
			t.Stop()
			s.mu.Lock()
			s.checking = false
			s.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// writeBack writes to the table what memory took in its place, and forgets it from memory once
// the table holds it (or holds something newer). It stops at the first failure: the table is
// down again, and the next recovery goes on.
func (s *Shared) writeBack() {
	s.mu.Lock()
	p := s.pending
	s.pending = pending{requests: map[RequestKey]pendingRequest{}, statuses: map[string]time.Duration{}, messages: map[MessageKey]bool{}}
	s.mu.Unlock()
	ctx := context.Background()
	failed := false
	for key, r := range p.requests {
		var err error
		if !failed {
			if r.resp != nil {
				err = s.table.Finish(ctx, key, r.lease, *r.resp, r.ttl)
			} else {
				err = s.table.Release(ctx, key, r.lease, r.progress)
			}
		}
		if failed || tableFailed(ctx, err) {
			failed = true
			s.keepPending(func(p *pending) { p.requests[key] = r })
			continue
		}
		s.mem.forgetRequest(key) // written, or the lease was taken over: the table's answer stands
	}
	for handle, ttl := range p.statuses {
		body, err := s.mem.GetStatus(ctx, handle)
		if err != nil {
			continue // expired or evicted meanwhile
		}
		if !failed {
			err = s.table.addStatus(ctx, handle, body, ttl)
		}
		if failed || tableFailed(ctx, err) {
			failed = true
			s.keepPending(func(p *pending) { p.statuses[handle] = ttl })
		}
	}
	for key := range p.messages {
		progress, done, ok := s.mem.peekMessage(key)
		if !ok {
			continue
		}
		var err error
		if !failed {
			err = s.table.addMessageProgress(ctx, key, progress, done)
		}
		if failed || tableFailed(ctx, err) {
			failed = true
			s.keepPending(func(p *pending) { p.messages[key] = true })
			continue
		}
		s.mem.forgetMessage(key)
	}
}

// keepPending records something to write back, within maxPending.
func (s *Shared) keepPending(add func(*pending)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending.size() < maxPending {
		add(&s.pending)
	}
}

// tableFailed reports whether err is the table failing, as opposed to an answer (a conflict, a
// lease lost, nothing found, too large) or the caller giving up.
func tableFailed(ctx context.Context, err error) bool {
	var ip *InProgressError
	switch {
	case err == nil, ctx.Err() != nil,
		errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound), errors.Is(err, ErrLeaseLost),
		errors.Is(err, ErrTooLarge), errors.As(err, &ip):
		return false
	}
	return true
}

// A Shared lease says which store issued it and carries the body hash, so that an outcome the
// table cannot take can still be kept in memory under the right body: "t" or "m", the hash's
// length, ":", the hash, then the store's own lease.
func sharedLease(store byte, bodyHash, inner string) string {
	return string(store) + strconv.Itoa(len(bodyHash)) + ":" + bodyHash + inner
}

func parseSharedLease(lease string) (store byte, bodyHash, inner string, ok bool) {
	if len(lease) < 3 || (lease[0] != 't' && lease[0] != 'm') {
		return 0, "", "", false
	}
	n, rest, found := strings.Cut(lease[1:], ":")
	size, err := strconv.Atoi(n)
	if !found || err != nil || size < 0 || size > len(rest) {
		return 0, "", "", false
	}
	return lease[0], rest[:size], rest[size:], true
}

// Claim implements Store. Memory is asked first only for what it knows of this instance's own
// attempts (one running on a lease memory gave, a final response not yet written back, an id
// bound to another body); then the table, whose answer stands while it answers. Progress is the
// table's when it has some.
func (s *Shared) Claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration) (Claim, error) {
	replay, progress, err := s.mem.peekRequest(key, bodyHash)
	if err != nil {
		return Claim{}, err
	}
	if replay != nil {
		return Claim{Replay: replay}, nil
	}
	if s.tryTable() {
		token := newLease()
		c, err := s.table.claim(ctx, key, bodyHash, lease, token)
		if s.retry(ctx, err) {
			// The same attempt again: an insert that landed unanswered is found as its own.
			c, err = s.table.claim(ctx, key, bodyHash, lease, token)
		}
		if !s.done(ctx, "claim", err) {
			if err != nil || c.Replay != nil {
				return c, err
			}
			if c.Progress == nil {
				c.Progress = progress // kept in memory while the table could not take it
			}
			c.Lease = sharedLease('t', bodyHash, c.Lease)
			return c, nil
		}
	}
	c, err := s.mem.Claim(ctx, key, bodyHash, lease)
	if err != nil || c.Replay != nil {
		return c, err
	}
	c.Lease = sharedLease('m', bodyHash, c.Lease)
	return c, nil
}

// Finish implements Store. A table lease whose outcome the table cannot take keeps it in memory
// and writes it back once the table answers.
func (s *Shared) Finish(ctx context.Context, key RequestKey, lease string, resp Response, ttl time.Duration) error {
	store, bodyHash, inner, ok := parseSharedLease(lease)
	if !ok {
		return ErrLeaseLost
	}
	if store == 'm' {
		return s.mem.Finish(ctx, key, inner, resp, ttl)
	}
	if s.tryTable() {
		err := s.table.Finish(ctx, key, inner, resp, ttl)
		if s.retry(ctx, err) {
			err = s.table.Finish(ctx, key, inner, resp, ttl)
		}
		if !s.done(ctx, "finish", err) {
			if err == nil {
				s.mem.forgetRequest(key)
			}
			return err
		}
	}
	s.mem.keepRequest(key, bodyHash, &resp, nil, ttl)
	s.keepPending(func(p *pending) { p.requests[key] = pendingRequest{lease: inner, resp: &resp, ttl: ttl} })
	return nil
}

// Release implements Store.
func (s *Shared) Release(ctx context.Context, key RequestKey, lease string, progress []byte) error {
	store, bodyHash, inner, ok := parseSharedLease(lease)
	if !ok {
		return ErrLeaseLost
	}
	if store == 'm' {
		return s.mem.Release(ctx, key, inner, progress)
	}
	if s.tryTable() {
		err := s.table.Release(ctx, key, inner, progress)
		if s.retry(ctx, err) {
			err = s.table.Release(ctx, key, inner, progress)
		}
		if !s.done(ctx, "release", err) {
			if err == nil && progress != nil {
				s.mem.forgetRequest(key)
			}
			return err
		}
	}
	if progress != nil {
		s.mem.keepRequest(key, bodyHash, nil, progress, 0)
	}
	s.keepPending(func(p *pending) { p.requests[key] = pendingRequest{lease: inner, progress: clone(progress)} })
	return nil
}

// MessageProgress implements Store: the table's when it answers with some, else memory's.
func (s *Shared) MessageProgress(ctx context.Context, key MessageKey) ([]byte, bool, error) {
	if s.tryTable() {
		p, done, err := s.table.MessageProgress(ctx, key)
		if s.retry(ctx, err) {
			p, done, err = s.table.MessageProgress(ctx, key)
		}
		if !s.done(ctx, "message_progress", err) {
			if err != nil || p != nil || done {
				return p, done, err
			}
		}
	}
	if p, done, ok := s.mem.peekMessage(key); ok {
		return p, done, nil
	}
	return nil, false, nil
}

// SaveMessageProgress implements Store.
func (s *Shared) SaveMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error {
	if s.tryTable() {
		err := s.table.SaveMessageProgress(ctx, key, progress, done)
		if s.retry(ctx, err) {
			err = s.table.SaveMessageProgress(ctx, key, progress, done)
		}
		if !s.done(ctx, "save_message_progress", err) {
			if err == nil {
				s.mem.forgetMessage(key)
			}
			return err
		}
	}
	s.keepPending(func(p *pending) { p.messages[key] = true })
	return s.mem.SaveMessageProgress(ctx, key, progress, done)
}

// PutStatus implements Store. A status the table cannot take is kept in memory and written back
// once the table answers (and the queue trigger can rebuild it meanwhile, see the server).
func (s *Shared) PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error {
	if s.tryTable() {
		err := s.table.PutStatus(ctx, handle, body, ttl)
		if s.retry(ctx, err) {
			err = s.table.PutStatus(ctx, handle, body, ttl)
		}
		if !s.done(ctx, "put_status", err) {
			return err
		}
	}
	s.keepPending(func(p *pending) { p.statuses[handle] = ttl })
	return s.mem.PutStatus(ctx, handle, body, ttl)
}

// GetStatus implements Store. A status the table does not have may have been created in memory
// during an outage; one the table cannot be asked for and memory does not have is
// ErrUnavailable, not ErrNotFound (it may well exist).
func (s *Shared) GetStatus(ctx context.Context, handle string) ([]byte, error) {
	tableErr := ErrUnavailable
	if s.tryTable() {
		body, err := s.table.GetStatus(ctx, handle)
		if s.retry(ctx, err) {
			body, err = s.table.GetStatus(ctx, handle)
		}
		if !s.done(ctx, "get_status", err) {
			if !errors.Is(err, ErrNotFound) {
				return body, err
			}
			tableErr = ErrNotFound
		} else {
			tableErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	body, err := s.mem.GetStatus(ctx, handle)
	if errors.Is(err, ErrNotFound) {
		return nil, tableErr
	}
	return body, err
}

// UpdateStatus implements Store, with GetStatus's answer when neither store has the status.
func (s *Shared) UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func([]byte) ([]byte, error)) error {
	var updateErr error
	tracked := func(body []byte) ([]byte, error) {
		next, err := update(body)
		updateErr = err
		return next, err
	}
	tableErr := ErrUnavailable
	if s.tryTable() {
		err := s.table.UpdateStatus(ctx, handle, ttl, tracked)
		if updateErr == nil && s.retry(ctx, err) {
			err = s.table.UpdateStatus(ctx, handle, ttl, tracked)
		}
		if updateErr != nil && errors.Is(err, updateErr) {
			s.done(ctx, "update_status", nil) // the table answered; update refused
			return err
		}
		if !s.done(ctx, "update_status", err) {
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			tableErr = ErrNotFound
		} else {
			tableErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	err := s.mem.UpdateStatus(ctx, handle, ttl, update)
	if errors.Is(err, ErrNotFound) {
		return tableErr
	}
	if err == nil && !errors.Is(tableErr, ErrNotFound) {
		s.keepPending(func(p *pending) { p.statuses[handle] = ttl })
	}
	return err
}

// Take implements Store: the table's shared bucket, or this instance's own in memory while the
// table does not answer.
func (s *Shared) Take(ctx context.Context, n int) (time.Duration, bool) {
	if s.tryTable() {
		wait, ok, err := s.table.take(ctx, n)
		if !s.done(ctx, "rate_guard", err) {
			return wait, ok
		}
	}
	wait, ok := s.mem.Take(ctx, n)
	if ok && n > 0 {
		s.mu.Lock()
		now := s.table.now()
		if now.Sub(s.memTakenAt) > memTakenFor {
			s.memTaken = 0
		}
		s.memTaken += float64(n)
		s.memTakenAt = now
		s.mu.Unlock()
	}
	return wait, ok
}

// Refund implements Store: tokens go back where they came from — memory's bucket for what it
// gave in the table's place lately, the table's chunk for the rest.
func (s *Shared) Refund(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	toMem := 0
	if s.table.now().Sub(s.memTakenAt) <= memTakenFor {
		toMem = min(n, int(s.memTaken))
		s.memTaken -= float64(toMem)
	}
	s.mu.Unlock()
	s.mem.Refund(toMem)
	s.table.Refund(n - toMem)
}

// Cleanup implements Store: memory's expired entries, then the table's.
func (s *Shared) Cleanup(ctx context.Context) (int, error) {
	deleted, err := s.mem.Cleanup(ctx)
	if err != nil {
		return deleted, err
	}
	if !s.tryTable() {
		return deleted, ErrUnavailable
	}
	n, err := s.table.Cleanup(ctx)
	s.done(ctx, "cleanup", err)
	return deleted + n, err
}

// Mode implements Store: "table", or "degraded" while the table is taken for down.
func (s *Shared) Mode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.degraded {
		return ModeDegraded
	}
	return ModeTable
}
