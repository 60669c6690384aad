// Package revoke is the core of the handler. The engine (Engine) applies the tenant's guard rails
// to each requested user, signs the user out through Microsoft Graph, optionally verifies the
// result, and reports every outcome; the lifecycle (Lifecycle) owns a request's life around it:
// claim and replay, progress, the status record, finality and the completion event. It knows
// nothing of HTTP, queues, tables or the Functions host: those adapt to it through the small
// interfaces declared here.
package revoke

import (
	"context"
	"fmt"
	"time"
)

// Status is the outcome for one user (request contract), or the shared top-level status.
type Status string

// Per-user outcomes and the top-level "partial".
const (
	StatusRevoked    Status = "revoked"
	StatusDryRun     Status = "dry_run"
	StatusQueued     Status = "queued"
	StatusNotFound   Status = "not_found"
	StatusProtected  Status = "protected"
	StatusOutOfScope Status = "out_of_scope"
	StatusDenied     Status = "denied"
	StatusThrottled  Status = "throttled"
	StatusFailed     Status = "failed"
	StatusPartial    Status = "partial"
)

// Retryable reports whether a later attempt may give another outcome; such users are deferred to
// the queue when storage is configured.
func (s Status) Retryable() bool { return s == StatusThrottled || s == StatusFailed }

// Succeeded reports whether the user's request was carried out (or would have been, in a dry run).
func (s Status) Succeeded() bool { return s == StatusRevoked || s == StatusDryRun }

// User is what the engine needs to know of a directory user.
type User struct {
	ID                string
	UPN               string
	UserType          string    // "Member" or "Guest"
	SessionsValidFrom time.Time // zero unless read with sessions
}

// GraphResult describes a Graph call that succeeded.
type GraphResult struct {
	RequestID string        // Graph's request-id response header
	Attempts  int           // HTTP attempts, retries included
	Duration  time.Duration // wall time of all attempts
}

// GraphError is returned by Graph adapters when a call did not succeed. Status classifies it into
// one of StatusNotFound, StatusDenied, StatusThrottled or StatusFailed.
type GraphError struct {
	Status     Status
	HTTPStatus int    // 0 when no response arrived (timeout, connection or token failure)
	Code       string // Graph's error.code, e.g. "Request_ResourceNotFound"
	Message    string // Graph's error.message (never contains a token)
	RequestID  string
	RetryAfter time.Duration // from the last response's Retry-After, when throttled
	Attempts   int
	Duration   time.Duration
	Err        error
}

func (e *GraphError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("graph %s: %d %s: %s", e.Status, e.HTTPStatus, e.Code, e.Message)
	}
	if e.Err != nil {
		return fmt.Sprintf("graph %s: %v", e.Status, e.Err)
	}
	return fmt.Sprintf("graph %s: %d", e.Status, e.HTTPStatus)
}

func (e *GraphError) Unwrap() error { return e.Err }

// Revoker invalidates a user's refresh tokens and session cookies
// (Graph POST /users/{id|userPrincipalName}/revokeSignInSessions).
type Revoker interface {
	RevokeSignInSessions(ctx context.Context, user string) (GraphResult, error)
}

// UserReader reads a user by object ID or UPN. LookupUser selects id, userPrincipalName and
// userType; ReadSessions also selects signInSessionsValidFromDateTime. Errors are *GraphError.
type UserReader interface {
	LookupUser(ctx context.Context, user string) (User, error)
	ReadSessions(ctx context.Context, user string) (User, error)
}

// Trigger says how a request arrived.
type Trigger string

// Triggers.
const (
	TriggerHTTP  Trigger = "http"
	TriggerQueue Trigger = "queue"
	TriggerCLI   Trigger = "cli"
)

// Meta identifies a request for audit: who asked, through what, and under which ids.
type Meta struct {
	Trigger      Trigger
	RequestID    string // webhook-id, Idempotency-Key or a generated id
	InvocationID string // X-Azure-Functions-InvocationId
	Caller       string // "webhook:<key index>" or "entra:<client id>"
	DequeueCount int    // queue deliveries, 0 for HTTP
	// StatusHandle is the opaque handle of the request's status record, carried through the queue
	// so that a deferred request's final outcome updates it. It is a credential: never recorded.
	StatusHandle string
	// CallbackURL is where the request's outcome events go, carried through the queue like the
	// handle. Its path and query may hold the receiver's secrets: never recorded beyond its host.
	CallbackURL string
	// StatusURL is the request's status link, for its callback; like the handle, never recorded.
	StatusURL string
}

// Deferral is a set of users handed to the queue to be finished later.
type Deferral struct {
	Meta        Meta
	Users       []string
	Ticket      string
	Reason      string
	RequestedBy string
	DryRun      bool
	// Request is the whole request's result as the caller is about to see it, in input order,
	// with the deferred users queued: what a status record starts from.
	Request Result
}

// Deferrer durably queues users whose revocation cannot finish now.
type Deferrer interface {
	Defer(ctx context.Context, d Deferral) error
}

// Outcome is the audit record of one user's final outcome, written to stdout and Application
// Insights.
type Outcome struct {
	Meta
	Status            Status
	UPN               string // as requested (a UPN or an object ID)
	UserID            string
	Ticket            string
	Reason            string
	RequestedBy       string
	DryRun            bool
	GraphRequestID    string
	ErrorCode         string
	ErrorMessage      string
	Verified          *bool
	SessionsValidFrom time.Time
	Guard             string // the guard-rail decision, e.g. "protected:upn", "allowed_domain", "lookup_denied"
	Warning           string
	Duration          time.Duration // the whole user's processing
	GraphDuration     time.Duration // time spent in Graph calls
	Attempts          int           // Graph HTTP attempts
}

// OutcomeSink records outcomes. Implementations must not block the caller for long.
type OutcomeSink interface {
	Outcome(ctx context.Context, o Outcome)
}
