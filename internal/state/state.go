// Package state is what the handler remembers across requests, and across instances when it is
// shared: idempotent requests (claim, replay, progress), the progress of queue messages, the status
// of deferred requests, and the rate guard. *Memory keeps it in one process, *Table in an Azure
// Table that every instance shares, and *Shared uses the table with a memory fallback for outages.
// See docs/state.md for the design.
package state

import (
	"context"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// The keys, records and errors of a request's life are the engine's (internal/revoke): the
// stores here implement its interfaces. The aliases keep this package's own words short.
type (
	Response        = revoke.Response
	RequestKey      = revoke.RequestKey
	MessageKey      = revoke.MessageKey
	Claim           = revoke.Claim
	InProgressError = revoke.InProgressError
)

// Errors a caller branches on (the engine's).
var (
	ErrConflict    = revoke.ErrConflict
	ErrNotFound    = revoke.ErrNotFound
	ErrLeaseLost   = revoke.ErrLeaseLost
	ErrUnavailable = revoke.ErrUnavailable
)

// inProgress builds the error from the time left on a lease.
func inProgress(left time.Duration) *InProgressError { return revoke.InProgress(left) }

// Modes reported by Store.Mode.
const (
	ModeMemory   = "memory"
	ModeTable    = "table"
	ModeDegraded = "degraded"
)

// How long things are kept when the caller does not say.
const (
	// MessageTTL is how long a queue message's progress is kept: a message's default time to live
	// in a Storage queue, so every redelivery still finds it.
	MessageTTL = 7 * 24 * time.Hour
	// unfinishedTTL is how long an unfinished request (leased, or released with progress) is kept
	// after its last attempt: a retry comes within a caller's retry window, and an id stays bound to
	// its body meanwhile. It matches IDEMPOTENCY_TTL's default.
	unfinishedTTL = 24 * time.Hour
)

// Store is everything the handler remembers across requests. *Memory, *Table and *Shared
// (table with memory fallback) implement it; one conformance suite tests all of them.
type Store interface {
	// Claim takes the exclusive lease on key for `lease` (the request's time budget plus a margin),
	// or returns the replay, ErrConflict (different bodyHash) or *InProgressError.
	// An expired lease is taken over (a crashed instance never leaves an id stuck).
	Claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration) (Claim, error)
	// Finish stores the final response for ttl (IDEMPOTENCY_TTL) and ends the lease.
	Finish(ctx context.Context, key RequestKey, lease string, resp Response, ttl time.Duration) error
	// Release ends the lease without a final response (a retryable outcome), keeping progress so
	// that a retry with the same body skips finished users. progress may be nil (the earlier
	// progress, if any, is kept).
	Release(ctx context.Context, key RequestKey, lease string, progress []byte) error

	// MessageProgress returns what earlier deliveries of a queue message achieved (opaque), and
	// whether the message was completed. Unknown: nil, false, nil.
	MessageProgress(ctx context.Context, key MessageKey) (progress []byte, done bool, err error)
	// SaveMessageProgress records a delivery's achievement (kept MessageTTL, a message's default TTL).
	SaveMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error

	// PutStatus creates the status of a deferred request under an unguessable handle, kept for ttl.
	PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error
	// GetStatus returns it, or ErrNotFound (unknown or expired).
	GetStatus(ctx context.Context, handle string) ([]byte, error)
	// UpdateStatus read-modify-writes it with optimistic concurrency (ETag), retrying update on a
	// conflicting write; ErrNotFound when missing. ttl restarts from now. An error from update
	// is returned as it is, and nothing is written.
	UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func(body []byte) ([]byte, error)) error

	// Take reserves n revocations from the rate guard (MAX_REVOCATIONS_PER_MINUTE, across all
	// instances for the table), or reports how long until they would be available.
	// A job larger than the whole limit is let through on a full bucket (slowed, never refused forever).
	Take(ctx context.Context, n int) (wait time.Duration, ok bool)
	// Refund returns tokens for revocations that did not reach Graph.
	Refund(n int)

	// Cleanup deletes expired entities, in pages, until done or ctx ends.
	Cleanup(ctx context.Context) (deleted int, err error)
	// Mode is "memory", "table", or "degraded" (table unreachable, memory fallback in use).
	Mode() string
}
