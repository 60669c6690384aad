package callback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// MaxAttempts is the number of delivery attempts of one event: the first and five retries.
const MaxAttempts = 6

// DefaultDelays are the retries' times after the first attempt: about a minute, five minutes,
// half an hour, two hours and eight hours, which outlasts a receiver's deployment or short outage
// without hammering one that is down.
var DefaultDelays = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 8 * time.Hour}

// maxDrain bounds how much of a receiver's response body is read (and ignored) so that the
// connection closes cleanly without letting a receiver stream at us.
const maxDrain = 64 << 10

// Queue is the callback queue as a delivery needs it: retries go back with a visibility delay;
// what is given up on is copied to the poison queue.
type Queue interface {
	Enqueuer
	Poison(ctx context.Context, text []byte) error
}

// Disposition is what the queue trigger answers the host.
type Disposition int

const (
	// Done: the message is finished (delivered, given up, retry enqueued, or poisoned).
	Done Disposition = iota
	// Retry: the host must deliver this message again (a retry or poison copy could not be written).
	Retry
)

// Rejecter records a queue message refused as unsigned or malformed (WebhookRejected).
type Rejecter interface {
	Rejected(ctx context.Context, r telemetry.Rejection)
}

// Deliverer makes one delivery attempt per callback queue message.
type Deliverer struct {
	Hosts     callbackurl.Hosts // CALLBACK_ALLOWED_HOSTS, checked again at each attempt
	Secrets   webhook.Keys      // CALLBACK_SECRETS: every one signs
	QueueKeys webhook.Keys      // verify queue messages; the first signs the retries
	MaxAge    time.Duration     // QUEUE_SIGNATURE_MAX_AGE, counted from when a message came due
	Tolerance time.Duration     // clock difference allowed for a queue message's timestamp
	Queue     Queue
	Client    *http.Client    // nil: NewClient()
	Delays    []time.Duration // retries after the first attempt; nil: DefaultDelays
	Record    Recorder        // nil records nothing
	Rejecter  Rejecter        // nil records nothing
	Logger    *slog.Logger    // nil logs nothing
	Now       func() time.Time
}

// Handle processes one callback queue message (text after the host's base64 decoding).
func (d *Deliverer) Handle(ctx context.Context, text []byte) (Disposition, string) {
	m, reason := d.open(text)
	if reason != "" {
		if d.Rejecter != nil {
			d.Rejecter.Rejected(ctx, telemetry.Rejection{Reason: reason, Trigger: "callback"})
		}
		if err := d.Queue.Poison(ctx, text); err != nil {
			d.log().Error("callback poison copy failed", "reason", reason, "error", err)
			return Retry, "message rejected (" + reason + "); poison copy failed, retrying"
		}
		return Done, "message rejected (" + reason + ") and copied to the poison queue"
	}
	now := d.now()
	if m.First.IsZero() {
		m.First = now
	}
	if _, err := d.Hosts.Parse(m.URL); err != nil {
		// The allow-list changed since the request: the operator no longer wants this host called.
		d.fate(ctx, m, false, m.Attempts, 0, "host_not_allowed")
		return Done, "callback host no longer allowed; event dropped"
	}

	code, err := d.attempt(ctx, m, now)
	attempts := m.Attempts + 1
	switch {
	case err == nil && code >= 200 && code < 300:
		d.fate(ctx, m, true, attempts, code, "")
		return Done, "callback delivered"
	case err == nil && code == http.StatusGone:
		d.fate(ctx, m, false, attempts, code, "gone")
		return Done, "receiver answered 410 Gone; event dropped"
	}
	reason = "status_" + strconv.Itoa(code)
	if err != nil {
		reason = errorClass(err)
		d.log().Warn("callback attempt failed", "event_id", m.EventID, "request_id", m.RequestID, "host", callbackurl.Host(m.URL), "attempt", attempts, "reason", reason)
	}
	if attempts >= MaxAttempts {
		if err := d.Queue.Poison(ctx, text); err != nil {
			d.log().Error("callback poison copy failed", "event_id", m.EventID, "error", err)
			return Retry, "last attempt failed; poison copy failed, retrying"
		}
		d.fate(ctx, m, false, attempts, code, "gave_up")
		return Done, "last attempt failed; event copied to the poison queue"
	}
	next := m
	next.Attempts, next.LastCode = attempts, code
	due := m.First.Add(d.delay(attempts))
	next.Due = due
	retry, err := next.seal(d.QueueKeys, now)
	if err == nil {
		err = d.Queue.EnqueueDelayed(ctx, retry, max(due.Sub(now), 0))
	}
	if err != nil {
		d.log().Error("callback retry not enqueued", "event_id", m.EventID, "error", err)
		return Retry, "attempt failed; the retry could not be enqueued, retrying"
	}
	return Done, "attempt " + strconv.Itoa(attempts) + " failed (" + reason + "); retry enqueued"
}

