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
	// probeAfter is how long Shared leaves a failed table alone before one operation tries it
	// again: short enough to return soon after an outage, long enough that requests meanwhile
	// do not each wait for a dead table.
	probeAfter = 20 * time.Second
	// reportEvery limits onFallback while the table stays down, so a dead table does not flood
	// the logs and telemetry.
	reportEvery = time.Minute
)

// ErrUnavailable is returned by *Shared when the table cannot be reached and its memory cannot
// answer in its place (a status written to the table before the outage).
var ErrUnavailable = errors.New("state table unavailable")

// Shared is the Store the handler uses with storage: the table, and this instance's memory when
// the table cannot be reached. Revocation beats deduplication during an outage: an operation the
// table fails (a network error, a timeout, a server error, access refused) is done in memory
// instead, Mode says "degraded", and onFallback is told (at most once a minute while it lasts).
// While degraded, the table is left alone except for one operation every probeAfter, which
// brings Shared back to the table when it succeeds.
//
// What memory took during an outage stays valid for this instance: a final response or progress
// kept in memory is consulted before the table, and dropped once the table holds newer.
type Shared struct {
	table      *Table
	mem        *Memory
	onFallback func(op string, err error)

	mu         sync.Mutex
	degraded   bool
	probeAt    time.Time // when degraded, the next time an operation may try the table
	probing    bool      // an operation is trying the table now
	lastReport time.Time
}

var _ Store = (*Shared)(nil)

// NewShared returns a Store on t with m as its fallback. onFallback(op, err) is called when an
// operation falls back to memory (rate-limited); it may be nil.
func NewShared(t *Table, m *Memory, onFallback func(op string, err error)) *Shared {
	if onFallback == nil {
		onFallback = func(string, error) {}
	}
	return &Shared{table: t, mem: m, onFallback: onFallback}
}

// tryTable reports whether op should go to the table; when it returns true, done must be called
// with the table's error.
func (s *Shared) tryTable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.degraded {
		return true
	}
	if s.probing || s.table.now().Before(s.probeAt) {
		return false
	}
	s.probing = true
	return true
}

// done records how the table answered op and reports whether op must fall back to memory.
func (s *Shared) done(ctx context.Context, op string, err error) (fallback bool) {
	fallback = tableFailed(ctx, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probing = false
	now := s.table.now()
	if !fallback {
		if s.degraded {
			s.degraded = false
			s.table.logger.Info("state table reachable again", "op", op)
		}
		return false
	}
	report := !s.degraded || now.Sub(s.lastReport) >= reportEvery
	s.degraded, s.probeAt = true, now.Add(probeAfter)
	if report {
		s.lastReport = now
		s.onFallback(op, err)
	}
	return true
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

// Claim implements Store.
func (s *Shared) Claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration) (Claim, error) {
	replay, progress, err := s.mem.peekRequest(key, bodyHash)
	if err != nil {
		return Claim{}, err
	}
	if replay != nil {
		return Claim{Replay: replay}, nil
	}
	if s.tryTable() {
		c, err := s.table.Claim(ctx, key, bodyHash, lease)
		if !s.done(ctx, "claim", err) {
			if err != nil || c.Replay != nil {
				return c, err
			}
			if progress != nil { // kept in memory after the table's, so newer
				c.Progress = progress
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

// Finish implements Store. A table lease whose outcome the table cannot take keeps it in memory.
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
		if !s.done(ctx, "finish", err) {
			if err == nil {
				s.mem.forgetRequest(key)
			}
			return err
		}
	}
	s.mem.keepRequest(key, bodyHash, &resp, nil, ttl)
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
	return nil
}

// MessageProgress implements Store.
func (s *Shared) MessageProgress(ctx context.Context, key MessageKey) ([]byte, bool, error) {
	if p, done, ok := s.mem.peekMessage(key); ok {
		return p, done, nil // saved while the table was down, so newer than the table's
	}
	if s.tryTable() {
		p, done, err := s.table.MessageProgress(ctx, key)
		if !s.done(ctx, "message_progress", err) {
			return p, done, err
		}
	}
	return nil, false, nil
}

// SaveMessageProgress implements Store.
func (s *Shared) SaveMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error {
	if s.tryTable() {
		err := s.table.SaveMessageProgress(ctx, key, progress, done)
		if !s.done(ctx, "save_message_progress", err) {
			if err == nil {
				s.mem.forgetMessage(key)
			}
			return err
		}
	}
	return s.mem.SaveMessageProgress(ctx, key, progress, done)
}

// PutStatus implements Store.
func (s *Shared) PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error {
	if s.tryTable() {
		err := s.table.PutStatus(ctx, handle, body, ttl)
		if !s.done(ctx, "put_status", err) {
			return err
		}
	}
	return s.mem.PutStatus(ctx, handle, body, ttl)
}

// GetStatus implements Store. A status the table does not have may have been created in memory
// during an outage; one the table cannot be asked for and memory does not have is
// ErrUnavailable, not ErrNotFound (it may well exist).
func (s *Shared) GetStatus(ctx context.Context, handle string) ([]byte, error) {
	tableErr := ErrUnavailable
	if s.tryTable() {
		body, err := s.table.GetStatus(ctx, handle)
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
	return err
}

// Take implements Store: the table's shared bucket, or this instance's own in memory while the
// table is down.
func (s *Shared) Take(ctx context.Context, n int) (time.Duration, bool) {
	if s.tryTable() {
		wait, ok, err := s.table.take(ctx, n)
		if !s.done(ctx, "rate_guard", err) {
			return wait, ok
		}
	}
	return s.mem.Take(ctx, n)
}

// Refund implements Store.
func (s *Shared) Refund(n int) {
	if s.Mode() == ModeDegraded {
		s.mem.Refund(n)
		return
	}
	s.table.Refund(n)
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

// Mode implements Store: "table", or "degraded" while the table cannot be reached.
func (s *Shared) Mode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.degraded {
		return ModeDegraded
	}
	return ModeTable
}
