package telemetry

import (
	"context"
	"strconv"
	"time"
)

// Names of the callback events (docs/telemetry.md).
const (
	eventCallbackDelivered = "CallbackDelivered"
	eventCallbackFailed    = "CallbackFailed"
)

// CallbackFate is the final fate of one outcome callback. It names the receiver's host only:
// a callback URL's path and query may hold the receiver's own secrets.
type CallbackFate struct {
	Delivered  bool
	EventID    string
	Type       string // revocation.completed, revocation.watch
	RequestID  string
	Host       string
	Attempts   int
	LastStatus int    // the last attempt's HTTP status, 0 when no response arrived
	Reason     string // why it failed: gone (410), gave_up, enqueue_failed, host_not_allowed, …
}

// Callback records a callback's fate: a stdout line and a CallbackDelivered or CallbackFailed event.
func (t *Telemetry) Callback(ctx context.Context, f CallbackFate) {
	op := t.operation(ctx, "", f.RequestID)
	name, msg := eventCallbackFailed, "callback failed"
	if f.Delivered {
		name, msg = eventCallbackDelivered, "callback delivered"
	}
	fields := t.finish([]field{
		{"eventId", f.EventID},
		{"type", f.Type},
		{"requestId", f.RequestID},
		{"host", f.Host},
		{"attempts", strconv.Itoa(f.Attempts)},
		{"lastStatus", strconv.Itoa(f.LastStatus)},
		{"reason", f.Reason},
		{"invocationId", op.InvocationID},
	}, "")
	t.record(ctx, time.Now(), op, msg, name, fields, nil)
}
