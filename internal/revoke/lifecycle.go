package revoke

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// A request's life, from the moment its caller is known and its body decoded to its last
// outcome event, is decided here, one step per file:
//
//   - submit.go:   a request whose caller waits (webhook, CLI): claim or replay, run, keep or release.
//   - deliver.go:  one delivery of a queue message: progress, run, finality, the poison copy.
//   - progress.go: what an unfinished attempt achieved, saved as users settle.
//   - status.go:   the status record behind a status link: created, updated, rebuilt, read.
//   - notify.go:   the revocation.completed event once every user is final.
//
// The adapters (internal/server for the Functions host, internal/cli) only translate: they
// decode, call Submit, Deliver or Status, and render the answer.

// Runner runs one job (*Engine).
type Runner interface {
	Run(ctx context.Context, job Job) (Result, error)
}

// Renderer renders a result as its caller is answered (for HTTP: status code, JSON body,
// Location and Retry-After), so that the lifecycle can keep and replay it byte for byte.
type Renderer interface {
	// Render answers res; statusURL, when set, is the request's status link, and poll says that
	// some user is queued, so that the link is to be polled.
	Render(res Result, statusURL string, poll bool) Answer
}

// Answer is what a caller is told.
type Answer struct {
	Status     int
	Body       []byte
	Location   string        // the status link to poll
	RetryAfter time.Duration // when to ask again
	// Final answers are kept for replay: a repeat of the request id gets them again.
	Final bool
	// Replayed: a repeat of an earlier request, answered from memory without running it again.
	Replayed bool
}

// Poisoner keeps a copy of a message that can never succeed (its queue's -poison queue).
type Poisoner interface {
	Poison(ctx context.Context, text []byte) error
}

// LifecycleConfig wires a request's life to the engine and to what it remembers.
type LifecycleConfig struct {
	Engine   Runner
	Store    Store
	Render   Renderer
	Notifier Notifier // revocation.completed events; nil: none
	Poison   Poisoner // the request queue's poison copies; nil without storage
	Logger   *slog.Logger

	// CanDefer: storage and a queue secret are configured, so users can be deferred to the
	// queue (and a status link made).
	CanDefer bool
	// Watching: the sign-in watch is on, so a request with revoked users gets a status link.
	Watching bool

	IdempotencyTTL  time.Duration // how long a final answer is kept for replay (default 24 h)
	StatusTTL       time.Duration // how long a status record is kept after its last write
	MaxDequeueCount int           // the host's maxDequeueCount: the delivery that is a message's last

	// Drain, when done, aborts in-flight Graph work so that every request still gets an answer
	// (failed, or queued) before the process must exit. Nil never drains.
	Drain context.Context
}

// Lifecycle owns a request's life: claim and replay, progress, the status record, deferral
// and finality. It is safe for concurrent use.
type Lifecycle struct{ cfg LifecycleConfig }

// NewLifecycle returns a Lifecycle with defaults filled in.
func NewLifecycle(cfg LifecycleConfig) *Lifecycle {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.StatusTTL <= 0 {
		cfg.StatusTTL = cfg.IdempotencyTTL
	}
	if cfg.MaxDequeueCount <= 0 {
		cfg.MaxDequeueCount = 5
	}
	return &Lifecycle{cfg: cfg}
}

// HTTPBudget bounds one synchronous request's Graph work: callers such as Logic Apps time out
// after a minute or two, and a request that cannot finish in time is better queued.
const HTTPBudget = 25 * time.Second

// QueueBudget bounds one queue delivery; the host's function timeout is longer, and a slower
// Graph is better met by the queue's own retry than by holding the message.
const QueueBudget = 60 * time.Second

// stateBudget bounds one bookkeeping call to the store. The store answers in milliseconds, and
// falls back to memory when the table is slow, so this is a safety net.
const stateBudget = 5 * time.Second

// claimLease is how long a claim on a request id excludes others, sized from the worst case of a
// live attempt, each step using its whole budget: the claim's own write (its lease is counted from
// before it), the request's Graph budget, the deferral's budget after it, and the write of the
// outcome. A live attempt therefore always ends within its lease; an instance that dies
// mid-request holds the id no longer than this. (An outcome that lands late is still taken as
// long as no other attempt took the id over.)
const claimLease = stateBudget + HTTPBudget + deferBudget + stateBudget

// workContext is the context a request's work runs in: detached from the caller's connection (an
// accepted revocation finishes, and the caller's retry is replayed), bounded by budget, and
// cancelled when the process drains for shutdown.
func (l *Lifecycle) workContext(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	if l.cfg.Drain == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(l.cfg.Drain, cancel)
	return ctx, func() { stop(); cancel() }
}

// bookkeeping is the context of the writes after the work: a budget of its own, since the work
// may have used all of its.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), stateBudget)
}

// handleBytes is the randomness of a status handle: 128 bits, the handle being the only
// credential of its link.
const handleBytes = 16

// newHandle returns a new unguessable, URL-safe status handle.
func newHandle() string {
	b := make([]byte, handleBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b)
}

// watched reports whether res has users the sign-in watch follows: the request then has a
// status record and a status link, even when answered at once.
func (l *Lifecycle) watched(res Result) bool {
	if !l.cfg.Watching || res.DryRun {
		return false
	}
	for _, u := range res.Results {
		if u.Status == StatusRevoked {
			return true
		}
	}
	return false
}

// replayable reports whether a request's answer may be kept and replayed for a repeat of its id.
// Not when a retry could change it (throttled, failed) nor when a configuration change could:
// dry_run (the app going live) and denied (a permission granted). The caller's repeat after such
// a change must run again rather than receive the old answer.
func replayable(res Result) bool {
	for _, u := range res.Results {
		if u.Status.Retryable() || u.Status == StatusDryRun || u.Status == StatusDenied {
			return false
		}
	}
	return true
}

// summary counts outcomes without naming users: host logs are read more widely than telemetry.
func summary(res Result) string {
	counts := map[Status]int{}
	for _, u := range res.Results {
		counts[u.Status]++
	}
	parts := make([]string, 0, len(counts))
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d users: %s", len(res.Results), strings.Join(parts, " "))
}
