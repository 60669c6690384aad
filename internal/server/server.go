// Package server adapts HTTP and the Azure Functions custom-handler protocol to the revocation
// request lifecycle (internal/revoke): caller authentication, request and invocation decoding,
// and the rendering of answers as HTTP responses and host replies. What happens to a request is
// decided in internal/revoke, not here.
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
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Lifecycle owns a request's life (*revoke.Lifecycle): the routes decode, call it, and render
// what it answers.
type Lifecycle interface {
	Submit(ctx context.Context, s revoke.Submission) (revoke.Answer, error)
	Deliver(ctx context.Context, d revoke.Delivery) (revoke.Delivered, error)
	Status(ctx context.Context, handle string) (revoke.Result, error)
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

// State is the handler's memory as the housekeeping routes see it (*state.Memory, *state.Shared).
type State interface {
	Cleanup(ctx context.Context) (deleted int, err error)
	Mode() string // "memory", "table" or "degraded", for GET /api/health
}

// Deps is everything the server needs. Optional collaborators are nil when not configured.
type Deps struct {
	Logger    *slog.Logger
	Lifecycle Lifecycle
	Validator *request.Validator
	State     State
	Audit     Auditor

	Keys      webhook.Keys   // Standard Webhooks secrets; empty when not configured
	QueueKeys webhook.Keys   // QUEUE_SECRETS: queue messages verify against these too
	Tolerance time.Duration  // WEBHOOK_TOLERANCE
	Tokens    TokenValidator // nil unless Entra ID tokens are accepted

	PublicBaseURL *url.URL // PUBLIC_BASE_URL for status links; nil: the request's scheme and host

	Storage         bool          // AzureWebJobsStorage configured and a queue secret to sign with: deferral possible
	Poison          Poisoner      // the request queue's poison copies; nil without storage
	AllowUnsigned   bool          // QUEUE_ALLOW_UNSIGNED
	QueueMaxAge     time.Duration // QUEUE_SIGNATURE_MAX_AGE
	MaxDequeueCount int           // the host's maxDequeueCount: the delivery that is a message's last

	Watcher           WatchRunner       // the sign-in watch (WATCH_AFTER); nil when off
	WatchPoison       Poisoner          // <WATCH_QUEUE>-poison; nil without storage
	CallbackDeliverer CallbackDeliverer // nil: callback queue messages are dropped

	Version    string
	Permission PermissionReporter // the Graph permission for health; nil reports "unknown"
	Now        func() time.Time

	// Drain, when done, aborts in-flight work of the routes that run it themselves (sign-in
	// checks, callbacks, cleanup) so that every invocation still gets an answer before the
	// process must exit. Nil never drains.
	Drain context.Context
}

// workContext is the context a route's own work runs in: detached from the caller's connection,
// bounded by budget, and cancelled when the server drains for shutdown.
func workContext(r *http.Request, drain context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), budget)
	if drain == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(drain, cancel)
	return ctx, func() { stop(); cancel() }
}

// NewServer returns the handler's HTTP handler with every route and its middleware.
func NewServer(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
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
