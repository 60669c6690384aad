// Package telemetry records what the handler did: one JSON line per revocation outcome and per
// refused caller on stdout (the audit trail the Functions host keeps) and, when
// APPLICATIONINSIGHTS_CONNECTION_STRING is set, Application Insights events and dependencies sent
// in the background to the documented ingestion API (POST {IngestionEndpoint}/v2.1/track).
//
// There is no maintained Go SDK for Application Insights, so this package implements the small
// part of the wire format the handler needs. Sending never blocks the request path: items go into
// a bounded buffer that drops its oldest item when full, and the drops are reported.
package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// Defaults for Config fields left zero.
const (
	DefaultRole      = "entra-revoke"
	DefaultBatchSize = 100
	DefaultInterval  = 2 * time.Second
	DefaultMaxBuffer = 10000
)

var _ revoke.OutcomeSink = (*Telemetry)(nil)

// Errors returned by New.
var (
	// ErrNoCredential: Authorization=AAD needs a credential to get ingestion tokens with.
	ErrNoCredential = errors.New("telemetry: Authorization=AAD needs a credential")
	// ErrNoSalt: redacting UPNs needs a salt, and without a connection string none can be derived.
	ErrNoSalt = errors.New("telemetry: redacting UPNs needs a salt or a connection string to derive it from")
)

// Config configures New. Only Connection decides whether anything is sent to Application Insights.
type Config struct {
	Connection   ConnectionString
	Role         string                 // ai.cloud.role: WEBSITE_SITE_NAME, else DefaultRole
	RoleInstance string                 // ai.cloud.roleInstance: WEBSITE_INSTANCE_ID, else the hostname
	Credential   azcore.TokenCredential // required when Connection.AAD
	RedactUPN    bool                   // TELEMETRY_REDACT_UPN: upnHash instead of upn, UPNs scrubbed from text
	Salt         string                 // salt of upnHash; "" → the instrumentation key in lowercase
	Stdout       io.Writer              // one JSON line per outcome and rejection; nil writes none
	Logger       *slog.Logger           // the exporter's own diagnostics (export failing/recovered); nil discards
	HTTPClient   *http.Client           // optional; the default has no overall timeout, each send has a deadline
	BatchSize    int                    // items per POST, default DefaultBatchSize
	Interval     time.Duration          // longest wait before a partial batch is sent, default DefaultInterval
	MaxBuffer    int                    // items held while the endpoint is slow or down, default DefaultMaxBuffer
}

// Stats counts telemetry items for /api/health.
type Stats struct {
	Buffered int64 `json:"buffered"` // waiting or in flight
	Sent     int64 `json:"sent"`     // accepted by the ingestion endpoint
	Dropped  int64 `json:"dropped"`  // pushed out of a full buffer, recorded after Close, or unsent when Close's budget ran out
	Failed   int64 `json:"failed"`   // refused by the endpoint for good (e.g. 400)
}

// Rejection describes a refused caller or queue message (event WebhookRejected).
type Rejection struct {
	Reason    string // missing_signature, bad_signature, expired, bad_token, missing_role, client_not_allowed, unsigned_message, …
	Trigger   revoke.Trigger
	RequestID string
	ClientIP  string
}

// Dependency describes one Graph call (RemoteDependencyData). Name and Data are templated before
// sending: any /users/<ref> segment becomes /users/{id}.
type Dependency struct {
	Name       string // e.g. "POST /users/{id}/revokeSignInSessions"
	Target     string // Graph host
	Data       string // the templated URL
	ResultCode int    // HTTP status, 0 when no response arrived
	Success    bool
	Start      time.Time
	Duration   time.Duration
	RequestID  string // Graph's request-id response header
}

// Telemetry writes outcome and rejection lines to stdout and exports Application Insights
// envelopes. Its methods are safe for concurrent use and never wait for the network.
type Telemetry struct {
	ikey     string // instrumentation key, "" when nothing is exported
	typeName string // "Microsoft.ApplicationInsights.<ikey without dashes>."
	role     string
	instance string
	redact   bool
	salt     string
	audit    *lineWriter // nil without Stdout

	sender *sender // nil without a connection string

	// scratch holds *[]byte buffers to encode items and lines in, so that each costs one
	// allocation of its exact size (envelopes) or none (lines, which the line writer copies).
	scratch sync.Pool

	closeOnce sync.Once
	closeErr  error
}

