package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// statusPollInterval is the Retry-After of a response with queued users and of a status link
// while they are queued: the queue trigger usually finishes within seconds, and a retried message
// comes back after minutes, so pollers (Logic Apps honours it) need not ask more often.
const statusPollInterval = 10 * time.Second

// statusPath is the route of status links, under the host's /api prefix.
const statusPath = "/api/revoke/status/"

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

// handleStatus serves GET /api/revoke/status/{handle}: anonymous, the handle being the credential.
// While a user is queued it answers 202 with the result as it stands; then exactly what the
// synchronous call would have answered. Unknown, malformed and expired handles all get the same
// 404, so that the route tells nothing about handles one does not hold.
func handleStatus(lc Lifecycle, base *url.URL, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		handle := r.PathValue("handle")
		if !queue.ValidHandle(handle) {
			writeError(w, http.StatusNotFound, codeNotFound, "no such status")
			return
		}
		res, err := lc.Status(r.Context(), handle)
		switch {
		case errors.Is(err, revoke.ErrNotFound):
			writeError(w, http.StatusNotFound, codeNotFound, "no such status")
			return
		case errors.Is(err, revoke.ErrUnavailable):
			// The table cannot be read and this instance does not hold the status: it may well
			// exist, and the queue may still finish its users. Not 404, nor anything final: a
			// poller (Logic Apps stops on anything but 202) keeps polling.
			w.Header().Set("Location", statusURL(r, base, handle))
			retryAfter(w, statusPollInterval)
			writeError(w, http.StatusAccepted, codeUnavailable, "the status cannot be read right now; retry later")
			return
		case err != nil:
			logger.Error("status unreadable", "error", err)
			writeError(w, http.StatusInternalServerError, codeInternal, "internal error")
			return
		}
		if revoke.AnyQueued(res) {
			link := statusURL(r, base, handle)
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

// queuedIn reports whether a remembered response body has a queued user: its status link is
// then a Location to poll, not only where the sign-in checks gather.
func queuedIn(body []byte) bool {
	var res revoke.Result
	return json.Unmarshal(body, &res) == nil && revoke.AnyQueued(res)
}
