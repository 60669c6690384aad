package callback

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Event types.
const (
	TypeCompleted = "revocation.completed"
	TypeWatch     = "revocation.watch"
)

// EventID is an event's webhook-id: derived from what makes the event unique — the request's
// caller and id, the event type, and for a watch event the check's duration and users — so that
// every retry, redelivery and instance sends the same id and a receiver can deduplicate. The
// caller is part of it because request ids are only unique per caller.
func EventID(caller, requestID, typ string, parts ...string) string {
	h := sha256.New()
	for _, p := range append([]string{"v1", caller, requestID, typ}, parts...) {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "evt_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:20])
}

// envelope is the body of every event POST.
type envelope struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Completion is a request whose every user has a final outcome.
type Completion struct {
	URL        string // callbackUrl; nothing is sent when empty
	RequestID  string
	Caller     string
	HTTPStatus int    // what the synchronous call answered, or would have answered
	Body       []byte // the response body (JSON object), as the synchronous call answers it
	StatusURL  string // the status link, when the request has one
}

// WatchReport is one sign-in check's result for the users it checked.
type WatchReport struct {
	URL       string // callbackUrl; nothing is sent when empty
	RequestID string
	Caller    string
	Ticket    string
	After     string // as written in WATCH_AFTER
	Results   []WatchResult
}

// WatchResult is one user's finding.
type WatchResult struct {
	UPN       string          `json:"upn"`
	UserID    string          `json:"userId"`
	RevokedAt time.Time       `json:"revokedAt"`
	Finding   string          `json:"finding"`
	SignIns   int             `json:"signIns"`
	Latest    json.RawMessage `json:"latest"` // the check's latest sign-ins, as stored
}

// Enqueuer puts a message on the callback queue, visible after delay.
type Enqueuer interface {
	EnqueueDelayed(ctx context.Context, text []byte, delay time.Duration) error
}

// Recorder is the telemetry of callbacks.
type Recorder interface {
	Callback(ctx context.Context, f telemetry.CallbackFate)
	Dependency(ctx context.Context, d telemetry.Dependency)
}

// Notifier turns outcomes into events on the callback queue. Enqueueing never fails a revocation:
// a failure is logged and recorded as CallbackFailed. A nil *Notifier sends nothing.
type Notifier struct {
	Queue  Enqueuer
	Keys   webhook.Keys // the queue secret: the first one signs the queue message
	Record Recorder     // nil records nothing
	Logger *slog.Logger // nil logs nothing
	Now    func() time.Time
}

// Completed sends revocation.completed for c, at once.
func (n *Notifier) Completed(ctx context.Context, c Completion) {
	if n == nil || c.URL == "" {
		return
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(c.Body, &data); err != nil || data == nil {
		n.failed(ctx, TypeCompleted, EventID(c.Caller, c.RequestID, TypeCompleted), c.RequestID, c.URL, "unreadable_body")
		return
	}
	data["httpStatus"], _ = json.Marshal(c.HTTPStatus)
	if c.StatusURL != "" {
		data["statusUrl"], _ = json.Marshal(c.StatusURL)
	}
	n.send(ctx, TypeCompleted, EventID(c.Caller, c.RequestID, TypeCompleted, outcomes(data["results"])...), c.RequestID, c.URL, data)
}

// outcomes names each user's final status, in order. They are part of a completed event's id: a
// request id answered again with other outcomes (a dry run, then the same id live; a denied, then
// granted) is another event, which a receiver deduplicating on webhook-id must not drop, while
// every copy of one outcome keeps one id.
func outcomes(results json.RawMessage) []string {
	var rs []struct {
		UPN    string `json:"upn"`
		Status string `json:"status"`
	}
	_ = json.Unmarshal(results, &rs) // an unreadable list names no outcomes: the id stays stable
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.UPN+"="+r.Status)
	}
	return out
}

