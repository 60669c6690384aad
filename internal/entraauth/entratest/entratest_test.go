package entratest_test

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
)

const tenantID = "8d3e6b1a-5c2f-4e7a-9b1d-0f2c3a4b5c6d"

// mustGetJSON fetches url and decodes its JSON body, failing unless the status is want.
func mustGetJSON(t *testing.T, url string, want int) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("new request %s: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s status = %d; want %d", url, resp.StatusCode, want)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return doc
}

func TestIssuerServesEntraShapedDocuments(t *testing.T) {
	t.Parallel()
	iss := entratest.NewIssuer(t, tenantID)

	md := mustGetJSON(t, iss.ConfigURL(), http.StatusOK)
	if md["issuer"] != iss.IssuerV2() || md["jwks_uri"] != iss.KeysURL() {
		t.Errorf("metadata issuer, jwks_uri = %v, %v; want %s, %s", md["issuer"], md["jwks_uri"], iss.IssuerV2(), iss.KeysURL())
	}

	set := mustGetJSON(t, iss.KeysURL(), http.StatusOK)
	keys, _ := set["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("key set has %d keys; want 1: %v", len(keys), set)
	}
	k := keys[0].(map[string]any)
	for _, field := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c"} {
		if _, ok := k[field]; !ok {
			t.Errorf("key lacks %q: %v", field, k)
		}
	}
	if _, ok := k["alg"]; ok {
		t.Errorf("key has alg; Entra's keys have none: %v", k)
	}
	if k["kty"] != "RSA" || k["use"] != "sig" || k["e"] != "AQAB" || k["kid"] != iss.KID() {
		t.Errorf("key = %v; want kty RSA, use sig, e AQAB, kid %s", k, iss.KID())
	}
	// x5t is the certificate's SHA-1 thumbprint, and the certificate holds the signing key.
	der, err := base64.StdEncoding.DecodeString(k["x5c"].([]any)[0].(string))
	if err != nil {
		t.Fatalf("x5c: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x5c: %v", err)
	}
	sum := sha1.Sum(der)
	if got := base64.RawURLEncoding.EncodeToString(sum[:]); got != k["x5t"] {
		t.Errorf("x5t = %v; want thumbprint %s", k["x5t"], got)
	}
	if !iss.PublicKey().Equal(cert.PublicKey) {
		t.Error("x5c certificate does not hold the signing key")
	}
	if iss.MetadataRequests() != 1 || iss.KeysRequests() != 1 {
		t.Errorf("requests = %d metadata, %d keys; want 1, 1", iss.MetadataRequests(), iss.KeysRequests())
	}
}

func TestIssuerRotateAndAvailability(t *testing.T) {
	t.Parallel()
	iss := entratest.NewIssuer(t, tenantID)
	first := iss.KID()
	second := iss.Rotate()
	if second == first {
		t.Fatalf("Rotate() = %s, the old kid", second)
	}
	if iss.KID() != second {
		t.Errorf("KID() after Rotate = %s; want %s", iss.KID(), second)
	}
	var kids []string
	for _, k := range mustGetJSON(t, iss.KeysURL(), http.StatusOK)["keys"].([]any) {
		kids = append(kids, k.(map[string]any)["kid"].(string))
	}
	if !slices.Equal(kids, []string{first, second}) {
		t.Errorf("published kids = %v; want [%s %s]", kids, first, second)
	}

	iss.SetAvailable(false)
	mustGetJSON(t, iss.ConfigURL(), http.StatusServiceUnavailable)
	mustGetJSON(t, iss.KeysURL(), http.StatusServiceUnavailable)
	iss.SetAvailable(true)
	mustGetJSON(t, iss.ConfigURL(), http.StatusOK)
	if got := iss.MetadataRequests(); got != 2 {
		t.Errorf("MetadataRequests() = %d; want 2", got)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	iss := entratest.NewIssuer(t, tenantID)
	const client = "2b7f0c1e-3d4a-4b5c-9d6e-7f8a9b0c1d2e"
	tests := []struct {
		version    entratest.Version
		wantIss    string
		clientName string
		wantVer    string
	}{
		{version: entratest.V1, wantIss: iss.IssuerV1(), clientName: "appid", wantVer: "1.0"},
		{version: entratest.V2, wantIss: iss.IssuerV2(), clientName: "azp", wantVer: "2.0"},
	}
	for _, tt := range tests {
		raw := iss.Token(tt.version, "api://x", client, "Sessions.Revoke")
		var claims jwt.MapClaims
		tok, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return iss.PublicKey(), nil },
			jwt.WithValidMethods([]string{"RS256"}))
		if err != nil {
			t.Fatalf("v%d token does not verify with the published key: %v", tt.version, err)
		}
		if tok.Header["kid"] != iss.KID() {
			t.Errorf("v%d kid = %v; want %s", tt.version, tok.Header["kid"], iss.KID())
		}
		if claims["iss"] != tt.wantIss || claims[tt.clientName] != client || claims["ver"] != tt.wantVer || claims["tid"] != tenantID {
			t.Errorf("v%d claims = %v; want iss %s, %s %s, ver %s", tt.version, claims, tt.wantIss, tt.clientName, client, tt.wantVer)
		}
	}

	other := iss.MintUnpublished(jwt.MapClaims{"sub": "x"})
	tok, _, err := jwt.NewParser().ParseUnverified(other, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("unpublished token: %v", err)
	}
	if tok.Header["kid"] == iss.KID() {
		t.Error("MintUnpublished used the published kid")
	}
}
