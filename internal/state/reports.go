package state

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Graph's reports limit on auditLogs (sign-in logs): at most ReportsLimit requests in any
// ReportsWindow, per app and tenant.
const (
	ReportsLimit  = 5
	ReportsWindow = 10 * time.Second
	// reportsMargin widens the window the log keeps: a request reaches Graph a little after it is
	// let through, by a varying amount, so two requests 10 s apart here may land closer there.
	reportsMargin = 500 * time.Millisecond
)

// The reports limit is a sliding log, not a token bucket: a bucket of 5 refilling at 0.5/s lets
// 9 requests into some 10-second window, and Graph counts windows. The log holds the times of
// the last ReportsLimit requests; a request is let through when fewer than that many fall in the
// last ReportsWindow.
type reportsLog struct {
	limit  int
	window time.Duration
	times  []time.Time
}

// take admits a request at now, or says how long until the oldest one leaves the window.
func (l *reportsLog) take(now time.Time) (time.Duration, bool) {
	l.times = slices.DeleteFunc(l.times, func(t time.Time) bool { return !t.After(now.Add(-l.window)) })
	if len(l.times) >= l.limit {
		oldest := slices.MinFunc(l.times, func(a, b time.Time) int { return a.Compare(b) })
		// A clock behind another instance's could ask for more than a window: never wait longer.
		return min(l.window, oldest.Add(l.window).Sub(now)+time.Millisecond), false
	}
	l.times = append(l.times, now)
	return 0, true
}

// Reports holds calls to Graph's auditLogs within the reports limit for one process (memory
// mode, and the fallback of TableReports while the table cannot be reached). Key: none, one per
// process, since every call of the process uses the same app identity in the same tenant.
type Reports struct {
	mu  sync.Mutex
	log reportsLog
	now func() time.Time
}

// NewReports returns the reports limit for one process; now nil means time.Now.
func NewReports(now func() time.Time) *Reports {
	if now == nil {
		now = time.Now
	}
	return &Reports{log: reportsLog{limit: ReportsLimit, window: ReportsWindow + reportsMargin}, now: now}
}

// Take reserves one auditLogs request, or reports how long until one is free.
func (r *Reports) Take(ctx context.Context) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.take(r.now())
}

// Reports-limit entity: its own kind and key, beside the rate guard's bucket and apart from it.
const (
	kindReports = "reports"
	propTimes   = "Times" // Unix ms of the last requests, comma-separated
)

// reportsKey is the one reports-limit log every instance shares. Its key names Graph's limit,
// "per app and tenant": the instances of one Function App share the state table and the app's
// identity, so they meet on it; another app with its own table has its own identity and limit.
// Two apps that share both a table and an identity share the log, which only keeps them under
// the limit together, as Graph counts them.
var reportsKey = entityKey(kindReports, "auditLogs")

// TableReports holds calls to Graph's auditLogs within the reports limit across every instance
// that shares the table: the log lives in one entity, updated with writes conditional on its ETag,
// so two instances never both take the last free request. While the table cannot be reached,
// each instance falls back to its own log (Graph's 429 then paces what gets through).
type TableReports struct {
	table    *Table
	fallback *Reports
}

// NewTableReports returns the reports limit shared through t.
func NewTableReports(t *Table) *TableReports {
	return &TableReports{table: t, fallback: NewReports(t.now)}
}

// Take reserves one auditLogs request, or reports how long until one is free.
func (r *TableReports) Take(ctx context.Context) (time.Duration, bool) {
	wait, ok, err := r.take(ctx)
	if err != nil {
		r.table.logger.Warn("state table reports limit unreachable, using the instance's own", "error", err)
		return r.fallback.Take(ctx)
	}
	return wait, ok
}

func (r *TableReports) take(ctx context.Context) (time.Duration, bool, error) {
	t := r.table
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	for attempt := range maxUpdateAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return 0, false, err
		}
		e, exists, err := t.get(ctx, reportsKey)
		if err != nil {
			return 0, false, err
		}
		now := t.now()
		log := reportsLog{limit: ReportsLimit, window: ReportsWindow + reportsMargin, times: parseTimes(e.str(propTimes))}
		wait, ok := log.take(now)
		if !ok {
			return wait, false, nil
		}
		next := newEntity(reportsKey, kindReports, now.Add(bucketIdleTTL))
		next.props[propTimes] = formatTimes(log.times)
		if exists {
			_, err = t.update(ctx, next, e.etag, aztables.UpdateModeReplace)
		} else {
			_, err = t.add(ctx, next)
		}
		switch {
		case err == nil:
			return 0, true, nil
		case conditionFailed(err), hasCode(err, aztables.EntityAlreadyExists), notFound(err):
			continue // another instance wrote first: read again
		default:
			return 0, false, err
		}
	}
	// Sustained contention: come back shortly rather than spin.
	return time.Second, false, nil
}

func parseTimes(s string) []time.Time {
	var out []time.Time
	for _, f := range strings.Split(s, ",") {
		if ms, err := strconv.ParseInt(f, 10, 64); err == nil {
			out = append(out, time.UnixMilli(ms))
		}
	}
	return out
}

func formatTimes(ts []time.Time) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.FormatInt(t.UnixMilli(), 10)
	}
	return strings.Join(parts, ",")
}
