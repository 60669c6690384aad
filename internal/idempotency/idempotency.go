// Package idempotency remembers responses by request id for a while, so that a caller's retry of
// a request that already ran gets the first response again instead of a second revocation.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

// ErrConflict is returned when an id is reused with a different body.
var ErrConflict = errors.New("request id reused with a different body")

// maxEntries bounds memory: a flood of unique ids evicts the oldest remembered responses first.
const maxEntries = 50_000

// Response is what is replayed.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

type slot struct {
	hash    [sha256.Size]byte
	done    chan struct{} // closed when the first request finished
	resp    *Response     // nil if the first request left nothing to replay
	expires time.Time
}

// entry records an insertion; slot tells a stale record from a later claim of the same key.
type entry struct {
	key  string
	slot *slot
}

// Store is an in-memory, per-instance idempotency store. It is safe for concurrent use.
type Store struct {
	ttl   time.Duration
	now   func() time.Time
	mu    sync.Mutex
	slots map[string]*slot
	order []entry // insertion order, for eviction
}

// New returns a store that remembers responses for ttl.
func New(ttl time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{ttl: ttl, now: now, slots: map[string]*slot{}}
}

// Claim reserves key for a request whose body has the given hash. It returns either a response
// to replay, or a commit function that the caller must call exactly once when done: with the
// response to remember, or nil to forget the key (a retryable outcome should run again). A
// concurrent request with the same key waits for the first one to finish. A different body under
// the same key is ErrConflict.
func (s *Store) Claim(ctx context.Context, key string, body []byte) (*Response, func(*Response), error) {
	hash := sha256.Sum256(body)
	for {
		s.mu.Lock()
		now := s.now()
		sl, ok := s.slots[key]
		if ok && sl.resp != nil && !now.Before(sl.expires) {
			delete(s.slots, key)
			ok = false
		}
		if !ok {
			sl = &slot{hash: hash, done: make(chan struct{})}
			s.insert(key, sl)
			s.mu.Unlock()
			return nil, s.commit(key, sl), nil
		}
		s.mu.Unlock()

		if sl.hash != hash {
			return nil, nil, ErrConflict
		}
		select {
		case <-sl.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if sl.resp != nil {
			return sl.resp, nil, nil
		}
		// The first request left nothing to replay: claim again.
	}
}

func (s *Store) commit(key string, sl *slot) func(*Response) {
	var once sync.Once
	return func(r *Response) {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if r == nil {
				if s.slots[key] == sl {
					delete(s.slots, key)
				}
			} else {
				sl.resp = r
				sl.expires = s.now().Add(s.ttl)
			}
			close(sl.done)
		})
	}
}

// insert adds a slot. Beyond maxEntries it sweeps expired and then the oldest finished entries
// down to 90 % of the limit, so the O(n) pass is paid once per tens of thousands of inserts
// rather than on every new id. Callers hold s.mu.
func (s *Store) insert(key string, sl *slot) {
	s.slots[key] = sl
	s.order = append(s.order, entry{key: key, slot: sl})
	if len(s.order) <= maxEntries {
		return
	}
	now := s.now()
	excess := len(s.slots) - maxEntries*9/10
	kept := s.order[:0]
	for _, e := range s.order {
		cur, ok := s.slots[e.key]
		if !ok || cur != e.slot {
			continue // forgotten, or the key was claimed again later
		}
		if cur.resp != nil && (!now.Before(cur.expires) || excess > 0) {
			delete(s.slots, e.key)
			excess--
			continue
		}
		kept = append(kept, e)
	}
	clear(s.order[len(kept):])
	s.order = kept
}

// Len returns the number of remembered or in-flight ids.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.slots)
}
