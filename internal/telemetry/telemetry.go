// Package telemetry records what the handler did: one JSON line per revocation outcome, refused
// caller and state fallback on stdout (the audit trail the Functions host keeps, written with
// log/slog) and, when APPLICATIONINSIGHTS_CONNECTION_STRING is set, Application Insights events
// and dependencies sent in the background to the documented ingestion API
// (POST {IngestionEndpoint}/v2.1/track), encoded with encoding/json.
//
// There is no maintained Go SDK for Application Insights, so this package implements the small
// part of the wire format the handler needs. Sending never blocks the request path: items go into
// a bounded buffer that drops its oldest item when full, and the drops are reported.
package telemetry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
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

// MinUPNSaltLen is the shortest TELEMETRY_UPN_SALT accepted: the salt is the HMAC key that keeps
// upnHash from being reversed by hashing guessed UPNs.
const MinUPNSaltLen = 16

var _ revoke.OutcomeSink = (*Telemetry)(nil)

// Errors returned by New.
var (
	// ErrNoCredential: Authorization=AAD needs a credential to get ingestion tokens with.
	ErrNoCredential = errors.New("telemetry: Authorization=AAD needs a credential")
	// ErrNoSalt: redacting UPNs needs a secret salt (TELEMETRY_UPN_SALT) of at least
	// MinUPNSaltLen characters; without one, upnHash could be reversed.
	ErrNoSalt = errors.New("telemetry: redacting UPNs needs TELEMETRY_UPN_SALT, at least 16 characters")
)

