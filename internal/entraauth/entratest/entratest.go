// Package entratest is a fake Microsoft Entra ID token issuer for tests: an httptest server on
// 127.0.0.1 that serves a tenant's OpenID configuration and signing key set shaped like Entra's
// (RSA keys with kty, use, kid, x5t, n, e, x5c and no alg), and mints access tokens like those a
// managed identity receives. Key rotation, unpublished keys and outages can be simulated, and
// requests are counted so tests can check refresh rate limiting.
//
// The key set is written by hand here, not with the library the validator uses, so that a
// disagreement between the two shows up as a failing test.
package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Version is an Entra access token version: it decides the iss form and the client ID claim
// (appid in v1, azp in v2). Which one an API receives depends on its app registration's
// accessTokenAcceptedVersion.
type Version int

// Token versions.
const (
	V1 Version = 1
	V2 Version = 2
)

// Issuer is a fake Entra tenant. Its methods are safe for concurrent use, but those that can fail
// the test (Mint and friends) must be called from the test's goroutine.
type Issuer struct {
	t        testing.TB
	tenantID string
	srv      *httptest.Server

	mu             sync.Mutex
	signing        *signingKey
	published      []*signingKey
	unpublished    *signingKey
	available      bool
	metadataIssuer string
	now            func() time.Time

	metadataRequests atomic.Int64
	keysRequests     atomic.Int64
}

type signingKey struct {
	priv    *rsa.PrivateKey
	kid     string // Entra's kid is the certificate's SHA-1 thumbprint, base64url, like x5t
	certDER []byte
}

// NewIssuer starts a fake Entra tenant for tenantID (a GUID) with one published signing key. The
// server stops when the test ends.
func NewIssuer(t testing.TB, tenantID string) *Issuer {
	t.Helper()
	i := &Issuer{
		t:              t,
		tenantID:       tenantID,
		available:      true,
		metadataIssuer: "https://login.microsoftonline.com/" + tenantID + "/v2.0",
		now:            time.Now,
	}
	k := mustKey(t)
	i.signing = k
	i.published = []*signingKey{k}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+tenantID+"/v2.0/.well-known/openid-configuration", i.serveMetadata)
	mux.HandleFunc("GET /"+tenantID+"/discovery/v2.0/keys", i.serveKeys)
	// Assigned before Start: handlers read i.srv, and the race detector cannot see that no
	// request arrives before the URL is handed out.
	i.srv = httptest.NewUnstartedServer(mux) // httptest listens on 127.0.0.1
	i.srv.Start()
	t.Cleanup(i.srv.Close)
	return i
}

// TenantID returns the tenant's ID.
func (i *Issuer) TenantID() string { return i.tenantID }

// ConfigURL returns the OpenID configuration URL (for ENTRA_OPENID_CONFIG_URL).
func (i *Issuer) ConfigURL() string {
	return i.srv.URL + "/" + i.tenantID + "/v2.0/.well-known/openid-configuration"
}

// KeysURL returns the key set URL (the metadata's jwks_uri).
func (i *Issuer) KeysURL() string { return i.srv.URL + "/" + i.tenantID + "/discovery/v2.0/keys" }

// IssuerV1 returns the iss of v1 tokens: https://sts.windows.net/{tenant}/.
func (i *Issuer) IssuerV1() string { return "https://sts.windows.net/" + i.tenantID + "/" }

// IssuerV2 returns the iss of v2 tokens: https://login.microsoftonline.com/{tenant}/v2.0.
func (i *Issuer) IssuerV2() string {
	return "https://login.microsoftonline.com/" + i.tenantID + "/v2.0"
}

// SetClock sets the clock used for iat, nbf and exp of Claims (default time.Now).
func (i *Issuer) SetClock(now func() time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.now = now
}

// SetAvailable makes both endpoints answer 503 (false) or serve normally again (true).
func (i *Issuer) SetAvailable(ok bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.available = ok
}

// SetMetadataIssuer changes the issuer the OpenID configuration reports (default IssuerV2), to
// simulate a configuration URL of the wrong tenant.
func (i *Issuer) SetMetadataIssuer(iss string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.metadataIssuer = iss
}

// MetadataRequests returns how many requests reached the OpenID configuration endpoint.
func (i *Issuer) MetadataRequests() int { return int(i.metadataRequests.Load()) }

// KeysRequests returns how many requests reached the key set endpoint.
func (i *Issuer) KeysRequests() int { return int(i.keysRequests.Load()) }

// KID returns the key ID of the current signing key.
func (i *Issuer) KID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signing.kid
}

// PublicKey returns the current signing key's public half.
func (i *Issuer) PublicKey() *rsa.PublicKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return &i.signing.priv.PublicKey
}

