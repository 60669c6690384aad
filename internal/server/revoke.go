package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// userStatusHTTP maps a single user's status to its HTTP status (openapi.yaml).
var userStatusHTTP = map[revoke.Status]int{
	revoke.StatusRevoked:    http.StatusOK,
	revoke.StatusDryRun:     http.StatusOK,
	revoke.StatusQueued:     http.StatusAccepted,
	revoke.StatusNotFound:   http.StatusNotFound,
	revoke.StatusProtected:  http.StatusForbidden,
	revoke.StatusOutOfScope: http.StatusForbidden,
	revoke.StatusDenied:     http.StatusForbidden,
	revoke.StatusThrottled:  http.StatusTooManyRequests,
	revoke.StatusFailed:     http.StatusServiceUnavailable,
}

// httpStatus is the response status for a job's result (request contract).
func httpStatus(res revoke.Result) int {
	if len(res.Results) == 1 {
		if s, ok := userStatusHTTP[res.Results[0].Status]; ok {
			return s
		}
		return http.StatusInternalServerError
	}
	switch {
	case res.Status == revoke.StatusQueued:
		return http.StatusAccepted
	case res.Status.Succeeded():
		return http.StatusOK
	}
	return http.StatusMultiStatus
}

// handleRevoke serves POST /api/revoke for an authenticated caller: it decodes the request,
// hands it to the lifecycle, and writes the answer. The request id (webhook-id, else
// Idempotency-Key) is claimed by the lifecycle under the caller's scope, so two callers that both
// use ticket numbers as ids never meet, while a caller's own retry — on any instance — does.
func handleRevoke(lc Lifecycle, v *request.Validator, base *url.URL, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		if !jsonMediaType(r.Header.Get("Content-Type")) {
			writeError(w, http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json")
			return
		}
		id, fromCaller := c.SignedID, c.SignedID != ""
		if !fromCaller {
			if key := r.Header.Get("Idempotency-Key"); key != "" {
				if !webhook.ValidID(key) {
					writeError(w, http.StatusBadRequest, codeInvalidRequest, "Idempotency-Key must be 1-256 printable ASCII characters")
					return
				}
				id, fromCaller = key, true
			} else {
				id = uuid.NewString()
			}
		}

		meta := revoke.Meta{
			Trigger: revoke.TriggerHTTP, RequestID: id, Caller: c.Name,
			InvocationID: r.Header.Get("X-Azure-Functions-InvocationId"),
		}
		s := revoke.Submission{
			Remember: fromCaller, Scope: c.Scope, Body: c.Body,
			StatusURL: func(handle string) string { return statusURL(r, base, handle) },
		}
		if req, err := v.Decode(c.Body); err != nil {
			st, e := requestError(err)
			b, _ := json.Marshal(e)
			s.Invalid = &revoke.Answer{Status: st, Body: b, Final: st < 500}
		} else {
			meta.CallbackURL = req.CallbackURL
			s.Job = revoke.Job{
				Meta: meta, Users: req.Users(), Ticket: req.Ticket, Reason: req.Reason, RequestedBy: req.RequestedBy,
				DryRun: req.DryRun, Defer: revoke.DeferOnFailure,
			}
			if preferAsync(r.Header.Values("Prefer")) {
				s.Job.Defer = revoke.DeferAll
			}
		}
		s.Job.Meta = meta

		ans, err := lc.Submit(r.Context(), s)
		if err != nil {
			writeFailure(w, logger, id, err)
			return
		}
		if ans.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
			if link := statusURLOf(ans.Body); link != "" && queuedIn(ans.Body) {
				ans.Location, ans.RetryAfter = link, statusPollInterval
			}
		}
		writeAnswer(w, ans)
	})
}

// writeFailure is the one mapping of the lifecycle's errors to HTTP.
func writeFailure(w http.ResponseWriter, logger *slog.Logger, requestID string, err error) {
	var busy *revoke.InProgressError
	var rl *revoke.RateLimitedError
	switch {
	case errors.Is(err, revoke.ErrConflict):
		writeError(w, http.StatusConflict, codeConflict, "this request id was already used with a different body")
	case errors.As(err, &busy):
		retryAfter(w, busy.RetryAfter)
		writeError(w, http.StatusConflict, codeInProgress, "a request with this id is still being worked on; retry later")
	case errors.As(err, &rl):
		retryAfter(w, rl.RetryAfter)
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "too many revocations (MAX_REVOCATIONS_PER_MINUTE); retry later")
	default:
		logger.Error("revocation failed", "request_id", requestID, "error", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "internal error")
	}
}

func writeAnswer(w http.ResponseWriter, ans revoke.Answer) {
	if ans.Location != "" {
		w.Header().Set("Location", ans.Location)
	}
	if ans.RetryAfter > 0 {
		retryAfter(w, ans.RetryAfter)
	}
	writeJSON(w, ans.Status, ans.Body)
}

// revokeResponse is the body of POST /api/revoke: the engine's result, and the status link when
// the request has one.
type revokeResponse struct {
	revoke.Result
	StatusURL string `json:"statusUrl,omitempty"`
}

// HTTPRenderer renders results as POST /api/revoke answers them (revoke.Renderer): the status
// code of the outcomes, the result and its status link as JSON, Location and Retry-After while a
// user is queued, and Retry-After for a throttled answer.
type HTTPRenderer struct{}

var _ revoke.Renderer = HTTPRenderer{}

// Render implements revoke.Renderer.
func (HTTPRenderer) Render(res revoke.Result, link string, poll bool) revoke.Answer {
	body, err := json.Marshal(revokeResponse{Result: res, StatusURL: link})
	if err != nil {
		b, _ := json.Marshal(errorBody(codeInternal, "internal error"))
		return revoke.Answer{Status: http.StatusInternalServerError, Body: b}
	}
	ans := revoke.Answer{Status: httpStatus(res), Body: body}
	switch {
	case ans.Status == http.StatusTooManyRequests:
		ans.RetryAfter = max(res.RetryAfter(), time.Second)
	case poll:
		ans.Location, ans.RetryAfter = link, statusPollInterval
	}
	return ans
}

// jsonMediaType accepts application/json with an optional UTF-8 charset.
func jsonMediaType(v string) bool {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// preferAsync reports whether a Prefer header asks for respond-async (RFC 7240).
func preferAsync(values []string) bool {
	for _, v := range values {
		for _, pref := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(pref, ";")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}
