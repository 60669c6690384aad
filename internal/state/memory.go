package state

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Default bounds of a *Memory. Memory mode serves one process (make run, the CLI, tests without
// storage) and stands in for the table during an outage; the deployed default is the shared
// table, which keeps every answer for the whole IDEMPOTENCY_TTL. Memory must stay small next to
// the process: the garbage collector lets the heap grow to about twice what is live, so every
// remembered byte costs about two of resident memory. A single-user answer costs about 660
// accounted bytes (key, body hash, a ~300-byte body, bookkeeping), so the requests' half of
// DefaultMaxBytes holds about 6,000 answers: 10 minutes at the default rate guard's full pace
// (600 a minute), hours at an incident's usual pace, the whole 24 hours below one answer every
// fourteen seconds. It is sized so that a flood of new ids keeps the process within 48 MiB of
// resident memory (docs/BENCHMARKS.md). Keeping 24 hours at Graph's ceiling of 20 a second would take about 1 GiB, which
// is what the table is for. An answer evicted early only matters if the caller retries that id
// later, and then the cost is a second revocation of the same user, which Graph tolerates.
const (
	DefaultMaxEntries = 25_000
	DefaultMaxBytes   = 8 << 20
	// entryOverhead is an entry's memory beyond its keys and bodies: the map entry, the list
	// element and the structs (an estimate on 64-bit; accounting, not a measurement).
	entryOverhead = 256
)

// MemoryConfig configures NewMemory.
type MemoryConfig struct {
	RatePerMinute int              // MAX_REVOCATIONS_PER_MINUTE for this process; 0 turns the guard off
	MaxEntries    int              // entries kept in all; 0 means DefaultMaxEntries
	MaxBytes      int              // accounted bytes of keys and bodies in all; 0 means DefaultMaxBytes
	Now           func() time.Time // clock; nil means time.Now
}

// Memory is a Store in one process's memory. It is safe for concurrent use.
//
// Its three maps are bounded separately, so a flood of one kind cannot evict another: requests get
// half of the entries and bytes, queue-message progress and statuses a quarter each (a flood of
// 100-user dry runs through the queue stays within its quarter). Within each, expired entries go
// first and then the least recently written; a request whose lease is live is never evicted (that
// would let a concurrent duplicate run), so in-flight requests, bounded by the server's concurrency,
// can exceed the bound for as long as they run; nor is a status with a queued user (its link is
// live while its message waits).
type Memory struct {
	now   func() time.Time
	guard *bucket

	mu       sync.Mutex
	requests *cache[RequestKey, *request] // see request for the key
	messages *cache[MessageKey, message]  // see message for the key
	// statuses holds status records. Key: the status handle, 128 random bits, so no two requests,
	// callers or instances ever meet on one; only the request's own status updates (the queue
	// trigger finishing its users) write it again.
	statuses *cache[string, []byte]
}

// request is an idempotent request's memory. Key: the caller's scope and request id (RequestKey);
// two callers never share a scope, so only a caller's own retries meet here.
type request struct {
	bodyHash   string
	lease      string    // "" when no attempt holds it
	leaseUntil time.Time // when lease stops excluding others
	resp       *Response // final response, once finished
	progress   []byte
}

// message is a queue message's progress. Key: the host's message id and the content hash
// (MessageKey); a redelivery of the same message is the only thing that meets it.
type message struct {
	progress []byte
	done     bool
}

// NewMemory returns an empty memory store.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	m := &Memory{now: cfg.Now, guard: newBucket(cfg.RatePerMinute, cfg.Now)}
	m.requests = newCache[RequestKey, *request](cfg.MaxEntries/2, cfg.MaxBytes/2, (*request).leased)
	m.messages = newCache[MessageKey, message](cfg.MaxEntries/4, cfg.MaxBytes/4, nil)
	m.statuses = newCache[string, []byte](cfg.MaxEntries/4, cfg.MaxBytes/4, openStatus)
	return m
}

var _ Store = (*Memory)(nil)

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration) (Claim, error) {
	if err := ctx.Err(); err != nil {
		return Claim{}, err
	}
	token := newLease()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r, ok := m.requests.get(key, now)
	if !ok {
		r = &request{bodyHash: bodyHash}
	}
	if replay, err := r.verdict(bodyHash, now); replay != nil || err != nil {
		return Claim{Replay: replay}, err
	}
	// New, released, or its lease expired (the attempt died): this attempt takes over.
	r.lease, r.leaseUntil = token, now.Add(lease)
	m.requests.put(key, r, requestSize(key, r), r.leaseUntil.Add(unfinishedTTL), now)
	return Claim{Lease: token, Progress: clone(r.progress)}, nil
}