// Config configures New. Only Connection decides whether anything is sent to Application Insights.
type Config struct {
	Connection   ConnectionString
	Role         string                 // ai.cloud.role: WEBSITE_SITE_NAME, else DefaultRole
	RoleInstance string                 // ai.cloud.roleInstance: WEBSITE_INSTANCE_ID, else the hostname
	Credential   azcore.TokenCredential // required when Connection.AAD
	RedactUPN    bool                   // TELEMETRY_REDACT_UPN: upnHash instead of upn, UPNs scrubbed from text
	UPNSalt      string                 // TELEMETRY_UPN_SALT: the HMAC key of upnHash; required with RedactUPN
	Stdout       io.Writer              // one JSON line per outcome, rejection and fallback; nil writes none
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

// Telemetry writes outcome, rejection and fallback lines to stdout and exports Application
// Insights envelopes. Its methods are safe for concurrent use and never wait for the network.
type Telemetry struct {
	ikey     string // instrumentation key, "" when nothing is exported
	typeName string // "Microsoft.ApplicationInsights.<ikey without dashes>."
	role     string
	instance string
	redact   bool
	salt     string
	audit    *slog.Logger // nil without Stdout; its JSON handler writes each line whole

	sender *sender // nil without a connection string

	closeOnce sync.Once
	closeErr  error
}

// New returns a Telemetry for cfg. It starts the background sender only when cfg.Connection names
// an Application Insights resource; Close stops it.
func New(cfg Config) (*Telemetry, error) {
	if cfg.BatchSize < 0 || cfg.MaxBuffer < 0 || cfg.Interval < 0 {
		return nil, errors.New("telemetry: BatchSize, MaxBuffer and Interval must not be negative")
	}
	if cfg.RedactUPN && len(cfg.UPNSalt) < MinUPNSaltLen {
		return nil, ErrNoSalt
	}
	t := &Telemetry{
		ikey:     cfg.Connection.InstrumentationKey,
		role:     cfg.Role,
		instance: cfg.RoleInstance,
		redact:   cfg.RedactUPN,
		salt:     cfg.UPNSalt,
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
	if cfg.Stdout != nil {
		t.audit = slog.New(slog.NewJSONHandler(cfg.Stdout, nil))
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

// HashUPN is upnHash: the lower-case hex HMAC-SHA256, keyed by salt (TELEMETRY_UPN_SALT), of the
// lower-case UPN. UPNs are case-insensitive, so one user always has one hash; without the salt,
// nobody can test guessed UPNs against it.
func HashUPN(salt, upn string) string {
	mac := hmac.New(sha256.New, []byte(salt))
	mac.Write([]byte(strings.ToLower(upn)))
	return hex.EncodeToString(mac.Sum(nil))
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
	t.record(ctx, time.Now(), op, "session revocation", eventRevocation, fields, meas)
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
	t.record(ctx, time.Now(), op, "caller rejected", eventRejected, fields, nil)
}

// StateFallback records that the shared state store could not be used for op (e.g. "claim",
// "progress", "rate") and the instance fell back to its own memory: a stdout line and a
// StateFallback event. Call it when a fallback starts, not on every operation while it lasts.
// err's text is reduced to its first line without URL queries (they may hold SAS tokens).
func (t *Telemetry) StateFallback(ctx context.Context, op string, err error) {
	o := t.operation(ctx, "", "")
	fields := t.finish([]field{
		{"operation", op},
		{"error", errorText(err)},
		{"invocationId", o.InvocationID},
	}, "")
	t.record(ctx, time.Now(), o, "state fallback", eventStateFallback, fields, nil)
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
		Ver:        2,
		ID:         randomHex(8),
		Name:       truncate(name, maxNameLen),
		ResultCode: strconv.Itoa(d.ResultCode),
		Duration:   formatDuration(d.Duration),
		Success:    d.Success,
		Type:       "Http",
		Target:     truncate(d.Target, maxNameLen),
		Data:       truncate(data, maxPropertyLen),
		Properties: properties(props),
	}))
}

// Close sends what is buffered and stops the sender. ctx bounds the flush (the shutdown budget):
// when it ends first, the in-flight request is abandoned, what is left counts as dropped, and the
// error wraps ctx.Err(). Items recorded after Close are dropped. Close is idempotent.
func (t *Telemetry) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
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

// outcomeFields lists an outcome's properties in the order of docs/telemetry.md, redacted when configured.
func (t *Telemetry) outcomeFields(o revoke.Outcome, op Operation) []field {
	upn := field{"upn", o.UPN}
	userID := o.UserID
	requestedBy := field{"requestedBy", o.RequestedBy}
	caller := o.Caller
	target := o.UPN
	if t.redact {
		if o.UPN != "" {
			upn = field{"upnHash", HashUPN(t.salt, o.UPN)}
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
			requestedBy = field{"requestedByHash", HashUPN(t.salt, o.RequestedBy)}
		}
		// "cli:<who signed in>" names a person when the CLI ran as a user: keep which kind of
		// caller it was and hash who, as upnHash does, rather than scrub it to nothing. (A hex
		// hash has nothing for finish to scrub.)
		if kind, who, ok := strings.Cut(caller, ":"); ok && strings.Contains(who, "@") {
			caller = kind + ":" + HashUPN(t.salt, who)
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
		{"caller", caller},
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

// record writes the audit line and enqueues the event. The line has log/slog's JSON shape (time,
// level, msg), then the event name and the same properties and measurements, in the same order
// every time, so stdout and Application Insights tell the same story.
func (t *Telemetry) record(ctx context.Context, at time.Time, op Operation, msg, event string, fields []field, meas []measure) {
	t.recordAt(ctx, slog.LevelInfo, at, op, msg, event, fields, meas)
}

// recordAt is record with the audit line at level.
func (t *Telemetry) recordAt(ctx context.Context, level slog.Level, at time.Time, op Operation, msg, event string, fields []field, meas []measure) {
	if t.audit != nil {
		attrs := make([]slog.Attr, 0, 1+len(fields)+len(meas))
		attrs = append(attrs, slog.String("event", event))
		for _, f := range fields {
			attrs = append(attrs, slog.String(f.key, f.val))
		}
		for _, m := range meas {
			attrs = append(attrs, slog.Float64(m.key, m.val))
		}
		t.audit.LogAttrs(ctx, level, msg, attrs...)
	}
	if t.sender != nil {
		t.enqueue(t.envelope(at, op, "Event", "EventData", eventData{
			Ver: 2, Name: event, Properties: properties(fields), Measurements: measurements(meas),
		}))
	}
}

// droppedEvent is the TelemetryDropped event the sender adds to the next batch after drops.
func (t *Telemetry) droppedEvent(n int64) []byte {
	return t.envelope(time.Now(), Operation{ID: randomHex(16)}, "Event", "EventData", eventData{
		Ver: 2, Name: eventDropped, Measurements: map[string]float64{"dropped": float64(n)},
	})
}

// envelope encodes one item. Encoding happens on the caller's goroutine so the buffer holds
// immutable bytes. It returns nil only if base cannot be encoded, which the finite measurements
// and string properties built here rule out.
func (t *Telemetry) envelope(at time.Time, op Operation, kind, baseType string, base any) []byte {
	e := envelope{
		Ver:  1,
		Name: t.typeName + kind,
		Time: at.UTC(),
		IKey: t.ikey,
		Tags: tags{
			Role:              truncate(t.role, maxTagLen),
			RoleInstance:      truncate(t.instance, maxTagLen),
			OperationID:       truncate(op.ID, maxTagLen),
			OperationParentID: truncate(op.ParentID, maxTagLen),
			SDKVersion:        "go:entra-revoke",
		},
		Data: envelopeData{BaseType: baseType, BaseData: base},
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil
	}
	return b
}

func (t *Telemetry) enqueue(item []byte) {
	if item != nil {
		t.sender.push(item)
	}
}

// properties is fields as the envelope's properties map (nil when empty: omitted).
func properties(fields []field) map[string]string {
	if len(fields) == 0 {
		return nil
	}
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		m[f.key] = f.val
	}
	return m
}

// measurements is meas as the envelope's measurements map. JSON cannot carry NaN or infinities,
// which no measurement should be: they become 0 rather than lose the item.
func measurements(meas []measure) map[string]float64 {
	if len(meas) == 0 {
		return nil
	}
	m := make(map[string]float64, len(meas))
	for _, x := range meas {
		if math.IsNaN(x.val) || math.IsInf(x.val, 0) {
			x.val = 0
		}
		m[x.key] = x.val
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
