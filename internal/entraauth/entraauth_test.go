package entraauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const (
	tenantID    = "8d3e6b1a-5c2f-4e7a-9b1d-0f2c3a4b5c6d"
	otherTenant = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	appIDURI    = "api://entra-revoke"
	apiClientID = "6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"
	clientA     = "2b7f0c1e-3d4a-4b5c-9d6e-7f8a9b0c1d2e"
	clientB     = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
	role        = "Sessions.Revoke"
)

// fixedNow is the clock of both the fake issuer and the validators, so leeway cases are exact.
var fixedNow = time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

func mustIssuer(t *testing.T) *entratest.Issuer {
	t.Helper()
	iss := entratest.NewIssuer(t, tenantID)
	iss.SetClock(clock)
	return iss
}

func baseConfig(iss *entratest.Issuer) entraauth.Config {
	return entraauth.Config{
		TenantID:        tenantID,
		Audiences:       []string{appIDURI, apiClientID},
		RequiredRole:    role,
		OpenIDConfigURL: iss.ConfigURL(),
		Now:             clock,
	}
}

// mustValidator starts a Validator that is closed when the test ends.
func mustValidator(t *testing.T, cfg entraauth.Config) *entraauth.Validator {
	t.Helper()
	v, err := entraauth.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// waitFor polls cond; the bound is generous because it only guards against hanging forever.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, what, cond)
}

func mustReadyValidator(t *testing.T, cfg entraauth.Config) *entraauth.Validator {
	t.Helper()
	v := mustValidator(t, cfg)
	waitFor(t, "keys to load", v.Ready)
	return v
}

// checkRejected fails unless err is an *entraauth.Error with the wanted reason and cause.
func checkRejected(t *testing.T, token string, err error, wantReason string, wantErr error) {
	t.Helper()
	var e *entraauth.Error
	if !errors.As(err, &e) {
		t.Fatalf("Validate(%.40q) error = %v (%T); want *entraauth.Error", token, err, err)
	}
	if e.Reason != wantReason {
		t.Errorf("Validate(%.40q) reason = %q; want %q (err: %v)", token, e.Reason, wantReason, err)
	}
	wantForbidden := wantReason != entraauth.ReasonBadToken
	if e.Forbidden() != wantForbidden {
		t.Errorf("Validate(%.40q) Forbidden() = %v; want %v", token, e.Forbidden(), wantForbidden)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Errorf("Validate(%.40q) error = %v; want it to wrap %v", token, err, wantErr)
	}
	if len(token) > 20 && strings.Contains(err.Error(), token) {
		t.Errorf("Validate error text contains the token: %v", err)
	}
}

