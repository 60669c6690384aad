// Package server adapts HTTP and the Azure Functions custom-handler protocol to the revocation
// engine: caller authentication, request decoding, idempotent replay, status mapping and status
// links, and the host's queue and timer invocations.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Engine runs revocation jobs.
type Engine interface {
	Run(ctx context.Context, job revoke.Job) (revoke.Result, error)
}

// TokenValidator validates Entra ID bearer tokens.
type TokenValidator interface {
	Validate(ctx context.Context, token string) (entraauth.Caller, error)
	Ready() bool
}

// Auditor records refused callers and reports telemetry health.
type Auditor interface {
	Rejected(ctx context.Context, r telemetry.Rejection)
	Stats() telemetry.Stats
}

// Poisoner copies a message that can never succeed to the poison queue.
type Poisoner interface {
	Poison(ctx context.Context, text []byte) error
}

// Requests is the idempotency memory of POST /api/revoke: an exclusive, expiring claim on a
// caller's request id, the first final response for replay, and the progress of an attempt that
// ended retryable.
type Requests interface {
	Claim(ctx context.Context, key state.RequestKey, bodyHash string, lease time.Duration) (state.Claim, error)
	Finish(ctx context.Context, key state.RequestKey, lease string, resp state.Response, ttl time.Duration) error
	Release(ctx context.Context, key state.RequestKey, lease string, progress []byte) error
}

// Messages remembers what each queue message's deliveries achieved.
type Messages interface {
	MessageProgress(ctx context.Context, key state.MessageKey) (progress []byte, done bool, err error)
	SaveMessageProgress(ctx context.Context, key state.MessageKey, progress []byte, done bool) error
}

// Statuses keeps the status records behind status links.
type Statuses interface {
	PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error
	GetStatus(ctx context.Context, handle string) ([]byte, error)
	UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func(body []byte) ([]byte, error)) error
}

// State is everything the server remembers across requests (state.Store satisfies it): in one
// process's memory, or shared by every instance in an Azure Table.
type State interface {
	Requests
	Messages
	Statuses
	Cleanup(ctx context.Context) (deleted int, err error)
	Mode() string // "memory", "table" or "degraded", for GET /api/health
}

// Deps is everything the server needs. Optional collaborators are nil when not configured.
type Deps struct {
	Logger    *slog.Logger
	Engine    Engine
	Validator *request.Validator
	State     State
	Audit     Auditor

	Keys      webhook.Keys   // Standard Webhooks secrets; empty when not configured
	QueueKeys webhook.Keys   // QUEUE_SECRETS: queue messages verify against these too
	Tolerance time.Duration  // WEBHOOK_TOLERANCE
	Tokens    TokenValidator // nil unless Entra ID tokens are accepted

	IdempotencyTTL time.Duration // IDEMPOTENCY_TTL: how long final responses are kept
	// StatusTTL is how long a status record is kept after its last write: at least as long as
	// its message can still be delivered (StatusTTL); 0 computes it from the two settings.
	StatusTTL     time.Duration
	PublicBaseURL *url.URL // PUBLIC_BASE_URL for status links; nil: the request's scheme and host

	Storage         bool          // AzureWebJobsStorage configured and a queue secret to sign with: deferral possible
	Poison          Poisoner      // nil without storage
	AllowUnsigned   bool          // QUEUE_ALLOW_UNSIGNED
	QueueMaxAge     time.Duration // QUEUE_SIGNATURE_MAX_AGE
	MaxDequeueCount int           // the host's maxDequeueCount: the delivery that is a message's last

	Watcher           WatchRunner       // the sign-in watch (WATCH_AFTER); nil when off
	WatchPoison       Poisoner          // <WATCH_QUEUE>-poison; nil without storage
	Callbacks         Callbacks         // nil: no outcome callbacks
	CallbackDeliverer CallbackDeliverer // nil: callback queue messages are dropped

	Version    string
	Permission PermissionReporter // the Graph permission for health; nil reports "unknown"
	Now        func() time.Time

	// Drain, when done, aborts in-flight Graph work so that every request still gets an answer
	// (failed, or queued) before the process must exit. Nil never drains.
	Drain context.Context
}

// workContext is the context a request's work runs in: detached from the caller's connection (an
// accepted revocation finishes, and the caller's retry is replayed), bounded by budget, and
// cancelled when the server drains for shutdown.
func workContext(r *http.Request, d Deps, budget time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), budget)
	if d.Drain == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(d.Drain, cancel)
	return ctx, func() { stop(); cancel() }
}

// httpBudget bounds one HTTP request's Graph work (request contract): callers such as Logic Apps time out
// after a minute or two, and a request that cannot finish in time is better queued.
const httpBudget = 25 * time.Second

// queueBudget bounds one queue invocation; the host's function timeout is longer, and a slower
// Graph is better met by the queue's own retry than by holding the message.
const queueBudget = 60 * time.Second

// claimLease is how long a claim on a request id excludes others, sized from the worst case of a
// live attempt, each step using its whole budget: the claim's own write (its lease is counted from
// before it), the request's Graph budget, the deferral's budget after it (the engine's, 5 s), and
// the write of the outcome. A live attempt therefore always ends within its lease; an instance
// that dies mid-request holds the id no longer than this. (An outcome that lands late is still
// taken as long as no other attempt took the id over.)
const claimLease = stateBudget + httpBudget + 5*time.Second + stateBudget

// stateBudget bounds one bookkeeping call to the state store on the request path. The store
// answers in milliseconds, and falls back to memory when the table is slow, so this is a safety net.
const stateBudget = 5 * time.Second

// NewServer returns the handler's HTTP handler with every route and its middleware.
func NewServer(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.State == nil {
		d.State = state.NewMemory(state.MemoryConfig{Now: d.Now})
	}
	if d.IdempotencyTTL <= 0 {
		d.IdempotencyTTL = 24 * time.Hour
	}
	if d.StatusTTL <= 0 {
		d.StatusTTL = StatusTTL(d.IdempotencyTTL, d.QueueMaxAge)
	}
	mux := http.NewServeMux()
	addRoutes(mux, d)
	return withSecurityHeaders(withRecover(d.Logger, mux))
}

// NewHTTPServer wraps h in an http.Server hardened for a loopback listener behind the Functions
// host (which enforces its own limits) or, locally, for direct callers.
func NewHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// Slowloris protection: the host sends headers at once.
		ReadHeaderTimeout: 5 * time.Second,
		// Bodies are at most 64 KiB (a queue invocation a little more); 30 s is generous.
		ReadTimeout: 30 * time.Second,
		// Longer than the Graph budget (25 s) plus deferral, so a slow Graph still gets an answer out.
		WriteTimeout: 90 * time.Second,
		// The host keeps connections to the handler alive between invocations.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
