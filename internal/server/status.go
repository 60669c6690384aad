package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// statusPollInterval is the Retry-After of a response with queued users and of a status link
// while they are queued: the queue trigger usually finishes within seconds, and a retried message
// comes back after minutes, so pollers (Logic Apps honours it) need not ask more often.
const statusPollInterval = 10 * time.Second

// statusDeliveryMargin is how long after its signature's oldest accepted age a deferred message
// may still be worked on: the delivery that starts just in time, and its bookkeeping.
const statusDeliveryMargin = time.Hour

// StatusTTL is how long a status record is kept after its last write: IDEMPOTENCY_TTL, but never
// less than a deferred message can live — it is accepted until QUEUE_SIGNATURE_MAX_AGE — so that a
// short IDEMPOTENCY_TTL does not expire a link whose message is still queued.
func StatusTTL(idempotencyTTL, queueMaxAge time.Duration) time.Duration {
	return max(idempotencyTTL, queueMaxAge+statusDeliveryMargin)
}

// statusPath is the route of status links, under the host's /api prefix.
const statusPath = "/api/revoke/status/"

// handleBytes is the randomness of a status handle: 128 bits, the handle being the only
// credential of its link.
const handleBytes = 16

// newHandle returns a new unguessable, URL-safe status handle.
func newHandle() string {
	b := make([]byte, handleBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b)
}