// PublicKeyPEM returns the current signing key's public half as PEM ("PUBLIC KEY"), the bytes an
// HS256 key-confusion attack would use as the HMAC secret.
func (i *Issuer) PublicKeyPEM() []byte {
	i.t.Helper()
	der, err := x509.MarshalPKIXPublicKey(i.PublicKey())
	if err != nil {
		i.t.Fatalf("entratest: marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Rotate publishes a new key and signs with it from now on; older keys stay published, as in
// Entra's rollover. It returns the new kid.
func (i *Issuer) Rotate() string {
	i.t.Helper()
	k := mustKey(i.t)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.signing = k
	i.published = append(i.published, k)
	return k.kid
}

// Claims returns the claims of a valid app-only access token, as Entra issues to a managed
// identity for an API, for the given version, audience, client ID and roles. Tests change them and
// pass them to Mint.
func (i *Issuer) Claims(v Version, audience, clientID string, roles ...string) jwt.MapClaims {
	i.mu.Lock()
	now := i.now()
	i.mu.Unlock()
	oid := uuid.NewSHA1(uuid.NameSpaceOID, []byte("entratest-oid:"+clientID)).String()
	c := jwt.MapClaims{
		"aud":   audience,
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"aio":   "k2BgYJh8fN3+entratest+AA==",
		"idtyp": "app",
		"oid":   oid,
		"rh":    "1.AAAAentratest.",
		"sub":   oid,
		"tid":   i.tenantID,
		"uti":   mustUTI(i.t),
	}
	if len(roles) > 0 {
		c["roles"] = roles
	}
	switch v {
	case V1:
		c["iss"] = i.IssuerV1()
		c["idp"] = i.IssuerV1()
		c["appid"] = clientID
		c["appidacr"] = "2"
		c["ver"] = "1.0"
	default:
		c["iss"] = i.IssuerV2()
		c["azp"] = clientID
		c["azpacr"] = "2"
		c["ver"] = "2.0"
	}
	return c
}

// Token mints a valid token: Mint(Claims(v, audience, clientID, roles...)).
func (i *Issuer) Token(v Version, audience, clientID string, roles ...string) string {
	i.t.Helper()
	return i.Mint(i.Claims(v, audience, clientID, roles...))
}

// Mint signs claims with the current signing key (RS256, with kid and x5t headers as Entra sets).
func (i *Issuer) Mint(claims jwt.MapClaims) string {
	i.t.Helper()
	return i.MintCustom(jwt.SigningMethodRS256, nil, claims)
}

// MintUnpublished signs claims with a key that is never published (kid unknown to the tenant).
func (i *Issuer) MintUnpublished(claims jwt.MapClaims) string {
	i.t.Helper()
	i.mu.Lock()
	k := i.unpublished
	i.mu.Unlock()
	if k == nil {
		k = mustKey(i.t)
		i.mu.Lock()
		if i.unpublished == nil {
			i.unpublished = k
		}
		k = i.unpublished
		i.mu.Unlock()
	}
	return i.sign(k, jwt.SigningMethodRS256, nil, claims)
}

// MintCustom signs claims with the current signing key and an RSA method of the caller's choice
// (RS256, RS384, PS256, ...). Entries of header override the defaults; a nil value removes one.
func (i *Issuer) MintCustom(method jwt.SigningMethod, header map[string]any, claims jwt.MapClaims) string {
	i.t.Helper()
	i.mu.Lock()
	k := i.signing
	i.mu.Unlock()
	return i.sign(k, method, header, claims)
}

func (i *Issuer) sign(k *signingKey, method jwt.SigningMethod, header map[string]any, claims jwt.MapClaims) string {
	i.t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = k.kid
	tok.Header["x5t"] = k.kid
	for name, value := range header {
		if value == nil {
			delete(tok.Header, name)
			continue
		}
		tok.Header[name] = value
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		i.t.Fatalf("entratest: sign token: %v", err)
	}
	return s
}

func (i *Issuer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	i.metadataRequests.Add(1)
	i.mu.Lock()
	available, issuer := i.available, i.metadataIssuer
	i.mu.Unlock()
	if !available {
		unavailable(w)
		return
	}
	base := "https://login.microsoftonline.com/" + i.tenantID
	writeJSON(w, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              i.KeysURL(),
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                issuer,
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
		"rbac_url":                              "https://pas.windows.net",
	})
}

// jwk is one key as Entra's v2 keys endpoint publishes it: note the absence of alg.
type jwk struct {
	KTY    string   `json:"kty"`
	Use    string   `json:"use"`
	KID    string   `json:"kid"`
	X5T    string   `json:"x5t"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X5C    []string `json:"x5c"`
	Cloud  string   `json:"cloud_instance_name"`
	Issuer string   `json:"issuer"`
}

func (i *Issuer) serveKeys(w http.ResponseWriter, r *http.Request) {
	i.keysRequests.Add(1)
	i.mu.Lock()
	available := i.available
	keys := make([]jwk, 0, len(i.published))
	for _, k := range i.published {
		keys = append(keys, jwk{
			KTY:    "RSA",
			Use:    "sig",
			KID:    k.kid,
			X5T:    k.kid,
			N:      base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			E:      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
			X5C:    []string{base64.StdEncoding.EncodeToString(k.certDER)},
			Cloud:  "microsoftonline.com",
			Issuer: "https://login.microsoftonline.com/" + i.tenantID + "/v2.0",
		})
	}
	i.mu.Unlock()
	if !available {
		unavailable(w)
		return
	}
	writeJSON(w, map[string]any{"keys": keys})
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"entratest: unavailable"}`))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// mustUTI returns a random token identifier shaped like Entra's (22 base64url characters).
func mustUTI(t testing.TB) string {
	t.Helper()
	id, err := uuid.NewRandom()
	if err != nil {
		t.Fatalf("entratest: uti: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// mustKey makes a throw-away RSA key with a self-signed certificate, as Entra publishes its keys.
func mustKey(t testing.TB) *signingKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("entratest: generate key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatalf("entratest: serial: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatalf("entratest: certificate: %v", err)
	}
	thumb := sha1.Sum(der)
	return &signingKey{priv: priv, kid: base64.RawURLEncoding.EncodeToString(thumb[:]), certDER: der}
}
