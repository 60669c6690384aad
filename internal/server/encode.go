package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/request"
)

// Error codes of request-level errors (openapi.yaml).
const (
	codeInvalidRequest   = "invalid_request"
	codeUnauthorized     = "unauthorized"
	codeForbiddenCaller  = "forbidden_caller"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeInProgress       = "in_progress"
	codePayloadTooLarge  = "payload_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeRateLimited      = "rate_limited"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable" // a status that cannot be read right now (202, polled again)
)

// apiError is the one request-level error shape.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Details []request.Detail `json:"details,omitempty"`
}

// encode writes v as JSON with status. Headers must be set before it is called.
func encode(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorBody builds the contract error body.
func errorBody(code, message string, details ...request.Detail) apiError {
	return apiError{Error: apiErrorBody{Code: code, Message: message, Details: details}}
}

func writeError(w http.ResponseWriter, status int, code, message string, details ...request.Detail) {
	encode(w, status, errorBody(code, message, details...))
}

// retryAfter sets Retry-After in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}

// requestError maps a decoding or validation failure to its status and body; internal errors
// never reach the caller's eyes.
func requestError(err error) (int, apiError) {
	var re *request.Error
	if errors.As(err, &re) {
		return http.StatusBadRequest, errorBody(codeInvalidRequest, re.Message, re.Details...)
	}
	return http.StatusInternalServerError, errorBody(codeInternal, "internal error")
}
