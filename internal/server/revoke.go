package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/idempotency"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// userStatusHTTP maps a single user's status to the HTTP status of the request contract.
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

// handleRevoke serves POST /api/revoke for an authenticated caller.
func handleRevoke(d Deps, progress *attempts) http.Handler {
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

		commit := func(*idempotency.Response) {}
		if fromCaller {
			replay, done, err := d.Idempotency.Claim(r.Context(), c.Scope+"\x00"+id, c.Body)
			switch {
			case errors.Is(err, idempotency.ErrConflict):
				writeError(w, http.StatusConflict, codeConflict, "this request id was already used with a different body")
				return
			case err != nil:
				return // the caller went away while an identical request was in flight
			case replay != nil:
				w.Header().Set("Idempotent-Replayed", "true")
				w.Header().Set("Content-Type", replay.ContentType)
				w.WriteHeader(replay.Status)
				_, _ = w.Write(replay.Body)
				return
			}
			commit = done
		}

		resp := runRevoke(r, d, c, id, progress)
		if resp.keep {
			commit(&idempotency.Response{Status: resp.status, ContentType: "application/json", Body: resp.body})
		} else {
			commit(nil)
		}
		if resp.retryAfter > 0 {
			retryAfter(w, resp.retryAfter)
		}
		writeJSON(w, resp.status, resp.body)
	})
}

// response is a finished request, ready to write and perhaps to remember.
type response struct {
	status     int
	body       []byte
	retryAfter time.Duration
	keep       bool // may be replayed: a retry could not change it
}

func errorResponse(status int, code, message string) response {
	b, _ := json.Marshal(errorBody(code, message))
	return response{status: status, body: b}
}

// runRevoke decodes, runs and maps one request. Outcomes that a retry could change (throttled,
// failed, rate limited) are not remembered, so that the caller's retry really runs again.
func runRevoke(r *http.Request, d Deps, c caller, id string, progress *attempts) response {
	req, err := d.Validator.Decode(c.Body)
	if err != nil {
		st, e := requestError(err)
		b, _ := json.Marshal(e)
		return response{status: st, body: b, keep: st < 500}
	}

	mode := revoke.DeferNever
	if d.Storage {
		mode = revoke.DeferOnFailure
		if preferAsync(r.Header.Values("Prefer")) {
			mode = revoke.DeferAll
		}
	}
	// A retry of a bulk request that partly failed (same id and body) skips the users already
	// done. Single-user requests have nothing to skip, so they pay for no hash or lookup.
	users := req.Users()
	var key string
	var prior []revoke.UserResult
	if len(users) > 1 {
		key = "http\x00" + c.Scope + "\x00" + id + "\x00" + bodyHash(c.Body)
		prior, _ = progress.get(key, d.Now())
	}

	ctx, cancel := workContext(r, d, httpBudget)
	defer cancel()
	res, err := d.Engine.Run(ctx, revoke.Job{
		Meta: revoke.Meta{
			Trigger: revoke.TriggerHTTP, RequestID: id, Caller: c.Name,
			InvocationID: r.Header.Get("X-Azure-Functions-InvocationId"),
		},
		Users: users, Ticket: req.Ticket, Reason: req.Reason, RequestedBy: req.RequestedBy,
		DryRun: req.DryRun, Defer: mode, Final: true, Prior: prior,
	})
	var rl *revoke.RateLimitedError
	if errors.As(err, &rl) {
		resp := errorResponse(http.StatusTooManyRequests, codeRateLimited, "too many revocations from this instance; retry later")
		resp.retryAfter = rl.RetryAfter
		return resp
	}
	if err != nil {
		d.Logger.Error("revocation failed", "request_id", id, "error", err)
		return errorResponse(http.StatusInternalServerError, codeInternal, "internal error")
	}
	body, err := json.Marshal(res)
	if err != nil {
		return errorResponse(http.StatusInternalServerError, codeInternal, "internal error")
	}
	resp := response{status: httpStatus(res), body: body, keep: !res.Retryable()}
	if !resp.keep && key != "" {
		progress.put(key, res.Results, false, d.Now())
	}
	if resp.status == http.StatusTooManyRequests {
		resp.retryAfter = max(res.RetryAfter(), time.Second)
	}
	return resp
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

func bodyHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