// New returns a Telemetry for cfg. It starts the background sender only when cfg.Connection names
// an Application Insights resource; Close stops it.
func New(cfg Config) (*Telemetry, error) {
	if cfg.BatchSize < 0 || cfg.MaxBuffer < 0 || cfg.Interval < 0 {
		return nil, errors.New("telemetry: BatchSize, MaxBuffer and Interval must not be negative")
	}
	t := &Telemetry{
		ikey:     cfg.Connection.InstrumentationKey,
		role:     cfg.Role,
		instance: cfg.RoleInstance,
		redact:   cfg.RedactUPN,
		salt:     cfg.Salt,
	}
	if t.role == "" {
		t.role = DefaultRole
	}
	if t.instance == "" {
		t.instance, _ = os.Hostname()
	}
	if t.instance == "" {
		t.instance = t.role // the tag must not be empty
	}
	if t.redact && t.salt == "" {
		if t.ikey == "" {
			return nil, ErrNoSalt
		}
		t.salt = deriveSalt(t.ikey)
	}
	if cfg.Stdout != nil {
		t.audit = newLineWriter(cfg.Stdout)
	}
	if !cfg.Connection.Enabled() {
		return t, nil
	}
	// A ConnectionString built by hand gets the same checks as a parsed one: the key goes into
	// every envelope name, the endpoint receives outcomes (and tokens).
	if !request.IsObjectID(t.ikey) {
		return nil, fmt.Errorf("%w: InstrumentationKey is not a GUID", ErrConnectionString)
	}
	endpoint := cfg.Connection.IngestionEndpoint
	if endpoint == "" {
		endpoint = DefaultIngestionEndpoint
	}
	endpoint, err := normalizeEndpoint(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: IngestionEndpoint %v", ErrConnectionString, err)
	}
	cfg.Connection.IngestionEndpoint = endpoint
	if cfg.Connection.AAD && cfg.Credential == nil {
		return nil, ErrNoCredential
	}
	t.typeName = "Microsoft.ApplicationInsights." + strings.ReplaceAll(t.ikey, "-", "") + "."
	t.sender = newSender(cfg, t.droppedEvent)
	go t.sender.loop()
	return t, nil
}

// Outcome records one user's final outcome: a stdout line and a SessionRevocation event.
func (t *Telemetry) Outcome(ctx context.Context, o revoke.Outcome) {
	op := t.operation(ctx, o.InvocationID, o.RequestID)
	fields := t.outcomeFields(o, op)
	meas := []measure{
		{"durationMs", ms(o.Duration)},
		{"graphMs", ms(o.GraphDuration)},
		{"attempts", float64(o.Attempts)},
	}
	t.writeLine("session revocation", eventRevocation, fields, meas)
	t.enqueueEvent(time.Now(), op, eventRevocation, fields, meas)
}

// Rejected records a refused caller or message: a stdout line and a WebhookRejected event.
func (t *Telemetry) Rejected(ctx context.Context, r Rejection) {
	op := t.operation(ctx, "", r.RequestID)
	fields := t.finish([]field{
		{"reason", r.Reason},
		{"trigger", string(r.Trigger)},
		{"requestId", r.RequestID},
		{"clientIp", r.ClientIP},
		{"invocationId", op.InvocationID},
	}, "")
	t.writeLine("caller rejected", eventRejected, fields, nil)
	t.enqueueEvent(time.Now(), op, eventRejected, fields, nil)
}