// open verifies and decodes a message, or says why it can never succeed.
func (d *Deliverer) open(text []byte) (Message, string) {
	env, signed, err := queue.ParseMessage(text)
	if err != nil {
		return Message{}, "malformed_message"
	}
	if !signed {
		return Message{}, "unsigned_message"
	}
	if d.QueueKeys.Len() == 0 {
		return Message{}, "bad_signature"
	}
	// A retry is signed when it is enqueued but made visible up to the last delay later: the age
	// limit counts from when it came due, checked once the signed due time can be trusted.
	now := d.now()
	s, err := d.QueueKeys.Verify(env.Header(), []byte(env.Body), now, d.MaxAge+d.delay(MaxAttempts-1), d.Tolerance)
	if err != nil {
		return Message{}, err.Error()
	}
	m, err := parseMessage([]byte(env.Body))
	if err != nil {
		return Message{}, "malformed_message"
	}
	due := m.Due
	if due.IsZero() || due.Before(s.Timestamp) {
		due = s.Timestamp
	}
	if now.Sub(due) > d.MaxAge {
		return Message{}, "expired"
	}
	return m, ""
}

// attempt POSTs the event once. Only the status code is kept; the body is drained and ignored.
func (d *Deliverer) attempt(ctx context.Context, m Message, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	sig, err := d.Secrets.SignAll(m.EventID, now, m.Event)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Event))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "entra-revoke-callback")
	req.Header.Set(webhook.HeaderID, m.EventID)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhook.HeaderSignature, sig)

	client := d.Client
	if client == nil {
		client = NewClient()
	}
	start := time.Now()
	resp, err := client.Do(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}
	if d.Record != nil {
		host := callbackurl.Host(m.URL)
		d.Record.Dependency(ctx, telemetry.Dependency{
			Name: "POST callback", Target: host, Data: "POST callback " + host,
			ResultCode: code, Success: err == nil && code >= 200 && code < 300,
			Start: start, Duration: time.Since(start),
		})
	}
	return code, err
}

// errorClass names a failed attempt's cause without its text, which holds the URL.
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return "forbidden_address"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "dns"
	}
	return "connection"
}

func (d *Deliverer) fate(ctx context.Context, m Message, delivered bool, attempts, code int, reason string) {
	if d.Record == nil {
		return
	}
	d.Record.Callback(ctx, telemetry.CallbackFate{
		Delivered: delivered, EventID: m.EventID, Type: m.Type, RequestID: m.RequestID,
		Host: callbackurl.Host(m.URL), Attempts: attempts, LastStatus: code, Reason: reason,
	})
}

// delay is the time after the first attempt at which attempt n+1 is made (n ≥ 1).
func (d *Deliverer) delay(n int) time.Duration {
	delays := d.Delays
	if len(delays) == 0 {
		delays = DefaultDelays
	}
	return delays[min(n, len(delays))-1]
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}
