package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// caller is an authenticated caller and the raw body it signed or sent.
type caller struct {
	Name     string // "webhook:<key index>" or "entra:<client id>", for audit
	Scope    string // idempotency namespace: ids are unique per caller, not across callers
	SignedID string // webhook-id when the signature verified
	Body     []byte
}

type callerKey struct{}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// gate authenticates HTTP callers.
type gate struct {
	keys      webhook.Keys   // WEBHOOK_SECRETS; empty when not configured
	tolerance time.Duration  // WEBHOOK_TOLERANCE
	tokens    TokenValidator // nil unless Entra ID tokens are accepted
	audit     Auditor
	now       func() time.Time
}

// requireCaller reads the body (bounded) and authenticates the caller by Standard Webhooks
// signature or Entra ID bearer token before anything else looks at the request. It fails closed:
// no configured method, no entry.
func requireCaller(g gate) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, request.MaxBodyBytes))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					writeError(w, http.StatusRequestEntityTooLarge, codePayloadTooLarge, "body exceeds "+strconv.Itoa(request.MaxBodyBytes)+" bytes")
					return
				}
				writeError(w, http.StatusBadRequest, codeInvalidRequest, "body could not be read")
				return
			}

			c, reason, forbidden := g.authenticate(r, body)
			if reason != "" {
				g.audit.Rejected(r.Context(), telemetry.Rejection{
					Reason: reason, Trigger: revoke.TriggerHTTP, RequestID: requestIDHint(r), ClientIP: clientIP(r),
				})
				if forbidden {
					writeError(w, http.StatusForbidden, codeForbiddenCaller, "the caller is not allowed to revoke sessions")
					return
				}
				if g.tokens != nil {
					// RFC 6750: tell token callers how to authenticate, on every 401.
					w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				}
				writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing or invalid signature or token")
				return
			}
			c.Body = body
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
		})
	}
}

// authenticate returns the caller, or the WebhookRejected reason and whether it is a 403.
// A bearer token is used when Entra ID tokens are accepted and one is present; otherwise the
// Standard Webhooks signature decides.
func (g gate) authenticate(r *http.Request, body []byte) (c caller, reason string, forbidden bool) {
	if token, ok := entraauth.BearerToken(r.Header.Get("Authorization")); ok && g.tokens != nil {
		who, err := g.tokens.Validate(r.Context(), token)
		if err != nil {
			var ae *entraauth.Error
			if errors.As(err, &ae) {
				return caller{}, ae.Reason, ae.Forbidden()
			}
			return caller{}, "bad_token", false
		}
		// Each Entra client has its own id namespace (two automations may both use ticket numbers).
		return caller{Name: who.String(), Scope: "entra:" + who.TenantID + ":" + who.ClientID}, "", false
	}
	if g.keys.Len() == 0 {
		return caller{}, "missing_token", false
	}
	signed, err := g.keys.Verify(r.Header, body, g.now(), g.tolerance, g.tolerance)
	if err != nil {
		return caller{}, err.Error(), false
	}
	// Every secret belongs to the same caller population, so ids share one namespace: a request
	// re-signed with a rotated secret still replays.
	return caller{Name: "webhook:" + strconv.Itoa(signed.KeyIndex), Scope: "webhook", SignedID: signed.ID}, "", false
}

// requestIDHint is the caller's claimed id, for correlating a rejection; it is not trusted.
func requestIDHint(r *http.Request) string {
	id := r.Header.Get(webhook.HeaderID)
	if id == "" {
		id = r.Header.Get("Idempotency-Key")
	}
	if !webhook.ValidID(id) {
		return ""
	}
	return id
}

// clientIP is the caller's address as the platform saw it, for WebhookRejected. On App Service
// and Functions the front end appends the address it received the connection from as the LAST
// X-Forwarded-For entry, and the host forwards the header to the handler; entries before it are
// whatever the caller sent and prove nothing. The front end writes it as ip:port (IPv6 in
// brackets). Without the header (local runs, tests) it is the connection's own peer.
func clientIP(r *http.Request) string {
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		entries := strings.Split(xff[len(xff)-1], ",")
		last := strings.TrimSpace(entries[len(entries)-1])
		if host, _, err := net.SplitHostPort(last); err == nil {
			last = host
		}
		last = strings.Trim(last, "[]")
		if ip := net.ParseIP(last); ip != nil {
			return ip.String()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}