// Dependency records one Graph call as RemoteDependencyData. Nothing is written to stdout.
func (t *Telemetry) Dependency(ctx context.Context, d Dependency) {
	if t.sender == nil {
		return
	}
	op := t.operation(ctx, "", "")
	name, data := templateGraph(d.Name), templateGraph(d.Data)
	if t.redact {
		name, data = scrub(name, ""), scrub(data, "")
	}
	start := d.Start
	if start.IsZero() {
		start = time.Now().Add(-d.Duration)
	}
	props := t.finish([]field{
		{"graphRequestId", d.RequestID},
		{"invocationId", op.InvocationID},
	}, "")
	t.enqueue(t.envelope(start, op, "RemoteDependency", "RemoteDependencyData", dependencyData{
		id:         randomHex(8),
		name:       truncate(name, maxNameLen),
		resultCode: strconv.Itoa(d.ResultCode),
		duration:   formatDuration(d.Duration),
		success:    d.Success,
		typ:        "Http",
		target:     truncate(d.Target, maxNameLen),
		data:       truncate(data, maxPropertyLen),
		props:      props,
	}))
}

// Close sends what is buffered and stops the sender. ctx bounds the flush (the shutdown budget):
// when it ends first, the in-flight request is abandoned, what is left counts as dropped, and the
// error wraps ctx.Err(). Items recorded after Close are dropped. Close is idempotent.
func (t *Telemetry) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		if t.audit != nil {
			t.audit.wait()
		}
		if t.sender != nil {
			t.closeErr = t.sender.close(ctx)
		}
	})
	return t.closeErr
}

// Stats returns the item counters.
func (t *Telemetry) Stats() Stats {
	if t.sender == nil {
		return Stats{}
	}
	return t.sender.stats()
}

// operation completes the context's Operation with what the item itself knows.
func (t *Telemetry) operation(ctx context.Context, invocationID, requestID string) Operation {
	op := OperationFrom(ctx)
	if op.InvocationID == "" {
		op.InvocationID = invocationID
	}
	if op.ID == "" {
		op.ID = op.InvocationID
	}
	if op.ID == "" {
		op.ID = requestID
	}
	if op.ID == "" {
		op.ID = randomHex(16)
	}
	if t.redact {
		// The fallback ids come from the caller (webhook-id, Idempotency-Key): hostile input.
		op.ID, op.InvocationID = scrub(op.ID, ""), scrub(op.InvocationID, "")
	}
	return op
}

// outcomeFields lists an outcome's properties in the order of the telemetry contract, redacted when configured.
func (t *Telemetry) outcomeFields(o revoke.Outcome, op Operation) []field {
	upn := field{"upn", o.UPN}
	userID := o.UserID
	requestedBy := field{"requestedBy", o.RequestedBy}
	target := o.UPN
	if t.redact {
		if o.UPN != "" {
			upn = field{"upnHash", hashUPN(t.salt, o.UPN)}
		}
		// An object ID is a pseudonymous id, already sent as userId: when the request named the
		// user by object ID, keep it there (queries by upnHash still work, it is hashed too).
		if request.IsObjectID(o.UPN) {
			if userID == "" {
				userID = o.UPN
			}
			target = "" // nothing to scrub: the GUID is not a UPN
		}
		if strings.Contains(o.RequestedBy, "@") {
			requestedBy = field{"requestedByHash", hashUPN(t.salt, o.RequestedBy)}
		}
	}
	invocationID := o.InvocationID
	if invocationID == "" {
		invocationID = op.InvocationID
	}
	var verified, validFrom, dequeue string
	if o.Verified != nil {
		verified = strconv.FormatBool(*o.Verified)
	}
	if !o.SessionsValidFrom.IsZero() {
		validFrom = o.SessionsValidFrom.UTC().Format(time.RFC3339)
	}
	if o.DequeueCount > 0 {
		dequeue = strconv.Itoa(o.DequeueCount)
	}
	return t.finish([]field{
		{"status", string(o.Status)},
		upn,
		{"userId", userID},
		{"trigger", string(o.Trigger)},
		{"requestId", o.RequestID},
		{"invocationId", invocationID},
		{"caller", o.Caller},
		{"ticket", o.Ticket},
		{"reason", o.Reason},
		requestedBy,
		{"dryRun", strconv.FormatBool(o.DryRun)},
		{"graphRequestId", o.GraphRequestID},
		{"errorCode", o.ErrorCode},
		{"errorMessage", o.ErrorMessage},
		{"verified", verified},
		{"sessionsValidFrom", validFrom},
		{"dequeueCount", dequeue},
		{"guard", o.Guard},
		{"warning", o.Warning},
	}, target)
}

