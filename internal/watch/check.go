package watch

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"
)

// Check is one scheduled sign-in check: which request revoked whom, when, and how long after
// that to look. It travels signed in a queue message.
type Check struct {
	RequestID    string
	Caller       string // "webhook:<key index>", "entra:<client id>", …
	StatusHandle string // the request's status record; "" when it has none. A credential: never logged
	Ticket       string // "" when the request had none
	UPN          string // the user as requested (a UPN or an object ID)
	UserID       string // the user's object ID
	RevokedAt    time.Time
	After        string        // as written in WATCH_AFTER, e.g. "15m"
	Delay        time.Duration // After parsed
}

// Due is when the check comes due: revokedAt + after.
func (c Check) Due() time.Time { return c.RevokedAt.Add(c.Delay) }

// Key is what makes a check once-only: the request (its id and caller: two callers' requests
// with the same id are two requests), the user's object ID and the duration. Redeliveries of a
// check's message, and a copy of it on another instance, share it; nothing else does — another
// user, duration or request never collides. Each part is printable ASCII without a newline, so
// joining them with newlines is unambiguous.
func (c Check) Key() string {
	return strings.Join([]string{c.RequestID, c.Caller, strings.ToLower(c.UserID), c.After}, "\n")
}

// Once makes each check happen once across redeliveries and instances: an exclusive, expiring
// claim on Check.Key that, once finished, stays finished.
type Once interface {
	// Begin claims key; done reports a check already made. ErrBusy: another holds it now.
	Begin(ctx context.Context, key string) (lease string, done bool, err error)
	// Finish marks key done for good, keeping result (the check's Result as JSON).
	Finish(ctx context.Context, key, lease string, result []byte) error
	// Abandon gives key up without a result, so a later delivery makes the check.
	Abandon(ctx context.Context, key, lease string) error
}

// Records appends a check's result to the user's watch array in the request's status record.
// stored is false, with no error, when the record has expired (or never existed): the result
// is then reported but not kept.
type Records interface {
	AppendWatch(ctx context.Context, handle, userID, upn string, entry []byte) (stored bool, err error)
}

// Event is a finished check, for telemetry and log lines (Sink) and callbacks (Notifier).
type Event struct {
	Check        Check
	Result       Result
	InvocationID string
	DequeueCount int
	Stored       bool // the result is in the request's status record
}

// Sink records a finished check: an event and a log line. It must not block for long.
type Sink interface {
	Watched(ctx context.Context, e Event)
}

// Notifier is told of every finished check, for outcome callbacks (revocation.watch). It is
// optional; an error is logged and changes nothing about the check.
type Notifier interface {
	Watched(ctx context.Context, e Event) error
}

// Delivery is one delivery of a check's message.
type Delivery struct {
	Check
	Last         bool // the host's last delivery: a failure is then recorded as unavailable/failed
	DequeueCount int
	InvocationID string
}

// ErrRetry asks the host to deliver the check again later (the reader failed transiently, or
// another instance holds the check).
var ErrRetry = errors.New("sign-in check to be retried")

// ErrPostponed reports a check put back on the queue for later (Watcher.Requeue): this delivery
// is finished, the check is not made yet.
var ErrPostponed = errors.New("sign-in check postponed")

// Watcher makes checks.
type Watcher struct {
	Reader   Reader
	Once     Once
	Records  Records  // nil: results are reported, never stored
	Sink     Sink     // nil: nothing recorded beyond the logger
	Notifier Notifier // nil: no callbacks
	Logger   *slog.Logger
	Now      func() time.Time
	// Requeue, optional, puts a check that had to wait for the reports limit back on the queue
	// for later, so that a backlog of checks waits in the queue rather than using up its
	// deliveries (and ending "failed") while Graph is merely busy.
	Requeue Enqueuer
}

// requeueDelay is how long a postponed check waits before its next turn: long enough for the
// reports limit to serve the checks ahead of it (30 a minute), short against any WATCH_AFTER.
const requeueDelay = time.Minute

