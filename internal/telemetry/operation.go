package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Operation correlates the telemetry items of one invocation. The HTTP server puts it into the
// request context with WithOperation; items recorded with that context carry its ids.
type Operation struct {
	ID           string // trace id from traceparent, else invocation id, else request id
	ParentID     string // the caller's span id from traceparent, if any
	InvocationID string // X-Azure-Functions-InvocationId
}

type operationKey struct{}

// WithOperation returns a context that carries op.
func WithOperation(ctx context.Context, op Operation) context.Context {
	return context.WithValue(ctx, operationKey{}, op)
}

// OperationFrom returns the Operation in ctx, or the zero Operation.
func OperationFrom(ctx context.Context) Operation {
	op, _ := ctx.Value(operationKey{}).(Operation)
	return op
}

// NewOperation builds the Operation of an invocation from the caller's traceparent header, the
// host's X-Azure-Functions-InvocationId and the request id, in that order of preference.
func NewOperation(traceparent, invocationID, requestID string) Operation {
	op := Operation{InvocationID: invocationID}
	if traceID, parentID, ok := parseTraceparent(traceparent); ok {
		op.ID, op.ParentID = traceID, parentID
		return op
	}
	op.ID = invocationID
	if op.ID == "" {
		op.ID = requestID
	}
	return op
}

// parseTraceparent validates a W3C traceparent strictly: version 00, exactly four fields,
// lowercase hex, trace id and parent id not all zero. The header comes from the caller, so
// anything else is ignored rather than repaired.
func parseTraceparent(tp string) (traceID, parentID string, ok bool) {
	// 00-<32 hex>-<16 hex>-<2 hex>
	if len(tp) != 55 || tp[0:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return "", "", false
	}
	traceID, parentID, flags := tp[3:35], tp[36:52], tp[53:55]
	if !isLowerHex(traceID) || !isLowerHex(parentID) || !isLowerHex(flags) ||
		isZeros(traceID) || isZeros(parentID) {
		return "", "", false
	}
	return traceID, parentID, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isZeros(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// randomHex returns n random bytes in hex: span ids for dependencies and operation ids for items
// that belong to no invocation.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
