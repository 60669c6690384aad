// Package server adapts HTTP and the Azure Functions custom-handler protocol to the revocation
// engine: caller authentication, request decoding, idempotent replay, status mapping, and the
// queue trigger's invocation format.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/idempotency"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
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

// Deps is everything the server needs. Optional collaborators are nil when not configured.
type Deps struct {
	Logger      *slog.Logger
	Engine      Engine
	Validator   *request.Validator
	Idempotency *idempotency.Store
	Audit       Auditor

	Keys      webhook.Keys   // Standard Webhooks secrets; empty when not configured
	Tolerance time.Duration  // WEBHOOK_TOLERANCE
	Tokens    TokenValidator // nil unless Entra ID tokens are accepted

	Storage         bool          // AzureWebJobsStorage configured: deferral is possible
	Poison          Poisoner      // nil without storage
	AllowUnsigned   bool          // QUEUE_ALLOW_UNSIGNED
	QueueMaxAge     time.Duration // QUEUE_SIGNATURE_MAX_AGE
	MaxDequeueCount int

	Version string
	Now     func() time.Time

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