// finish drops empty properties, scrubs UPNs when redacting (everything but the hashes), and
// truncates to the ingestion limit.
func (t *Telemetry) finish(fields []field, upn string) []field {
	out := fields[:0]
	for _, f := range fields {
		if f.val == "" {
			continue
		}
		if t.redact && !strings.HasSuffix(f.key, "Hash") {
			f.val = scrub(f.val, upn)
		}
		f.val = truncate(f.val, maxPropertyLen)
		out = append(out, f)
	}
	return out
}

// writeLine writes the audit line, in the shape of log/slog's JSON handler (time, level, msg),
// then the event name and the same properties and measurements as the event, so stdout and
// Application Insights tell the same story.
func (t *Telemetry) writeLine(msg, event string, fields []field, meas []measure) {
	if t.audit == nil {
		return
	}
	scratch := t.scratchBuffer()
	defer t.scratch.Put(scratch)
	b := (*scratch)[:0]
	defer func() { *scratch = b[:0] }()
	b = append(b, `{"time":`...)
	b = appendTime(b, time.Now())
	b = append(b, `,"level":"INFO"`...)
	b = appendMember(b, "msg", msg)
	b = appendMember(b, "event", event)
	b = appendFields(b, fields)
	b = appendMeasures(b, meas)
	b = append(b, '}', '\n')
	_, _ = t.audit.Write(b) // copies b; like slog, an audit line that cannot be written has nowhere to go
}

func (t *Telemetry) enqueueEvent(at time.Time, op Operation, name string, fields []field, meas []measure) {
	if t.sender == nil {
		return
	}
	t.enqueue(t.envelope(at, op, "Event", "EventData", eventData{name: name, props: fields, meas: meas}))
}

// droppedEvent is the TelemetryDropped event the sender adds to the next batch after drops.
func (t *Telemetry) droppedEvent(n int64) []byte {
	return t.envelope(time.Now(), Operation{ID: randomHex(16)}, "Event", "EventData", eventData{
		name: eventDropped, meas: []measure{{"dropped", float64(n)}},
	})
}

// envelope encodes one item. Encoding happens on the caller's goroutine so the buffer holds
// immutable bytes.
func (t *Telemetry) envelope(at time.Time, op Operation, kind, baseType string, base baseData) []byte {
	scratch := t.scratchBuffer()
	defer t.scratch.Put(scratch)
	b := (*scratch)[:0]
	defer func() { *scratch = b[:0] }()
	b = append(b, `{"ver":1`...)
	b = appendMember(b, "name", t.typeName+kind)
	b = appendKey(b, "time")
	b = appendTime(b, at.UTC())
	b = appendMember(b, "iKey", t.ikey)
	b = appendKey(b, "tags")
	b = append(b, '{')
	b = appendMember(b, "ai.cloud.role", truncate(t.role, maxTagLen))
	b = appendMember(b, "ai.cloud.roleInstance", truncate(t.instance, maxTagLen))
	b = appendMember(b, "ai.operation.id", truncate(op.ID, maxTagLen))
	if op.ParentID != "" {
		b = appendMember(b, "ai.operation.parentId", truncate(op.ParentID, maxTagLen))
	}
	b = appendMember(b, "ai.internal.sdkVersion", "go:entra-revoke")
	b = append(b, `},"data":{`...)
	b = appendMember(b, "baseType", baseType)
	b = appendKey(b, "baseData")
	b = base.appendBase(b)
	b = append(b, '}', '}')
	return bytes.Clone(b) // exact size: the buffer holds it until it is sent
}

func (t *Telemetry) scratchBuffer() *[]byte {
	if b, ok := t.scratch.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 2048)
	return &b
}

func (t *Telemetry) enqueue(item []byte) {
	if item != nil {
		t.sender.push(item)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
