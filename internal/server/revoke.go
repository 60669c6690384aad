package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
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

// handleRevoke serves POST /api/revoke for an authenticated caller.
//
// A request id from the caller (webhook-id, or Idempotency-Key) is claimed in the state store
// before any work: key = the caller's scope and the id (state.RequestKey), so two callers that both
// use ticket numbers as keys never meet, while a caller's own retry — on any instance — does. Only
// one attempt holds the claim at a time; a final response is kept for replay, and a retryable one
// releases the claim with the users already finished, so that the retry skips them.
func handleRevoke(d Deps) http.Handler {
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
		if !fromCaller {
			// A generated id is never seen again: nothing to claim or remember.
			writeResponse(w, runRevoke(r, d, c, id, nil))
			return
		}

		key := state.RequestKey{Scope: c.Scope, ID: id}
		claim, err := claimRequest(r.Context(), d, key, bodyHash(c.Body))
		var busy *state.InProgressError
		switch {
		case errors.Is(err, state.ErrConflict):
			writeError(w, http.StatusConflict, codeConflict, "this request id was already used with a different body")
			return
		case errors.As(err, &busy):
			retryAfter(w, busy.RetryAfter)
			writeError(w, http.StatusConflict, codeInProgress, "a request with this id is still being worked on; retry later")
			return
		case err != nil:
			// The state store failed outright. A revocation already authorised must not be lost
			// to an outage of its bookkeeping: run it, unprotected against a concurrent duplicate.
			d.Logger.Error("request claim failed; running without idempotency", "request_id", id, "error", err)
			writeResponse(w, runRevoke(r, d, c, id, nil))
			return
		case claim.Replay != nil:
			w.Header().Set("Idempotent-Replayed", "true")
			if link := statusURLOf(claim.Replay.Body); link != "" && queuedIn(claim.Replay.Body) {
				w.Header().Set("Location", link)
				retryAfter(w, statusPollInterval)
			}
			writeJSON(w, claim.Replay.Status, claim.Replay.Body)
			return
		}

		// Whatever happens from here — a panic included — the claim ends with an answer recorded
		// or released, never held until its lease runs out.
		recorded := false
		defer func() {
			if !recorded {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), stateBudget)
				defer cancel()
				if err := d.State.Release(ctx, key, claim.Lease, nil); err != nil {
					d.Logger.Warn("request release failed", "request_id", id, "error", err)
				}
			}
		}()

		resp := runRevoke(r, d, c, id, decodeProgress(claim.Progress))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), stateBudget)
		defer cancel()
		if resp.keep {
			err = d.State.Finish(ctx, key, claim.Lease, state.Response{Status: resp.status, Body: resp.body}, d.IdempotencyTTL)
		} else {
			err = d.State.Release(ctx, key, claim.Lease, resp.progress)
		}
		recorded = true
		if err != nil {
			// The answer stands; only its replay (or the skipping of finished users) is lost.
			d.Logger.Warn("request outcome not remembered", "request_id", id, "error", err)
		}
		writeResponse(w, resp)
	})
}

// claimRequest claims key within the state store's budget.
func claimRequest(ctx context.Context, d Deps, key state.RequestKey, hash string) (state.Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, stateBudget)
	defer cancel()
	return d.State.Claim(ctx, key, hash, claimLease)
}

// response is a finished request, ready to write and perhaps to remember.
type response struct {
	status     int
	body       []byte
	retryAfter time.Duration
	location   string // the status link, when some user is queued
	keep       bool   // may be replayed: a retry could not change it
	progress   []byte // when not kept: the users finished so far, for the retry
}

func writeResponse(w http.ResponseWriter, resp response) {
	if resp.location != "" {
		w.Header().Set("Location", resp.location)
	}
	if resp.retryAfter > 0 {
		retryAfter(w, resp.retryAfter)
	}
	writeJSON(w, resp.status, resp.body)
}

func errorResponse(status int, code, message string) response {
	b, _ := json.Marshal(errorBody(code, message))
	return response{status: status, body: b}
}

// revokeResponse is the body of POST /api/revoke: the engine's result, and the status link when
// some user is queued.
type revokeResponse struct {
	revoke.Result
	StatusURL string `json:"statusUrl,omitempty"`
}

// runRevoke decodes, runs and maps one request. Outcomes that a retry could change (throttled,
// failed, rate limited) are not remembered as final, so that the caller's retry really runs again;
// prior holds what an earlier attempt at the same id and body finished.
func runRevoke(r *http.Request, d Deps, c caller, id string, prior []revoke.UserResult) response {
	req, err := d.Validator.Decode(c.Body)
	if err != nil {
		st, e := requestError(err)
		b, _ := json.Marshal(e)
		return response{status: st, body: b, keep: st < 500}
	}

	mode := revoke.DeferNever
	handle := ""
	if d.Storage {
		mode = revoke.DeferOnFailure
		if preferAsync(r.Header.Values("Prefer")) {
			mode = revoke.DeferAll
		}
		// Only used if some user is deferred; cheap enough to make for every request.
		handle = newHandle()
	}

	ctx, cancel := workContext(r, d, httpBudget)
	defer cancel()
	meta := revoke.Meta{
		Trigger: revoke.TriggerHTTP, RequestID: id, Caller: c.Name,
		InvocationID: r.Header.Get("X-Azure-Functions-InvocationId"), StatusHandle: handle,
		CallbackURL: req.CallbackURL,
	}
	if handle != "" && req.CallbackURL != "" {
		meta.StatusURL = statusURL(r, d.PublicBaseURL, handle)
	}
	res, err := d.Engine.Run(ctx, revoke.Job{
		Meta:  meta,
		Users: req.Users(), Ticket: req.Ticket, Reason: req.Reason, RequestedBy: req.RequestedBy,
		DryRun: req.DryRun, Defer: mode, Final: true, Prior: prior,
	})
	var rl *revoke.RateLimitedError
	if errors.As(err, &rl) {
		resp := errorResponse(http.StatusTooManyRequests, codeRateLimited, "too many revocations (MAX_REVOCATIONS_PER_MINUTE); retry later")
		resp.retryAfter = rl.RetryAfter
		return resp
	}
	if err != nil {
		d.Logger.Error("revocation failed", "request_id", id, "error", err)
		return errorResponse(http.StatusInternalServerError, codeInternal, "internal error")
	}
	out := revokeResponse{Result: res}
	location := ""
	if anyQueued(res) && handle != "" {
		out.StatusURL = statusURL(r, d.PublicBaseURL, handle)
		location = out.StatusURL
	} else if watched(d, res) && handle != "" {
		// No Location: the answer is final; the link only gathers the sign-in checks.
		out.StatusURL = statusURL(r, d.PublicBaseURL, handle)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return errorResponse(http.StatusInternalServerError, codeInternal, "internal error")
	}
	resp := response{status: httpStatus(res), body: body, keep: replayable(res), location: location}
	if !resp.keep {
		resp.progress = encodeProgress(res.Results)
	}
	switch {
	case resp.status == http.StatusTooManyRequests:
		resp.retryAfter = max(res.RetryAfter(), time.Second)
	case location != "":
		resp.retryAfter = statusPollInterval
	}
	completedNow(r.Context(), d, meta, res, resp)
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
