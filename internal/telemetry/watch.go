package telemetry

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// Sign-in watch events.
const (
	eventWatch             = "RevocationWatch"
	eventWatchNotScheduled = "WatchNotScheduled"
)

var _ watch.Sink = (*Telemetry)(nil)

// Watched records a finished sign-in check: a stdout line (level warning when someone signed in
// again, so that log-based alerts see it without parsing) and a RevocationWatch event with
// SessionRevocation's properties plus the finding.
func (t *Telemetry) Watched(ctx context.Context, ev watch.Event) {
	e, r := ev.Check, ev.Result
	o := revoke.Outcome{
		Meta: revoke.Meta{
			Trigger: revoke.TriggerQueue, RequestID: e.RequestID, InvocationID: ev.InvocationID,
			Caller: e.Caller, DequeueCount: ev.DequeueCount,
		},
		Status: revoke.StatusRevoked, UPN: e.UPN, UserID: e.UserID, Ticket: e.Ticket,
	}
	op := t.operation(ctx, ev.InvocationID, e.RequestID)
	fields := t.outcomeFields(o, op)
	var latest watch.Seen
	if len(r.Latest) > 0 {
		latest = r.Latest[0]
	}
	target := e.UPN
	fields = append(fields, t.finish([]field{
		{"finding", string(r.Finding)},
		{"after", r.After},
		{"signIns", strconv.Itoa(r.SignIns)},
		{"reason", r.Reason},
		{"latestAt", latest.At},
		{"latestApp", latest.App},
		{"latestIp", latest.IP},
		{"latestLocation", latest.Location},
		{"stored", strconv.FormatBool(ev.Stored)},
	}, target)...)
	checked, err := time.Parse(time.RFC3339, r.CheckedAt)
	if err != nil {
		checked = time.Now()
	}
	meas := []measure{{"minutesAfterRevocation", checked.Sub(e.RevokedAt).Minutes()}}
	level := slog.LevelInfo
	if r.Finding == watch.SignedInAgain {
		level = slog.LevelWarn
	}
	t.recordAt(ctx, level, time.Now(), op, "sign-in watch", eventWatch, fields, meas)
}

// WatchNotScheduled records a sign-in check that could not be scheduled after a revocation (the
// revocation itself stands): a stdout line at level error and a WatchNotScheduled event.
func (t *Telemetry) WatchNotScheduled(ctx context.Context, f watch.ScheduleFailure) {
	op := t.operation(ctx, "", f.RequestID)
	fields := t.finish([]field{
		{"requestId", f.RequestID},
		{"after", f.After},
		{"reason", f.Reason},
		{"error", errorText(f.Err)},
		{"invocationId", op.InvocationID},
	}, f.UPN)
	t.recordAt(ctx, slog.LevelError, time.Now(), op, "sign-in watch not scheduled", eventWatchNotScheduled, fields, nil)
}
