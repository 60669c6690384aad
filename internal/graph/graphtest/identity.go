// Package graphtest provides fakes of the services the Graph client talks to — the App Service
// managed identity endpoint and Microsoft Graph itself — speaking their real wire formats, so
// that tests anywhere in the tree (engine, server, CLI, end to end) run the real azidentity and
// msgraph-sdk-go against them. Every fake is an httptest server on 127.0.0.1 that is closed by
// t.Cleanup.
package graphtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// IdentityAPIVersion is the App Service managed identity API version azidentity speaks.
const IdentityAPIVersion = "2019-08-01"

// IdentityRequest is one token request the identity fake received.
type IdentityRequest struct {
	Time       time.Time
	Method     string
	APIVersion string // api-version
	Resource   string // resource: the scope without "/.default", e.g. "https://graph.microsoft.com"
	ClientID   string // client_id, set for a user-assigned identity
	HeaderOK   bool   // X-IDENTITY-HEADER matched the secret
}

// Identity is a fake App Service managed identity endpoint: what azidentity calls through
// IDENTITY_ENDPOINT with the IDENTITY_HEADER secret in X-IDENTITY-HEADER.
type Identity struct {
	srv    *httptest.Server
	secret string
	token  string

	mu         sync.Mutex
	requests   []IdentityRequest
	failStatus int
	failBody   string
	lifetime   time.Duration
}

// NewIdentity starts an identity endpoint that issues one random fake token, opaque until
// SetRoles makes it an app-only JWT. Use SetEnv to point azidentity at it.
//
// Tokens live 4 minutes by default: MSAL caches managed identity tokens process-wide and serves
// only those valid for more than 5 more minutes, so short-lived tokens keep one test's token
// from answering another test's request. SetLifetime changes it.
func NewIdentity(t testing.TB) *Identity {
	t.Helper()
	id := &Identity{
		secret:   "identity-header-" + randomHex(8),
		token:    "graphtest-token-" + randomHex(16),
		lifetime: 4 * time.Minute,
	}
	id.srv = httptest.NewServer(http.HandlerFunc(id.serve))
	t.Cleanup(id.srv.Close)
	return id
}

// URL is the endpoint, the value of IDENTITY_ENDPOINT.
func (id *Identity) URL() string { return id.srv.URL + "/msi/token" }

// Secret is the value of IDENTITY_HEADER, which callers must echo in X-IDENTITY-HEADER.
func (id *Identity) Secret() string { return id.secret }

// Token is the access token the fake issues now.
func (id *Identity) Token() string {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.token
}

// SetRoles makes the fake issue an app-only JWT-shaped token (see AppToken) carrying roles, or
// with no roles claim at all when roles is nil, as Entra issues to an identity granted nothing.
func (id *Identity) SetRoles(roles []string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.token = AppToken(roles)
}

// SetOpaque makes the fake issue an opaque token again, one whose permissions cannot be read.
func (id *Identity) SetOpaque() {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.token = "graphtest-token-" + randomHex(16)
}

// AppToken returns a JWT-shaped app-only access token as Entra issues for a managed identity:
// idtyp "app" and, unless roles is nil, a roles claim. Its signature is random bytes: no fake
// here verifies it. Each call returns a different token (a random jti), so a test can tell
// which one was used.
func AppToken(roles []string) string {
	claims := map[string]any{
		"aud":   "https://graph.microsoft.com",
		"iss":   "https://sts.windows.net/00000000-0000-0000-0000-0000000000f1/",
		"tid":   "00000000-0000-0000-0000-0000000000f1",
		"oid":   "00000000-0000-0000-0000-0000000000a2",
		"appid": "00000000-0000-0000-0000-0000000000a1",
		"idtyp": "app",
		"jti":   randomHex(16),
	}
	if roles != nil {
		claims["roles"] = roles
	}
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"typ":"JWT","alg":"RS256","kid":"graphtest"}`)) + "." +
		enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte(randomHex(32)))
}

// SetEnv sets IDENTITY_ENDPOINT and IDENTITY_HEADER for the test (and clears the variables that
// would make azidentity pick another managed identity source). Tests that call it cannot run in
// parallel: azidentity reads these from the process environment.
func (id *Identity) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", id.URL())
	t.Setenv("IDENTITY_HEADER", id.secret)
	t.Setenv("IDENTITY_SERVER_THUMBPRINT", "")
	t.Setenv("MSI_ENDPOINT", "")
	t.Setenv("MSI_SECRET", "")
	t.Setenv("IMDS_ENDPOINT", "")
}

// Fail makes every following request fail with status and body (as the endpoint would answer,
// e.g. 400 `{"statusCode":400,"message":"Unable to load the proper Managed Identity."}`).
// Status 0 restores normal service.
func (id *Identity) Fail(status int, body string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.failStatus, id.failBody = status, body
}

// SetLifetime sets how long issued tokens are valid.
func (id *Identity) SetLifetime(d time.Duration) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.lifetime = d
}

// Requests returns the token requests received so far.
func (id *Identity) Requests() []IdentityRequest {
	id.mu.Lock()
	defer id.mu.Unlock()
	return append([]IdentityRequest(nil), id.requests...)
}

func (id *Identity) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := IdentityRequest{
		Time:       time.Now(),
		Method:     r.Method,
		APIVersion: q.Get("api-version"),
		Resource:   q.Get("resource"),
		ClientID:   q.Get("client_id"),
		HeaderOK:   r.Header.Get("X-IDENTITY-HEADER") == id.secret,
	}
	id.mu.Lock()
	id.requests = append(id.requests, req)
	failStatus, failBody, lifetime, token := id.failStatus, id.failBody, id.lifetime, id.token
	id.mu.Unlock()

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case failStatus != 0:
		w.WriteHeader(failStatus)
		_, _ = w.Write([]byte(failBody))
		return
	case r.Method != http.MethodGet:
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"statusCode":405,"message":"Method not allowed."}`))
		return
	case !req.HeaderOK:
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"statusCode":401,"message":"Unauthorized."}`))
		return
	case req.APIVersion != IdentityAPIVersion || req.Resource == "":
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"statusCode":400,"message":"Invalid api-version or resource."}`))
		return
	}
	// The 2019-08-01 response: expires_on is a string of Unix seconds.
	body := map[string]string{
		"access_token": token,
		"expires_on":   strconv.FormatInt(time.Now().Add(lifetime).Unix(), 10),
		"resource":     req.Resource,
		"token_type":   "Bearer",
		"client_id":    req.ClientID,
	}
	if body["client_id"] == "" {
		body["client_id"] = "00000000-0000-0000-0000-0000000000a1"
	}
	_ = json.NewEncoder(w).Encode(body)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
