package entraauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// maxTokenBytes bounds a token before any decoding. An app-only Entra access token is about
	// 1.5 KiB; the bound keeps a hostile header from costing us base64 and JSON work.
	maxTokenBytes = 16 << 10
	// maxKIDLength bounds the kid header; Entra's are about 30 characters, and the kid may end up
	// in an error message.
	maxKIDLength = 128
)

// Reasons a token is refused. They double as the WebhookRejected reasons of docs/telemetry.md.
const (
	ReasonBadToken         = "bad_token"          // 401 unauthorized
	ReasonMissingRole      = "missing_role"       // 403 forbidden_caller
	ReasonClientNotAllowed = "client_not_allowed" // 403 forbidden_caller
)

// Errors wrapped by Error, for callers and tests that need the precise cause. Failures of the JWT
// library itself are wrapped too (jwt.ErrTokenExpired, jwt.ErrTokenSignatureInvalid, ...).
var (
	// ErrKeysUnavailable means the signing keys have not been loaded yet (Entra unreachable since
	// start, or a wrong ENTRA_OPENID_CONFIG_URL).
	ErrKeysUnavailable = errors.New("signing keys not loaded")
	// ErrTokenTooLarge is a token longer than 16 KiB.
	ErrTokenTooLarge = errors.New("token too large")
	// ErrKeyID is a token header without a usable kid; Entra always sets one.
	ErrKeyID = errors.New("token has no valid kid")
	// ErrTenantMismatch is a tid claim of another tenant.
	ErrTenantMismatch = errors.New("token is from another tenant")
	// ErrNoClientID is a token without a usable azp (v2) or appid (v1).
	ErrNoClientID = errors.New("token has no client id")
	// ErrNoObjectID is an oid claim that is not a GUID.
	ErrNoObjectID = errors.New("token has an invalid oid")
	// ErrMissingRole is a valid token whose roles lack the required app role.
	ErrMissingRole = errors.New("required app role missing")
	// ErrClientNotAllowed is a valid token from a client not on the allow-list.
	ErrClientNotAllowed = errors.New("client not allowed")
)

// Error is every validation failure. Reason is the WebhookRejected reason: ReasonBadToken (401),
// or ReasonMissingRole / ReasonClientNotAllowed (403). Its text never contains the token.
type Error struct {
	Reason string
	Err    error
}

// Error describes the rejection; it never contains the token.
func (e *Error) Error() string {
	if e.Err == nil {
		return "entra token rejected: " + e.Reason
	}
	return "entra token rejected: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the cause, so errors.Is finds ErrMissingRole, jwt.ErrTokenExpired and the like.
func (e *Error) Unwrap() error { return e.Err }

// Forbidden reports whether the token itself was valid but the caller may not call (HTTP 403
// rather than 401).
func (e *Error) Forbidden() bool {
	return e.Reason == ReasonMissingRole || e.Reason == ReasonClientNotAllowed
}

func badToken(err error) error { return &Error{Reason: ReasonBadToken, Err: err} }

// Caller is an authenticated token caller.
type Caller struct {
	ClientID string // azp (v2) or appid (v1): the calling application or managed identity
	ObjectID string // oid: the caller's service principal, when present
	TenantID string
}

// String returns the caller as recorded for audit: "entra:<client id>".
func (c Caller) String() string { return "entra:" + c.ClientID }

// accessClaims are the claims of an Entra access token that we check.
type accessClaims struct {
	jwt.RegisteredClaims
	Roles    []string `json:"roles"`
	AZP      string   `json:"azp"`   // v2 client ID
	AppID    string   `json:"appid"` // v1 client ID
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid"`
	Version  string   `json:"ver"`
}

// clientID picks the caller's client ID by token version: v2 tokens carry azp, v1 tokens appid.
func (c *accessClaims) clientID() (string, error) {
	var id string
	switch c.Version {
	case "2.0":
		id = c.AZP
	case "1.0":
		id = c.AppID
	default:
		if c.AZP != "" && c.AppID != "" && !strings.EqualFold(c.AZP, c.AppID) {
			return "", fmt.Errorf("%w: azp and appid differ", ErrNoClientID)
		}
		id = c.AZP
		if id == "" {
			id = c.AppID
		}
	}
	if id == "" {
		return "", ErrNoClientID
	}
	guid, err := parseGUID(id)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoClientID, err)
	}
	return guid, nil
}

// Validate checks a raw JWT (without "Bearer "). On success it returns the caller; every failure
// is an *Error. It never blocks for long: an unknown kid triggers at most one rate-limited key
// refresh, bounded by ctx and a few seconds.
func (v *Validator) Validate(ctx context.Context, token string) (Caller, error) {
	if len(token) > maxTokenBytes {
		return Caller{}, badToken(ErrTokenTooLarge)
	}
	ks := v.keys.Load()
	if ks == nil {
		return Caller{}, badToken(ErrKeysUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()

	var c accessClaims
	if _, err := v.parser.ParseWithClaims(token, &c, ks.keyFor(ctx)); err != nil {
		return Caller{}, badToken(fmt.Errorf("parse token: %w", err))
	}
	// jwt.WithIssuer takes a single value; Entra has two issuer forms per tenant.
	if !containsFold(ks.issuers, c.Issuer) {
		return Caller{}, badToken(jwt.ErrTokenInvalidIssuer)
	}
	if c.TenantID != "" && !strings.EqualFold(c.TenantID, v.tenantID) {
		return Caller{}, badToken(ErrTenantMismatch)
	}
	clientID, err := c.clientID()
	if err != nil {
		return Caller{}, badToken(err)
	}
	objectID := ""
	if c.ObjectID != "" {
		if objectID, err = parseGUID(c.ObjectID); err != nil {
			return Caller{}, badToken(ErrNoObjectID)
		}
	}

	if len(v.allowedClients) > 0 && !containsFold(v.allowedClients, clientID) {
		return Caller{}, &Error{Reason: ReasonClientNotAllowed, Err: ErrClientNotAllowed}
	}
	// App role values are case-sensitive in Entra, so the comparison is exact.
	if !slices.Contains(c.Roles, v.requiredRole) {
		return Caller{}, &Error{Reason: ReasonMissingRole, Err: ErrMissingRole}
	}
	return Caller{ClientID: clientID, ObjectID: objectID, TenantID: v.tenantID}, nil
}

// keyFor returns the jwt.Keyfunc for one validation: the key named by kid, with a rate-limited
// refresh under ctx when the kid is unknown. A token without kid is refused rather than tried
// against every key.
func (ks *keySet) keyFor(ctx context.Context) jwt.Keyfunc {
	lookup := ks.keyfunc.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" || len(kid) > maxKIDLength {
			return nil, ErrKeyID
		}
		key, err := lookup(t)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		return key, nil
	}
}

// BearerToken extracts the token from an Authorization header value ("Bearer x", the scheme
// case-insensitive); ok is false when the value is absent, not Bearer, or has no single token.
func BearerToken(authorization string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(authorization), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(rest, " ")
	if token == "" || strings.ContainsAny(token, " \t\r\n,") {
		return "", false
	}
	return token, true
}