// tamper replaces a token's payload, keeping header and signature.
func tamper(t *testing.T, token string, change func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("tamper: token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("tamper: decode payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("tamper: unmarshal payload: %v", err)
	}
	change(claims)
	raw, err = json.Marshal(claims)
	if err != nil {
		t.Fatalf("tamper: marshal payload: %v", err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	v := mustReadyValidator(t, baseConfig(iss))

	// with mints a token from valid claims changed by f.
	with := func(ver entratest.Version, f func(jwt.MapClaims)) string {
		c := iss.Claims(ver, appIDURI, clientA, role)
		f(c)
		return iss.Mint(c)
	}
	valid := iss.Token(entratest.V2, appIDURI, clientA, role)
	oidA := iss.Claims(entratest.V2, appIDURI, clientA, role)["oid"].(string)
	callerA := entraauth.Caller{ClientID: clientA, ObjectID: oidA, TenantID: tenantID}

	// The attacks name the tenant's real kid, as a forger copying a genuine header would.
	forge := func(method jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(method, iss.Claims(entratest.V2, appIDURI, clientA, role))
		tok.Header["kid"] = iss.KID()
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", method.Alg(), err)
		}
		return s
	}
	hs256 := forge(jwt.SigningMethodHS256, iss.PublicKeyPEM())
	none := forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)

	tests := []struct {
		name       string
		token      string
		wantCaller entraauth.Caller
		wantReason string // "" = accepted
		wantErr    error
	}{
		{name: "v1 token (sts.windows.net issuer, appid)", token: iss.Token(entratest.V1, appIDURI, clientA, role), wantCaller: callerA},
		{name: "v2 token (login.microsoftonline.com issuer, azp)", token: valid, wantCaller: callerA},
		{name: "audience is the API client ID", token: iss.Token(entratest.V2, apiClientID, clientA, role), wantCaller: callerA},
		{name: "audience array with one accepted value", token: with(entratest.V2, func(c jwt.MapClaims) { c["aud"] = []string{"api://other", appIDURI} }), wantCaller: callerA},
		{name: "role among others", token: iss.Token(entratest.V2, appIDURI, clientA, "Sessions.Read", role), wantCaller: callerA},
		{name: "expired within leeway", token: with(entratest.V2, func(c jwt.MapClaims) { c["exp"] = fixedNow.Add(-90 * time.Second).Unix() }), wantCaller: callerA},
		{name: "nbf within leeway", token: with(entratest.V2, func(c jwt.MapClaims) { c["nbf"] = fixedNow.Add(90 * time.Second).Unix() }), wantCaller: callerA},
		{name: "upper-case client id is normalised", token: with(entratest.V2, func(c jwt.MapClaims) { c["azp"] = strings.ToUpper(clientA) }), wantCaller: callerA},

		{name: "empty", token: "", wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenMalformed},
		{name: "malformed: one segment", token: "not-a-jwt", wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenMalformed},
		{name: "malformed: garbage segments", token: "a.b.c", wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenMalformed},
		{name: "too large", token: strings.Repeat("a", 16<<10+1), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrTokenTooLarge},
		{name: "alg none", token: none, wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "HS256 signed with the public key", token: hs256, wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "RS384 with the tenant's key", token: iss.MintCustom(jwt.SigningMethodRS384, nil, iss.Claims(entratest.V2, appIDURI, clientA, role)), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "tampered payload", token: tamper(t, iss.Token(entratest.V2, appIDURI, clientA), func(c map[string]any) { c["roles"] = []string{role} }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "tampered signature", token: valid[:len(valid)-4] + "AAAA", wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "expired beyond leeway", token: with(entratest.V2, func(c jwt.MapClaims) { c["exp"] = fixedNow.Add(-3 * time.Minute).Unix() }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenExpired},
		{name: "nbf beyond leeway", token: with(entratest.V2, func(c jwt.MapClaims) { c["nbf"] = fixedNow.Add(3 * time.Minute).Unix() }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenNotValidYet},
		{name: "no exp", token: with(entratest.V2, func(c jwt.MapClaims) { delete(c, "exp") }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "wrong audience", token: iss.Token(entratest.V2, "api://someone-else", clientA, role), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "audience differs in case", token: iss.Token(entratest.V2, strings.ToUpper(appIDURI), clientA, role), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "no audience", token: with(entratest.V2, func(c jwt.MapClaims) { delete(c, "aud") }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "issuer of another tenant (v2)", token: with(entratest.V2, func(c jwt.MapClaims) { c["iss"] = "https://login.microsoftonline.com/" + otherTenant + "/v2.0" }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "issuer of another tenant (v1)", token: with(entratest.V1, func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/" + otherTenant + "/" }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "issuer mixing v1 host and v2 path", token: with(entratest.V2, func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/" + tenantID + "/v2.0" }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "issuer of the common endpoint", token: with(entratest.V2, func(c jwt.MapClaims) { c["iss"] = "https://login.microsoftonline.com/common/v2.0" }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "no issuer", token: with(entratest.V2, func(c jwt.MapClaims) { delete(c, "iss") }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "tid of another tenant", token: with(entratest.V2, func(c jwt.MapClaims) { c["tid"] = otherTenant }), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrTenantMismatch},
		{name: "v2 token without azp", token: with(entratest.V2, func(c jwt.MapClaims) { delete(c, "azp") }), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrNoClientID},
		{name: "v1 token without appid", token: with(entratest.V1, func(c jwt.MapClaims) { delete(c, "appid") }), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrNoClientID},
		{name: "client id not a GUID", token: with(entratest.V2, func(c jwt.MapClaims) { c["azp"] = "entra:evil\nline" }), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrNoClientID},
		{name: "oid not a GUID", token: with(entratest.V2, func(c jwt.MapClaims) { c["oid"] = "x" }), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrNoObjectID},
		{name: "roles is a string, not an array", token: with(entratest.V2, func(c jwt.MapClaims) { c["roles"] = role }), wantReason: entraauth.ReasonBadToken, wantErr: jwt.ErrTokenMalformed},
		{name: "no kid", token: iss.MintCustom(jwt.SigningMethodRS256, map[string]any{"kid": nil, "x5t": nil}, iss.Claims(entratest.V2, appIDURI, clientA, role)), wantReason: entraauth.ReasonBadToken, wantErr: entraauth.ErrKeyID},
		{name: "unknown kid after refresh", token: iss.MintUnpublished(iss.Claims(entratest.V2, appIDURI, clientA, role)), wantReason: entraauth.ReasonBadToken, wantErr: jwkset.ErrKeyNotFound},

		{name: "no roles", token: iss.Token(entratest.V2, appIDURI, clientA), wantReason: entraauth.ReasonMissingRole, wantErr: entraauth.ErrMissingRole},
		{name: "other role only", token: iss.Token(entratest.V1, appIDURI, clientA, "Sessions.Read"), wantReason: entraauth.ReasonMissingRole, wantErr: entraauth.ErrMissingRole},
		{name: "role differs in case", token: iss.Token(entratest.V2, appIDURI, clientA, strings.ToLower(role)), wantReason: entraauth.ReasonMissingRole, wantErr: entraauth.ErrMissingRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Validate(t.Context(), tt.token)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Validate(%.40q) error = %v; want caller %+v", tt.token, err, tt.wantCaller)
				}
				if got != tt.wantCaller {
					t.Errorf("Validate(%.40q) = %+v; want %+v", tt.token, got, tt.wantCaller)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%.40q) = %+v, nil; want %s error wrapping %v", tt.token, got, tt.wantReason, tt.wantErr)
			}
			if got != (entraauth.Caller{}) {
				t.Errorf("Validate(%.40q) caller = %+v on error; want zero", tt.token, got)
			}
			checkRejected(t, tt.token, err, tt.wantReason, tt.wantErr)
		})
	}
}

func TestValidateAllowedClients(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	cfg := baseConfig(iss)
	// Upper case in the setting: the comparison must not depend on how the operator typed it.
	cfg.AllowedClients = []string{strings.ToUpper(clientA), " "}
	v := mustReadyValidator(t, cfg)

	tests := []struct {
		name       string
		token      string
		wantClient string
		wantReason string
	}{
		{name: "allowed client, v2 azp", token: iss.Token(entratest.V2, appIDURI, clientA, role), wantClient: clientA},
		{name: "allowed client, v1 appid", token: iss.Token(entratest.V1, appIDURI, clientA, role), wantClient: clientA},
		{name: "client not allowed, v2", token: iss.Token(entratest.V2, appIDURI, clientB, role), wantReason: entraauth.ReasonClientNotAllowed},
		{name: "client not allowed, v1", token: iss.Token(entratest.V1, appIDURI, clientB, role), wantReason: entraauth.ReasonClientNotAllowed},
		{name: "allowed client without the role", token: iss.Token(entratest.V2, appIDURI, clientA), wantReason: entraauth.ReasonMissingRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Validate(t.Context(), tt.token)
			if tt.wantReason != "" {
				wantErr := entraauth.ErrClientNotAllowed
				if tt.wantReason == entraauth.ReasonMissingRole {
					wantErr = entraauth.ErrMissingRole
				}
				checkRejected(t, tt.token, err, tt.wantReason, wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Validate(%.40q) error = %v; want client %s", tt.token, err, tt.wantClient)
			}
			if got.ClientID != tt.wantClient || got.String() != "entra:"+tt.wantClient {
				t.Errorf("Validate(%.40q) = %+v (%s); want client %s", tt.token, got, got, tt.wantClient)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	v := mustReadyValidator(t, baseConfig(iss))

	oldToken := iss.Token(entratest.V2, appIDURI, clientA, role)
	if _, err := v.Validate(t.Context(), oldToken); err != nil {
		t.Fatalf("Validate(token of the first key) error = %v; want nil", err)
	}

	before := iss.KeysRequests()
	newKID := iss.Rotate() // published after New: unknown to the validator until it refreshes
	newToken := iss.Token(entratest.V2, appIDURI, clientA, role)
	if _, err := v.Validate(t.Context(), newToken); err != nil {
		t.Fatalf("Validate(token of key %s published after start) error = %v; want nil", newKID, err)
	}
	if got := iss.KeysRequests() - before; got != 1 {
		t.Errorf("key set downloads for a rotated key = %d; want 1", got)
	}

	// Both keys are now known: neither token makes another download.
	for _, tok := range []string{newToken, oldToken} {
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Errorf("Validate after rotation error = %v; want nil", err)
		}
	}
	if got := iss.KeysRequests() - before; got != 1 {
		t.Errorf("key set downloads after validating known keys = %d; want 1", got)
	}
}

func TestUnknownKIDRefreshIsRateLimited(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	v := mustReadyValidator(t, baseConfig(iss))

	const n = 20
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = iss.MintUnpublished(iss.Claims(entratest.V2, appIDURI, clientA, role))
	}
	before := iss.KeysRequests()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Go(func() { _, errs[i] = v.Validate(t.Context(), tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Fatalf("Validate(unknown kid #%d) error = nil; want bad_token", i)
		}
		checkRejected(t, tokens[i], err, entraauth.ReasonBadToken, nil)
	}
	if got := iss.KeysRequests() - before; got != 1 {
		t.Errorf("key set downloads for %d unknown-kid tokens = %d; want 1 (one rate-limited refresh)", n, got)
	}
	if _, err := v.Validate(t.Context(), iss.Token(entratest.V2, appIDURI, clientA, role)); err != nil {
		t.Errorf("Validate(valid token) after the flood error = %v; want nil", err)
	}
}

// countLogs returns how many JSON log records in logs have the message msg.
func countLogs(t *testing.T, logs *testenv.Buffer, msg string) int {
	t.Helper()
	n := 0
	for line := range strings.Lines(logs.String()) {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == msg {
			n++
		}
	}
	return n
}

func TestEntraUnreachableAtStart(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	iss.SetAvailable(false)
	var logs testenv.Buffer
	cfg := baseConfig(iss)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))

	// New must not wait for Entra. The bound is generous: New does no I/O at all, but a version
	// that waited for the keys would never return while Entra answers 503.
	type result struct {
		v   *entraauth.Validator
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := entraauth.New(t.Context(), cfg)
		done <- result{v, err}
	}()
	var v *entraauth.Validator
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("New: %v", r.err)
		}
		v = r.v
		t.Cleanup(v.Close)
	case <-time.After(5 * time.Second):
		t.Fatal("New blocked while Entra was unreachable")
	}

	token := iss.Token(entratest.V2, appIDURI, clientA, role)
	// Several failed attempts: the loader retries, and logs the outage once, not per attempt.
	waitFor(t, "retries of the metadata download", func() bool { return iss.MetadataRequests() >= 3 })
	if v.Ready() {
		t.Fatal("Ready() = true while Entra is unreachable; want false")
	}
	_, err := v.Validate(t.Context(), token)
	checkRejected(t, token, err, entraauth.ReasonBadToken, entraauth.ErrKeysUnavailable)
	if got := countLogs(t, &logs, "entra signing keys unavailable"); got != 1 {
		t.Errorf("outage logged %d times after %d attempts; want once\nlogs:\n%s", got, iss.MetadataRequests(), logs.String())
	}

	iss.SetAvailable(true)
	waitFor(t, "keys to load after Entra came back", v.Ready)
	got, err := v.Validate(t.Context(), token)
	if err != nil {
		t.Fatalf("Validate after Entra came back error = %v; want nil", err)
	}
	if got.ClientID != clientA {
		t.Errorf("Validate after Entra came back = %+v; want client %s", got, clientA)
	}
	if n := countLogs(t, &logs, "entra signing keys loaded"); n != 1 {
		t.Errorf("recovery logged %d times; want once\nlogs:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Error("logs contain the token")
	}
	v.Close()
	v.Close() // idempotent
}

func TestMetadataOfAnotherTenantIsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		issuer string
	}{
		{name: "another tenant", issuer: "https://login.microsoftonline.com/" + otherTenant + "/v2.0"},
		{name: "common endpoint placeholder", issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"},
		{name: "http issuer", issuer: "http://login.microsoftonline.com/" + tenantID + "/v2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iss := mustIssuer(t)
			iss.SetMetadataIssuer(tt.issuer)
			var logs testenv.Buffer
			cfg := baseConfig(iss)
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			v := mustValidator(t, cfg)

			waitFor(t, "a retry of the metadata download", func() bool { return iss.MetadataRequests() >= 2 })
			if v.Ready() {
				t.Errorf("metadata issuer %q: Ready() = true; want false", tt.issuer)
			}
			if n := iss.KeysRequests(); n != 0 {
				t.Errorf("metadata issuer %q: key set downloaded %d times; want 0", tt.issuer, n)
			}
			token := iss.Token(entratest.V2, appIDURI, clientA, role)
			_, err := v.Validate(t.Context(), token)
			checkRejected(t, token, err, entraauth.ReasonBadToken, entraauth.ErrKeysUnavailable)
			if !strings.Contains(logs.String(), entraauth.ErrMetadataIssuer.Error()) {
				t.Errorf("metadata issuer %q: logs do not name the cause\nlogs:\n%s", tt.issuer, logs.String())
			}
		})
	}
}

func TestMetadataDownloadIsHardened(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantLog string
	}{
		{
			name: "body over 1 MiB",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"issuer": %q, "jwks_uri": %q`, iss.IssuerV2(), iss.KeysURL())
				_, _ = w.Write(bytes.Repeat([]byte(" "), 2<<20))
				_, _ = w.Write([]byte("}"))
			},
			wantLog: "response body too large",
		},
		{
			name: "redirect to a valid document",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, iss.ConfigURL(), http.StatusFound)
			},
			wantLog: entraauth.ErrMetadataStatus.Error(),
		},
		{
			name: "empty key set",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/keys" {
					fmt.Fprint(w, `{"keys": []}`)
					return
				}
				fmt.Fprintf(w, `{"issuer": %q, "jwks_uri": %q}`, iss.IssuerV2(), "http://"+r.Host+"/keys")
			},
			wantLog: entraauth.ErrEmptyKeySet.Error(),
		},
		{
			name: "jwks_uri over http off loopback",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"issuer": %q, "jwks_uri": %q}`, iss.IssuerV2(), "http://login.microsoftonline.com/"+tenantID+"/discovery/v2.0/keys")
			},
			wantLog: "must use https",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var metadataRequests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/keys" {
					metadataRequests.Add(1)
				}
				tt.handler(w, r)
			}))
			t.Cleanup(srv.Close)
			var logs testenv.Buffer
			cfg := baseConfig(iss)
			cfg.OpenIDConfigURL = srv.URL + "/" + tenantID + "/v2.0/.well-known/openid-configuration"
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			v := mustValidator(t, cfg)

			// The failure is logged before the retry, so a second metadata request means the
			// first attempt's outcome is in the log.
			waitFor(t, "a retry of the metadata download", func() bool { return metadataRequests.Load() >= 2 })
			if v.Ready() {
				t.Errorf("%s: Ready() = true; want false", tt.name)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("%s: logs do not contain %q\nlogs:\n%s", tt.name, tt.wantLog, logs.String())
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	good := func() entraauth.Config {
		return entraauth.Config{
			TenantID:     tenantID,
			Audiences:    []string{appIDURI},
			RequiredRole: role,
			// Nothing listens there: New must still succeed, as it never touches the network.
			OpenIDConfigURL: "http://127.0.0.1:1/" + tenantID + "/v2.0/.well-known/openid-configuration",
		}
	}
	tests := []struct {
		name    string
		change  func(*entraauth.Config)
		wantErr string // "" = valid
	}{
		{name: "valid", change: func(*entraauth.Config) {}},
		{name: "default metadata url", change: func(c *entraauth.Config) { c.OpenIDConfigURL = "" }},
		{name: "upper-case tenant", change: func(c *entraauth.Config) { c.TenantID = strings.ToUpper(tenantID) }},
		{name: "allowed clients", change: func(c *entraauth.Config) { c.AllowedClients = []string{clientA, clientB} }},
		{name: "https metadata url", change: func(c *entraauth.Config) {
			c.OpenIDConfigURL = "https://login.microsoftonline.us/" + tenantID + "/v2.0/.well-known/openid-configuration"
		}},
		{name: "no tenant", change: func(c *entraauth.Config) { c.TenantID = "" }, wantErr: "tenant id"},
		{name: "tenant is a domain name", change: func(c *entraauth.Config) { c.TenantID = "contoso.onmicrosoft.com" }, wantErr: "tenant id"},
		{name: "tenant in braces", change: func(c *entraauth.Config) { c.TenantID = "{" + tenantID + "}" }, wantErr: "tenant id"},
		{name: "no audience", change: func(c *entraauth.Config) { c.Audiences = nil }, wantErr: "audience"},
		{name: "blank audience", change: func(c *entraauth.Config) { c.Audiences = []string{" ", ""} }, wantErr: "audience"},
		{name: "empty role", change: func(c *entraauth.Config) { c.RequiredRole = " " }, wantErr: "required role"},
		{name: "allowed client not a GUID", change: func(c *entraauth.Config) { c.AllowedClients = []string{"logic-app"} }, wantErr: "allowed client"},
		{name: "http metadata url off loopback", change: func(c *entraauth.Config) {
			c.OpenIDConfigURL = "http://login.microsoftonline.com/" + tenantID + "/v2.0/.well-known/openid-configuration"
		}, wantErr: "openid config url"},
		{name: "relative metadata url", change: func(c *entraauth.Config) { c.OpenIDConfigURL = "/openid-configuration" }, wantErr: "openid config url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := good()
			tt.change(&cfg)
			v, err := entraauth.New(t.Context(), cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New(%+v) error = %v; want nil", cfg, err)
				}
				v.Close()
				return
			}
			if err == nil {
				v.Close()
				t.Fatalf("New(%+v) error = nil; want one naming %q", cfg, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%+v) error = %v; want one naming %q", cfg, err, tt.wantErr)
			}
		})
	}
}