// statusURL is the status link of handle: PUBLIC_BASE_URL when set, else the scheme and host the
// caller used. Behind App Service the front end sets X-Forwarded-Proto; a direct caller on
// loopback (make run) speaks plain HTTP, anyone else is assumed to have come over HTTPS.
func statusURL(r *http.Request, base *url.URL, handle string) string {
	if base != nil {
		return strings.TrimSuffix(base.String(), "/") + statusPath + handle
	}
	scheme := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")))
	if scheme != "http" && scheme != "https" {
		scheme = "https"
		if loopbackHost(r.Host) {
			scheme = "http"
		}
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: statusPath + handle}).String()
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statusURLOf reads the status link back out of a remembered response body, for a replay.
func statusURLOf(body []byte) string {
	var b struct {
		StatusURL string `json:"statusUrl"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.StatusURL
}

func anyQueued(res revoke.Result) bool {
	for _, u := range res.Results {
		if u.Status == revoke.StatusQueued {
			return true
		}
	}
	return false
}

// A status record is the deferred request's result as it stands (revoke.Result as JSON), kept in
// the state store under its handle. Key: the handle alone, 128 random bits that no two requests
// share; the record is created before the request's message is enqueued, so the queue trigger
// always finds it, and it is updated in place (ETag) as users reach their final outcome.

// StatusDeferrer wraps the queue's Deferrer so that a deferred request's status record exists
// before its message does: the queue trigger may finish the message before the HTTP response is
// even written. Requests without a status handle (messages enqueued by others) pass through.
type StatusDeferrer struct {
	Next   revoke.Deferrer
	Status Statuses
	TTL    time.Duration // StatusTTL
	Logger interface {
		Warn(msg string, args ...any)
	}
}

var _ revoke.Deferrer = (*StatusDeferrer)(nil)

// Defer implements revoke.Deferrer.
func (s *StatusDeferrer) Defer(ctx context.Context, d revoke.Deferral) error {
	if h := d.Meta.StatusHandle; h != "" {
		body, err := json.Marshal(statusRecord{Result: d.Request, CallbackURL: d.Meta.CallbackURL})
		if err == nil {
			err = s.Status.PutStatus(ctx, h, body, s.TTL)
		}
		if err != nil {
			// The revocation matters more than its status link: defer it anyway. The message
			// carries the handle, so the queue trigger rebuilds the record when it finishes.
			if s.Logger != nil {
				s.Logger.Warn("status record not created; the queue trigger will rebuild it", "request_id", d.Meta.RequestID, "error", err)
			}
		}
	}
	return s.Next.Defer(ctx, d)
}

// applyOutcomes records users' outcomes in a status record: each replaces the entry of the same
// user (case-insensitively) while that entry is still queued. Entries finished by the HTTP request
// itself are never touched, and nobody is added.
func applyOutcomes(record []byte, outcomes []revoke.UserResult) ([]byte, error) {
	var rec statusRecord
	if err := json.Unmarshal(record, &rec); err != nil {
		return nil, err
	}
	res := &rec.Result
	changed := false
	for _, o := range outcomes {
		for i := range res.Results {
			cur := &res.Results[i]
			if cur.Status == revoke.StatusQueued && strings.EqualFold(cur.UPN, o.UPN) {
				o.UPN = cur.UPN
				*cur = o
				changed = true
				break
			}
		}
	}
	if !changed {
		return record, nil
	}
	res.Status = revoke.Overall(res.Results)
	return json.Marshal(rec)
}

// statusRecord is a status record as stored: the request's result as it stands, and where its
// outcome events go (read by the sign-in watch, whose checks carry only the handle). The status
// route answers with the result alone: the callback URL is never shown.
type statusRecord struct {
	revoke.Result
	CallbackURL string `json:"callbackUrl,omitempty"`
}

// handleStatus serves GET /api/revoke/status/{handle}: anonymous, the handle being the credential.
// While a user is queued it answers 202 with the result as it stands; then exactly what the
// synchronous call would have answered. Unknown, malformed and expired handles all get the same
// 404, so that the route tells nothing about handles one does not hold.
func handleStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		handle := r.PathValue("handle")
		if !queue.ValidHandle(handle) {
			writeError(w, http.StatusNotFound, codeNotFound, "no such status")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), stateBudget)
		defer cancel()
		record, err := d.State.GetStatus(ctx, handle)
		if errors.Is(err, state.ErrNotFound) {
			writeError(w, http.StatusNotFound, codeNotFound, "no such status")
			return
		}
		if errors.Is(err, state.ErrUnavailable) {
			// The table cannot be read and this instance does not hold the status: it may well
			// exist, and the queue may still finish its users. Not 404, nor anything final: a
			// poller (Logic Apps stops on anything but 202) keeps polling.
			w.Header().Set("Location", statusURL(r, d.PublicBaseURL, handle))
			retryAfter(w, statusPollInterval)
			writeError(w, http.StatusAccepted, codeUnavailable, "the status cannot be read right now; retry later")
			return
		}
		var res revoke.Result
		if err == nil {
			err = json.Unmarshal(record, &res)
		}
		if err != nil || len(res.Results) == 0 {
			d.Logger.Error("status unreadable", "error", err)
			writeError(w, http.StatusInternalServerError, codeInternal, "internal error")
			return
		}
		res.Status = revoke.Overall(res.Results)
		if anyQueued(res) {
			link := statusURL(r, d.PublicBaseURL, handle)
			w.Header().Set("Location", link)
			retryAfter(w, statusPollInterval)
			encode(w, http.StatusAccepted, revokeResponse{Result: res, StatusURL: link})
			return
		}
		status := httpStatus(res)
		if status == http.StatusTooManyRequests {
			// The throttled outcome is final; its own Retry-After is long gone.
			retryAfter(w, time.Minute)
		}
		encode(w, status, res)
	})
}

// progress is what an unfinished attempt achieved: the users' final outcomes, which the next
// attempt applies by user (revoke.Job.Prior). Queued and retryable outcomes are left out.
type progress struct {
	Results []revoke.UserResult `json:"results"`
}

func encodeProgress(results []revoke.UserResult) []byte {
	var p progress
	for _, r := range results {
		if r.Status != "" && r.Status != revoke.StatusQueued && !r.Status.Retryable() {
			p.Results = append(p.Results, r)
		}
	}
	if len(p.Results) == 0 {
		return nil
	}
	b, _ := json.Marshal(p)
	return b
}

// decodeProgress reads progress back; anything unreadable counts as none (the users run again).
func decodeProgress(b []byte) []revoke.UserResult {
	if len(b) == 0 {
		return nil
	}
	var p progress
	if json.Unmarshal(b, &p) != nil {
		return nil
	}
	return p.Results
}
