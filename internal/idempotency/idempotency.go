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

// Bounds on memory: a flood of unique ids evicts the oldest remembered responses first, before
// their TTL. maxBytes keeps the store small next to the process: the garbage collector lets the
// heap grow to twice what is live, so every remembered byte costs about two of resident memory.
// 2 MiB holds about 5,000 single-user responses, several minutes of a busy incident. An id
// evicted early is only a second revocation if the caller retries it, which Graph tolerates.
// maxEntries bounds the bookkeeping of tiny responses.
const (
	maxEntries = 50_000
	maxBytes   = 2 << 20
	// slotOverhead is a remembered slot's memory beyond its key and body: the slot, its map
	// entry and its place in the insertion order (TestAccountedBytesMatchTheHeap measures it).
	slotOverhead = 192
)

// Response is what is replayed.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

type slot struct {
	hash [sha256.Size]byte
	// done is closed when the first request finished; then it is swapped for the store's shared
	// closed channel, so that a remembered slot does not keep a channel of its own.
	done    chan struct{}
	resp    Response // valid when kept
	kept    bool     // false while in flight, and when the first request left nothing to replay
	expires int64    // Unix nanoseconds
	size    int      // bytes accounted to the store once kept
}

// entry records an insertion; slot tells a stale record from a later claim of the same key.
type entry struct {
	key  string
	slot *slot
}

// Store is an in-memory, per-instance idempotency store. It is safe for concurrent use.
type Store struct {
	ttl    time.Duration
	now    func() time.Time
	closed chan struct{} // shared by every finished slot
	mu     sync.Mutex
	slots  map[string]*slot
	order  []entry // insertion order, for eviction; entries before head are gone
	head   int
	bytes  int // accounted size of remembered responses
}

// New returns a store that remembers responses for ttl.
func New(ttl time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	closed := make(chan struct{})
	close(closed)
	return &Store{ttl: ttl, now: now, closed: closed, slots: map[string]*slot{}}
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
		if ok && sl.kept && now.UnixNano() >= sl.expires {
			s.remove(key, sl)
			ok = false
		}
		if !ok {
			sl = &slot{hash: hash, done: make(chan struct{})}
			s.insert(key, sl)
			s.mu.Unlock()
			return nil, s.commit(key, sl), nil
		}
		done := sl.done // read under the lock: commit swaps it
		s.mu.Unlock()

		if sl.hash != hash {
			return nil, nil, ErrConflict
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if sl.kept { // set before done was closed, never changed after
			r := sl.resp
			return &r, nil, nil
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
				s.remove(key, sl)
			} else {
				sl.resp, sl.kept = *r, true
				sl.expires = s.now().Add(s.ttl).UnixNano()
				sl.size = len(key) + cap(r.Body) + slotOverhead
				s.bytes += sl.size
			}
			close(sl.done)
			sl.done = s.closed
		})
	}
}

// insert adds a slot and evicts from the front of the insertion order: expired responses, and
// the oldest remembered ones while the store is over its bounds. Entries expire in about the order
// they were inserted, so each insert does O(1) amortised work. An in-flight request is never
// evicted (its waiters hold it): over the bounds it moves to the back, else eviction stops there.
// Callers hold s.mu.
func (s *Store) insert(key string, sl *slot) {
	s.slots[key] = sl
	s.order = append(s.order, entry{key: key, slot: sl})
	now := s.now().UnixNano()
	for n := len(s.order) - s.head; n > 0; n-- {
		e := s.order[s.head]
		if cur, ok := s.slots[e.key]; ok && cur == e.slot {
			over := s.bytes > maxBytes || len(s.slots) > maxEntries
			switch {
			case !cur.kept && !over, cur.kept && now < cur.expires && !over:
				return
			case !cur.kept:
				s.order = append(s.order, e)
			default:
				s.remove(e.key, cur)
			}
		}
		s.order[s.head] = entry{}
		s.head++
		if s.head > len(s.order)/2 {
			s.order = append(s.order[:0], s.order[s.head:]...)
			s.head = 0
		}
	}
}

// remove forgets key's slot sl. Callers hold s.mu.
func (s *Store) remove(key string, sl *slot) {
	if s.slots[key] == sl {
		delete(s.slots, key)
		s.bytes -= sl.size
	}
}

// Len returns the number of remembered or in-flight ids.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.slots)
}