func TestNewReportsAllProblems(t *testing.T) {
	t.Parallel()
	_, err := entraauth.New(t.Context(), entraauth.Config{})
	if err == nil {
		t.Fatal("New(Config{}) error = nil; want one")
	}
	for _, want := range []string{"tenant id", "audience", "required role"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New(Config{}) error = %v; want it to name %q", err, want)
		}
	}
}

func TestValidateStopsAtClosedContext(t *testing.T) {
	t.Parallel()
	iss := mustIssuer(t)
	v := mustReadyValidator(t, baseConfig(iss))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	token := iss.MintUnpublished(iss.Claims(entratest.V2, appIDURI, clientA, role))
	before := iss.KeysRequests()
	_, err := v.Validate(ctx, token)
	checkRejected(t, token, err, entraauth.ReasonBadToken, context.Canceled)
	if got := iss.KeysRequests() - before; got != 0 {
		t.Errorf("key set downloads with a cancelled context = %d; want 0", got)
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{in: "Bearer abc.def.ghi", want: "abc.def.ghi", wantOK: true},
		{in: "bearer abc", want: "abc", wantOK: true},
		{in: "BEARER abc", want: "abc", wantOK: true},
		{in: "Bearer  abc", want: "abc", wantOK: true},
		{in: " Bearer abc ", want: "abc", wantOK: true},
		{in: ""},
		{in: "Bearer"},
		{in: "Bearer "},
		{in: "Bearerabc"},
		{in: "Basic dXNlcjpwYXNz"},
		{in: "Bearer a b"},
		{in: "Bearer a,b"},
		{in: "Bearer a\tb"},
	}
	for _, tt := range tests {
		got, ok := entraauth.BearerToken(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	tests := []struct {
		reason        string
		wantForbidden bool
	}{
		{reason: entraauth.ReasonBadToken, wantForbidden: false},
		{reason: entraauth.ReasonMissingRole, wantForbidden: true},
		{reason: entraauth.ReasonClientNotAllowed, wantForbidden: true},
	}
	for _, tt := range tests {
		e := &entraauth.Error{Reason: tt.reason, Err: cause}
		if got := e.Forbidden(); got != tt.wantForbidden {
			t.Errorf("Error{Reason: %q}.Forbidden() = %v; want %v", tt.reason, got, tt.wantForbidden)
		}
		if !errors.Is(e, cause) {
			t.Errorf("Error{Reason: %q} does not unwrap to its cause", tt.reason)
		}
		if !strings.Contains(e.Error(), tt.reason) {
			t.Errorf("Error{Reason: %q}.Error() = %q; want it to name the reason", tt.reason, e.Error())
		}
	}
}

func TestCallerString(t *testing.T) {
	t.Parallel()
	c := entraauth.Caller{ClientID: clientA, ObjectID: "x", TenantID: tenantID}
	if got, want := c.String(), "entra:"+clientA; got != want {
		t.Errorf("Caller%+v.String() = %q; want %q", c, got, want)
	}
}