// Watch sends revocation.watch for one check.
func (n *Notifier) Watch(ctx context.Context, w WatchReport) {
	if n == nil || w.URL == "" || len(w.Results) == 0 {
		return
	}
	users := make([]string, 0, len(w.Results))
	for i, r := range w.Results {
		users = append(users, r.UserID+"/"+r.UPN)
		if len(r.Latest) == 0 {
			w.Results[i].Latest = json.RawMessage("[]")
		}
	}
	slices.Sort(users)
	id := EventID(w.Caller, w.RequestID, TypeWatch, append([]string{w.After}, users...)...)
	var ticket any
	if w.Ticket != "" {
		ticket = w.Ticket
	}
	data := map[string]any{"id": w.RequestID, "ticket": ticket, "after": w.After, "results": w.Results}
	n.send(ctx, TypeWatch, id, w.RequestID, w.URL, data)
}

func (n *Notifier) send(ctx context.Context, typ, id, requestID, url string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		n.failed(ctx, typ, id, requestID, url, "unencodable")
		return
	}
	now := n.now()
	body, err := marshal(envelope{Type: typ, Timestamp: now.UTC(), Data: raw})
	if err == nil {
		m := Message{URL: url, EventID: id, Type: typ, RequestID: requestID, Event: body}
		var text []byte
		text, err = m.seal(n.Keys, now)
		if err == nil {
			err = n.Queue.EnqueueDelayed(ctx, text, 0)
		}
	}
	if err != nil {
		if n.Logger != nil {
			// The error of the queue client never holds the callback URL; the host may be named.
			n.Logger.Warn("callback not enqueued", "request_id", requestID, "event_id", id, "host", callbackurl.Host(url), "error", err)
		}
		n.failed(ctx, typ, id, requestID, url, "enqueue_failed")
	}
}

func (n *Notifier) failed(ctx context.Context, typ, id, requestID, url, reason string) {
	if n.Record != nil {
		n.Record.Callback(ctx, telemetry.CallbackFate{Delivered: false, EventID: id, Type: typ, RequestID: requestID, Host: callbackurl.Host(url), Reason: reason})
	}
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// Message is the body of a callback queue message, signed with the queue secret inside the queue
// envelope: everything a delivery attempt needs, including the event's exact bytes, so that every
// attempt sends the same body under the same id.
type Message struct {
	URL       string          `json:"url"`
	EventID   string          `json:"eventId"`
	Type      string          `json:"type"`
	RequestID string          `json:"requestId"`
	Attempts  int             `json:"attempts"`       // attempts made before this delivery
	First     time.Time       `json:"first,omitzero"` // the first attempt's time
	Due       time.Time       `json:"due,omitzero"`   // when this delivery was scheduled
	Event     json.RawMessage `json:"event"`          // the POST body
	LastCode  int             `json:"lastCode,omitempty"`
}

// messageMember wraps Message in the queue body, so that a callback message can never be read as
// a revocation request (the request decoder refuses the unknown member).
type messageBody struct {
	Callback *Message `json:"callback"`
}

func (m Message) seal(k webhook.Keys, at time.Time) ([]byte, error) {
	body, err := marshal(messageBody{Callback: &m})
	if err != nil {
		return nil, err
	}
	return queue.Seal(k, queue.NewMessageID(), at, body)
}

// errMalformed marks a signed callback message that is not shaped as the handler writes it.
var errMalformed = errors.New("malformed callback message")

func parseMessage(body []byte) (Message, error) {
	var b messageBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || b.Callback == nil {
		return Message{}, errMalformed
	}
	m := *b.Callback
	if m.URL == "" || !webhook.ValidID(m.EventID) || (m.Type != TypeCompleted && m.Type != TypeWatch) ||
		m.Attempts < 0 || m.Attempts >= MaxAttempts || !json.Valid(m.Event) {
		return Message{}, fmt.Errorf("%w: missing or invalid fields", errMalformed)
	}
	return m, nil
}

// marshal encodes v without HTML escaping: the bytes are signed and read by machines.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// StatusCallbackURL reads the callbackUrl a status record keeps (the request's result plus
// "callbackUrl"), or "" when it has none: a sign-in check finds its request's callback there.
func StatusCallbackURL(record []byte) string {
	var r struct {
		CallbackURL string `json:"callbackUrl"`
	}
	if json.Unmarshal(record, &r) != nil {
		return ""
	}
	return r.CallbackURL
}