// Finish implements Store. A lease that expired is still good as long as nobody took it over.
func (m *Memory) Finish(ctx context.Context, key RequestKey, lease string, resp Response, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r, err := m.held(key, lease, now)
	if err != nil {
		return err
	}
	resp = cloneResponse(resp)
	r.lease, r.leaseUntil, r.resp, r.progress = "", time.Time{}, &resp, nil
	m.requests.put(key, r, requestSize(key, r), now.Add(ttl), now)
	return nil
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, key RequestKey, lease string, progress []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r, err := m.held(key, lease, now)
	if err != nil {
		return err
	}
	r.lease, r.leaseUntil = "", time.Time{}
	if progress != nil {
		r.progress = clone(progress)
	}
	m.requests.put(key, r, requestSize(key, r), now.Add(unfinishedTTL), now)
	return nil
}

// MessageProgress implements Store.
func (m *Memory) MessageProgress(ctx context.Context, key MessageKey) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	msg, ok := m.messages.get(key, m.now())
	if !ok {
		return nil, false, nil
	}
	return clone(msg.progress), msg.done, nil
}

// SaveMessageProgress implements Store.
func (m *Memory) SaveMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	size := len(key.MessageID) + len(key.ContentHash) + len(progress) + entryOverhead
	m.messages.put(key, message{progress: clone(progress), done: done}, size, now.Add(MessageTTL), now)
	return nil
}

// PutStatus implements Store.
func (m *Memory) PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.statuses.put(handle, clone(body), len(handle)+len(body)+entryOverhead, now.Add(ttl), now)
	return nil
}

// GetStatus implements Store.
func (m *Memory) GetStatus(ctx context.Context, handle string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	body, ok := m.statuses.get(handle, m.now())
	if !ok {
		return nil, ErrNotFound
	}
	return clone(body), nil
}

// UpdateStatus implements Store. The lock is held while update runs, so there is never a
// conflicting write to retry; update must not call back into m.
func (m *Memory) UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func([]byte) ([]byte, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	body, ok := m.statuses.get(handle, now)
	if !ok {
		return ErrNotFound
	}
	next, err := update(clone(body))
	if err != nil {
		return err
	}
	m.statuses.put(handle, clone(next), len(handle)+len(next)+entryOverhead, now.Add(ttl), now)
	return nil
}

// Take implements Store: this process's own token bucket.
func (m *Memory) Take(_ context.Context, n int) (time.Duration, bool) { return m.guard.take(n) }

// Refund implements Store.
func (m *Memory) Refund(n int) { m.guard.refund(n) }

// Cleanup implements Store: it drops every expired entry at once (memory needs no pages).
func (m *Memory) Cleanup(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	return m.requests.sweep(now) + m.messages.sweep(now) + m.statuses.sweep(now), nil
}

// Mode implements Store.
func (m *Memory) Mode() string { return ModeMemory }

// queuedMarker is how a status record (the response as JSON, encoding/json's compact form)
// spells a user still queued.
var queuedMarker = []byte(`"status":"queued"`)

// openStatus reports whether a status record still has a queued user: its link is live while its
// message waits in the queue, so it is never evicted for space (it expires as usual). Open links
// are bounded by what the queue holds, not by callers' new requests.
func openStatus(body []byte, _ time.Time) bool { return bytes.Contains(body, queuedMarker) }

// leased reports whether an attempt holds r's lease at now, excluding every other.
func (r *request) leased(now time.Time) bool { return r.lease != "" && now.Before(r.leaseUntil) }

// verdict is what r says to a claim with bodyHash at now: ErrConflict for another body, the
// replay once finished, *InProgressError while an attempt holds it; nil, nil when the claim may
// take it (new, released, or its attempt died).
func (r *request) verdict(bodyHash string, now time.Time) (*Response, error) {
	switch {
	case r.bodyHash != bodyHash:
		return nil, ErrConflict
	case r.resp != nil:
		resp := cloneResponse(*r.resp)
		return &resp, nil
	case r.leased(now):
		return nil, inProgress(r.leaseUntil.Sub(now))
	}
	return nil, nil
}

// held returns key's request when lease is the one holding it (live or expired, as long as
// nobody took it over), else ErrLeaseLost. m.mu must be held.
func (m *Memory) held(key RequestKey, lease string, now time.Time) (*request, error) {
	r, ok := m.requests.get(key, now)
	if !ok || r.lease != lease || lease == "" {
		return nil, ErrLeaseLost
	}
	return r, nil
}

func requestSize(key RequestKey, r *request) int {
	n := len(key.Scope) + len(key.ID) + len(r.bodyHash) + len(r.lease) + len(r.progress) + entryOverhead
	if r.resp != nil {
		n += len(r.resp.Body)
	}
	return n
}

// newLease returns an unguessable lease token, so that no other attempt can finish a lease it
// does not hold.
func newLease() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func cloneResponse(r Response) Response { return Response{Status: r.Status, Body: clone(r.Body)} }