// Run makes the check of d once. It returns the result and nil when the check is finished (made
// now, or already made: done), or ErrRetry when the host should deliver it again.
func (w *Watcher) Run(ctx context.Context, d Delivery) (res Result, already bool, err error) {
	logger := w.logger()
	key := d.Key()
	lease, done, err := w.Once.Begin(ctx, key)
	switch {
	case errors.Is(err, ErrBusy):
		if d.Last {
			// The instance holding it finishes it; failing this last delivery would only poison it.
			return Result{}, true, nil
		}
		return Result{}, false, ErrRetry
	case err != nil:
		// The check matters more than its bookkeeping: make it, at the risk of making it twice.
		logger.Warn("sign-in check claim failed; checking anyway", "request_id", d.RequestID, "after", d.After, "error", err)
	case done:
		return Result{}, true, nil
	}

	signIns, rerr := w.Reader.SignIns(ctx, d.UserID, d.RevokedAt)
	now := w.now()
	var re *ReadError
	switch {
	case rerr == nil:
		res = Decide(d.After, now, signIns)
	case errors.As(rerr, &re) && re.Reason != "":
		res = UnavailableResult(d.After, now, re.Reason)
	case errors.As(rerr, &re) && re.Throttled && w.Requeue != nil:
		if lease != "" {
			if err := w.Once.Abandon(context.WithoutCancel(ctx), key, lease); err != nil {
				logger.Warn("sign-in check not released", "request_id", d.RequestID, "error", err)
			}
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordBudget)
		defer cancel()
		if err := w.Requeue.EnqueueCheck(qctx, d.Check, requeueDelay); err != nil {
			logger.Warn("sign-in check not postponed; the host will retry", "request_id", d.RequestID, "after", d.After, "error", err)
			return Result{}, false, ErrRetry
		}
		logger.Info("sign-in check postponed: Graph's reports limit is busy", "request_id", d.RequestID, "after", d.After, "retry_in", requeueDelay.String())
		return Result{}, false, ErrPostponed
	case !d.Last:
		logger.Warn("sign-in check failed; the host will retry", "request_id", d.RequestID, "after", d.After, "dequeue_count", d.DequeueCount, "error", rerr)
		if lease != "" {
			if err := w.Once.Abandon(context.WithoutCancel(ctx), key, lease); err != nil {
				logger.Warn("sign-in check not released", "request_id", d.RequestID, "error", err)
			}
		}
		return Result{}, false, ErrRetry
	default:
		res = UnavailableResult(d.After, now, ReasonFailed)
	}
	// Recording gets its own budget: reading Graph may have used the invocation's.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordBudget)
	defer cancel()
	entry, _ := json.Marshal(res)
	ev := Event{Check: d.Check, Result: res, InvocationID: d.InvocationID, DequeueCount: d.DequeueCount}
	if w.Records != nil && d.StatusHandle != "" {
		stored, err := w.Records.AppendWatch(rctx, d.StatusHandle, d.UserID, d.UPN, entry)
		if err != nil {
			logger.Warn("sign-in check not stored in the request status", "request_id", d.RequestID, "after", d.After, "error", err)
		}
		ev.Stored = stored
	}
	if w.Sink != nil {
		w.Sink.Watched(rctx, ev)
	}
	if w.Notifier != nil {
		if err := w.Notifier.Watched(rctx, ev); err != nil {
			logger.Warn("sign-in check not notified", "request_id", d.RequestID, "after", d.After, "error", err)
		}
	}
	if lease != "" {
		if err := w.Once.Finish(rctx, key, lease, entry); err != nil {
			logger.Warn("sign-in check not marked done", "request_id", d.RequestID, "after", d.After, "error", err)
		}
	}
	return res, false, nil
}

// recordBudget bounds storing, recording and marking one finished check.
const recordBudget = 10 * time.Second

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Watcher) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.New(slog.DiscardHandler)
}
