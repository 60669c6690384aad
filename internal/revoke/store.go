package revoke

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// What a request's life needs remembered, across requests and (with shared state) across
// instances. The engine declares it; internal/state implements it in memory, in an Azure Table,
// or in the table with memory for its outages.

// RequestKey identifies an idempotent request: the caller's scope ("webhook", or
// "entra:<tenant>:<client id>") and the request id (webhook-id or Idempotency-Key). Two callers
// never share a scope, so the same id from two callers is two requests.
type RequestKey struct{ Scope, ID string }

// MessageKey identifies one queue message across redeliveries: the host's Metadata.Id together
// with a hash of the message's content (so two different messages are never confused).
type MessageKey struct{ MessageID, ContentHash string }

// Response is a final answer kept for replay, as the adapter rendered it (for HTTP, the status
// code and the JSON body).
type Response struct {
	Status int
	Body   []byte
}

// Claim is what Claims.Claim returns when the caller may proceed or must replay.
type Claim struct {
	Lease    string    // opaque token of the exclusive lease; "" when Replay is set
	Replay   *Response // non-nil: the first final response for this key and body
	Progress []byte    // opaque progress left by an earlier unfinished attempt with the same body, else nil
}

// Errors the lifecycle and its adapters branch on.
var (
	// ErrConflict: the request id was first used with another body. An id stays bound to its first
	// body for as long as anything about it is remembered, finished or not.
	ErrConflict = errors.New("request id reused with a different body")
	// ErrNotFound: no such status (unknown or expired).
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: Finish/Release after the lease expired and someone else took it.
	ErrLeaseLost = errors.New("lease lost")
	// ErrUnavailable: the shared state cannot be read right now, and this instance does not hold
	// the answer in memory either: it may well exist.
	ErrUnavailable = errors.New("state table unavailable")
)

// InProgressError reports that another attempt (on any instance) holds the lease; RetryAfter is
// the time left on it, at least one second.
type InProgressError struct{ RetryAfter time.Duration }

func (e *InProgressError) Error() string {
	return fmt.Sprintf("request in progress, retry after %v", e.RetryAfter)
}

// InProgress builds the error from the time left on a lease, rounded up to whole seconds because
// callers turn it into Retry-After.
func InProgress(left time.Duration) *InProgressError {
	secs := math.Ceil(left.Seconds())
	if secs < 1 {
		secs = 1
	}
	return &InProgressError{RetryAfter: time.Duration(secs) * time.Second}
}

// Claims is the idempotency memory of requests: an exclusive, expiring claim on a caller's
// request id, the first final response for replay, and the progress of an attempt that ended
// retryable.
type Claims interface {
	// Claim takes the exclusive lease on key for `lease`, or returns the replay, ErrConflict
	// (different bodyHash) or *InProgressError. An expired lease is taken over.
	Claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration) (Claim, error)
	// Finish stores the final response for ttl and ends the lease.
	Finish(ctx context.Context, key RequestKey, lease string, resp Response, ttl time.Duration) error
	// Release ends the lease without a final response, keeping progress (nil keeps the earlier).
	Release(ctx context.Context, key RequestKey, lease string, progress []byte) error
}

// Messages remembers what each queue message's deliveries achieved.
type Messages interface {
	// MessageProgress returns what earlier deliveries achieved, and whether the message was
	// completed. Unknown: nil, false, nil.
	MessageProgress(ctx context.Context, key MessageKey) (progress []byte, done bool, err error)
	SaveMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error
}

// Statuses keeps the status records behind status links, under their handles.
type Statuses interface {
	PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error
	// GetStatus returns a record, ErrNotFound, or ErrUnavailable.
	GetStatus(ctx context.Context, handle string) ([]byte, error)
	// UpdateStatus read-modify-writes a record with optimistic concurrency; ErrNotFound when
	// missing. An error from update is returned as it is, and nothing is written.
	UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func(body []byte) ([]byte, error)) error
}

// Store is everything a request's life remembers.
type Store interface {
	Claims
	Messages
	Statuses
}