// cache is a map bounded by entries and accounted bytes whose entries expire. Eviction order is
// by last write (least recently written first). Not safe for concurrent use: Memory locks.
type cache[K comparable, V any] struct {
	maxEntries, maxBytes int
	pinned               func(V, time.Time) bool // entries never evicted for space while true
	items                map[K]*list.Element
	order                *list.List // of *item[K, V], least recently written at the front
	bytes                int
}

type item[K comparable, V any] struct {
	key     K
	val     V
	size    int
	expires time.Time
}

func newCache[K comparable, V any](maxEntries, maxBytes int, pinned func(V, time.Time) bool) *cache[K, V] {
	if pinned == nil {
		pinned = func(V, time.Time) bool { return false }
	}
	return &cache[K, V]{
		maxEntries: max(maxEntries, 1), maxBytes: max(maxBytes, 1), pinned: pinned,
		items: map[K]*list.Element{}, order: list.New(),
	}
}

// get returns the live entry under k, dropping it when it has expired.
func (c *cache[K, V]) get(k K, now time.Time) (V, bool) {
	var zero V
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	it := el.Value.(*item[K, V])
	if !now.Before(it.expires) {
		c.remove(el)
		return zero, false
	}
	return it.val, true
}

// put stores v under k as the most recently written entry, then evicts: expired entries from the
// front (entries of one kind mostly expire in the order they were written), then the least
// recently written ones while over a bound, skipping pinned entries.
func (c *cache[K, V]) put(k K, v V, size int, expires, now time.Time) {
	if el, ok := c.items[k]; ok {
		it := el.Value.(*item[K, V])
		c.bytes += size - it.size
		it.val, it.size, it.expires = v, size, expires
		c.order.MoveToBack(el)
	} else {
		c.items[k] = c.order.PushBack(&item[K, V]{key: k, val: v, size: size, expires: expires})
		c.bytes += size
	}
	for el := c.order.Front(); el != nil; {
		it := el.Value.(*item[K, V])
		if now.Before(it.expires) {
			break
		}
		next := el.Next()
		c.remove(el)
		el = next
	}
	for el := c.order.Front(); el != nil && (len(c.items) > c.maxEntries || c.bytes > c.maxBytes); {
		next := el.Next()
		if it := el.Value.(*item[K, V]); !c.pinned(it.val, now) {
			c.remove(el)
		}
		el = next
	}
}

// sweep removes every expired entry and returns how many.
func (c *cache[K, V]) sweep(now time.Time) int {
	n := 0
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if !now.Before(el.Value.(*item[K, V]).expires) {
			c.remove(el)
			n++
		}
		el = next
	}
	return n
}

func (c *cache[K, V]) remove(el *list.Element) {
	it := c.order.Remove(el).(*item[K, V])
	delete(c.items, it.key)
	c.bytes -= it.size
}

// What *Shared needs of its Memory beyond the Store: to consult what it remembered during an
// outage, to keep what the table could not take, and to forget what the table holds again.

// peekRequest reports what memory knows of key without claiming it: a final response (replay),
// a conflicting body, a live lease, or progress of an unfinished attempt.
func (m *Memory) peekRequest(key RequestKey, bodyHash string) (replay *Response, progress []byte, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r, ok := m.requests.get(key, now)
	if !ok {
		return nil, nil, nil
	}
	if replay, err := r.verdict(bodyHash, now); replay != nil || err != nil {
		return replay, nil, err
	}
	return nil, clone(r.progress), nil
}

// keepRequest remembers a final response (resp non-nil, for ttl) or progress of key without a
// lease: the table held the lease but could not take the outcome.
func (m *Memory) keepRequest(key RequestKey, bodyHash string, resp *Response, progress []byte, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r := &request{bodyHash: bodyHash, progress: clone(progress)}
	expires := now.Add(unfinishedTTL)
	if resp != nil {
		c := cloneResponse(*resp)
		r.resp, r.progress, expires = &c, nil, now.Add(ttl)
	}
	m.requests.put(key, r, requestSize(key, r), expires, now)
}

// forgetRequest drops key unless an attempt in memory holds a live lease on it.
func (m *Memory) forgetRequest(key RequestKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if r, ok := m.requests.get(key, now); ok && !r.leased(now) {
		m.requests.remove(m.requests.items[key])
	}
}

// peekMessage returns the progress memory holds for key, if any.
func (m *Memory) peekMessage(key MessageKey) (progress []byte, done, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	msg, ok := m.messages.get(key, m.now())
	return clone(msg.progress), msg.done, ok
}

// forgetMessage drops key's progress.
func (m *Memory) forgetMessage(key MessageKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.messages.items[key]; ok {
		m.messages.remove(el)
	}
}
