package entraauth_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
)

// fuzzTB lets the fake issuer mint tokens inside a fuzz function, where testing.F's own Helper and
// Fatal may not be called. Minting only fails on a broken key, which is a crash worth reporting.
type fuzzTB struct{ testing.TB }

func (fuzzTB) Helper()                        {}
func (fuzzTB) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (fuzzTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// Ways the fuzzed header and claims of FuzzValidateClaims become a token.
const (
	fuzzSignPublished   = iota // RS256 with the tenant's published key: only the claims can be wrong
	fuzzSignUnpublished        // RS256 with a key the tenant never published
	fuzzKeyConfusion           // HS256 keyed with the published public key (the classic alg confusion)
	fuzzModes
)

// fuzzTenant is the fake Entra tenant and a Validator whose keys have loaded.
type fuzzTenant struct {
	iss *entratest.Issuer
	v   *entraauth.Validator
	pub *rsa.PublicKey
	kid string
}

func mustFuzzTenant(f *testing.F) fuzzTenant {
	f.Helper()
	iss := entratest.NewIssuer(fuzzTB{f}, tenantID)
	iss.SetClock(clock)
	v, err := entraauth.New(context.Background(), baseConfig(iss))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	for deadline := time.Now().Add(30 * time.Second); !v.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.Fatal("signing keys did not load")
		}
	}
	return fuzzTenant{iss: iss, v: v, pub: iss.PublicKey(), kid: iss.KID()}
}

// check validates token and fails the test if Validate misbehaves: an error that is not an
// *entraauth.Error or that holds the token, or an acceptance that the independent check refuses.
func (ft fuzzTenant) check(t *testing.T, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	caller, err := ft.v.Validate(ctx, token)
	if err != nil {
		var e *entraauth.Error
		if !errors.As(err, &e) {
			t.Fatalf("Validate(%q) error = %T %v; want *entraauth.Error", token, err, err)
		}
		if len(token) > 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("Validate error text holds the token: %v", err)
		}
		return
	}
	if reason := refuse(token, ft.pub, ft.kid, caller); reason != "" {
		t.Fatalf("Validate(%q) accepted caller %+v, but %s", token, caller, reason)
	}
}

// FuzzValidate mutates whole tokens. Validate must never panic, must fail only with
// *entraauth.Error whose text never holds the token, and must never accept a token that an
// independent check refuses: the signature must verify under the published key with RS256 (checked
// here with crypto/rsa, not the JWT library) and the claims must satisfy the caller rules (see refuse).
// Seeds are tokens minted by the fake Entra tenant: valid ones and each way of forging one.
func FuzzValidate(f *testing.F) {
	ft := mustFuzzTenant(f)
	iss := ft.iss
	valid := iss.Claims(entratest.V2, appIDURI, clientA, role)
	expired := iss.Claims(entratest.V2, appIDURI, clientA, role)
	expired["exp"] = fixedNow.Add(-3 * time.Minute).Unix()
	hs256 := jwt.NewWithClaims(jwt.SigningMethodHS256, valid)
	hs256.Header["kid"] = ft.kid
	confused, err := hs256.SignedString(iss.PublicKeyPEM())
	if err != nil {
		f.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		f.Fatal(err)
	}
	good := iss.Mint(valid)
	parts := strings.Split(good, ".")
	for _, tok := range []string{
		good,
		iss.Token(entratest.V1, apiClientID, clientB, role, "Other.Role"),
		iss.Token(entratest.V2, appIDURI, clientA),
		iss.Token(entratest.V2, "api://another-api", clientA, role),
		iss.Mint(expired),
		iss.MintUnpublished(valid),
		iss.MintCustom(jwt.SigningMethodRS256, map[string]any{"kid": nil}, valid),
		iss.MintCustom(jwt.SigningMethodPS256, nil, valid),
		confused, none,
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		parts[0] + "." + parts[1] + ".",
		"eyJhbGciOiJub25lIn0.e30.", "a.b.c.d", "",
	} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		ft.check(t, token)
	})
}

// FuzzValidateClaims signs fuzzed claims and header overrides, so that the claim checks run behind
// a genuine signature, with the same oracle as FuzzValidate. Signing with RSA inside the fuzz
// function is slow under the fuzzer's instrumentation (a few executions a second): give it a longer
// -fuzztime than the other targets.
func FuzzValidateClaims(f *testing.F) {
	ft := mustFuzzTenant(f)
	iss := ft.iss
	pemKey := iss.PublicKeyPEM()
	claimsJSON := func(c jwt.MapClaims) string {
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	valid := iss.Claims(entratest.V2, appIDURI, clientA, role)
	expired := iss.Claims(entratest.V2, appIDURI, clientA, role)
	expired["exp"] = fixedNow.Add(-3 * time.Minute).Unix()
	for _, c := range []jwt.MapClaims{
		valid, expired,
		iss.Claims(entratest.V1, apiClientID, clientB, role, "Other.Role"),
		iss.Claims(entratest.V2, appIDURI, clientA),
	} {
		f.Add(uint8(fuzzSignPublished), "{}", claimsJSON(c))
	}
	f.Add(uint8(fuzzSignPublished), `{"alg":"none"}`, claimsJSON(valid))
	f.Add(uint8(fuzzSignPublished), `{"kid":null}`, claimsJSON(valid))
	f.Add(uint8(fuzzSignPublished), `{"kid":"`+strings.Repeat("k", 200)+`"}`, claimsJSON(valid))
	f.Add(uint8(fuzzSignPublished), "{}", `{"aud":["x","api://entra-revoke"],"exp":1.7954e9,"iss":"https://sts.windows.net/`+tenantID+`/","appid":"`+clientA+`","roles":["Sessions.Revoke"]}`)
	f.Add(uint8(fuzzSignPublished), "{}", `{"aud":"api://entra-revoke","exp":"1795400000","roles":"Sessions.Revoke"}`)
	f.Add(uint8(fuzzSignUnpublished), "{}", claimsJSON(valid))
	f.Add(uint8(fuzzKeyConfusion), "{}", claimsJSON(valid))

	f.Fuzz(func(t *testing.T, mode uint8, header, claims string) {
		c, ok := decodeObject(claims)
		if !ok {
			return
		}
		h, ok := decodeObject(header)
		if !ok {
			return
		}
		var token string
		switch mode % fuzzModes {
		case fuzzSignPublished:
			token = iss.MintCustom(jwt.SigningMethodRS256, h, jwt.MapClaims(c))
		case fuzzSignUnpublished:
			token = iss.MintUnpublished(jwt.MapClaims(c))
		case fuzzKeyConfusion:
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
			tok.Header["kid"] = ft.kid
			for k, val := range h {
				tok.Header[k] = val
			}
			var err error
			if token, err = tok.SignedString(pemKey); err != nil {
				t.Fatalf("sign HS256: %v", err)
			}
		}
		ft.check(t, token)
	})
}

// decodeObject reads a JSON object keeping numbers exact, so that claims are signed as fuzzed.
func decodeObject(s string) (map[string]any, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return nil, false
	}
	return m, true
}

// refuse is an independent check of an accepted token; it says why the token should have been
// refused, or "" when it deserved to pass.
func refuse(token string, pub *rsa.PublicKey, kid string, caller entraauth.Caller) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Sprintf("it has %d parts", len(parts))
	}
	enc := base64.RawURLEncoding.Strict()
	var header map[string]any
	if raw, err := enc.DecodeString(parts[0]); err != nil || json.Unmarshal(raw, &header) != nil {
		return "its header is not canonical base64url JSON"
	}
	if header["alg"] != "RS256" {
		return fmt.Sprintf("its alg is %v", header["alg"])
	}
	if header["kid"] != kid {
		return fmt.Sprintf("its kid %v is not the published key's", header["kid"])
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return "its signature is not canonical base64url"
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return "its RS256 signature does not verify under the published key"
	}

	rawClaims, err := enc.DecodeString(parts[1])
	if err != nil {
		return "its payload is not canonical base64url"
	}
	dec := json.NewDecoder(bytes.NewReader(rawClaims))
	dec.UseNumber()
	var c map[string]any
	if err := dec.Decode(&c); err != nil {
		return "its payload is not a JSON object"
	}
	if s, _ := c["iss"].(string); !strings.EqualFold(s, "https://sts.windows.net/"+tenantID+"/") &&
		!strings.EqualFold(s, "https://login.microsoftonline.com/"+tenantID+"/v2.0") {
		return fmt.Sprintf("its iss %v is not the tenant's", c["iss"])
	}
	if !hasAudience(c["aud"]) {
		return fmt.Sprintf("its aud %v is not accepted", c["aud"])
	}
	now := float64(fixedNow.Unix())
	const leeway, rounding = 120, 1 // seconds; rounding absorbs fractional NumericDates
	exp, ok := c["exp"].(json.Number)
	if !ok {
		return "it has no numeric exp"
	}
	if e, err := exp.Float64(); err != nil || now >= e+leeway+rounding {
		return fmt.Sprintf("its exp %v is past the leeway", exp)
	}
	if nbf, ok := c["nbf"]; ok {
		n, isNum := nbf.(json.Number)
		if !isNum {
			return fmt.Sprintf("its nbf %v is not a number", nbf)
		}
		if f, err := n.Float64(); err != nil || f > now+leeway+rounding {
			return fmt.Sprintf("its nbf %v is ahead of the leeway", nbf)
		}
	}
	roles, _ := c["roles"].([]any)
	hasRole := false
	for _, r := range roles {
		hasRole = hasRole || r == role
	}
	if !hasRole {
		return fmt.Sprintf("its roles %v lack %s", c["roles"], role)
	}
	if tid, ok := c["tid"]; ok && !strings.EqualFold(fmt.Sprint(tid), tenantID) {
		return fmt.Sprintf("its tid %v is another tenant's", tid)
	}
	azp, _ := c["azp"].(string)
	appid, _ := c["appid"].(string)
	if !strings.EqualFold(caller.ClientID, azp) && !strings.EqualFold(caller.ClientID, appid) {
		return fmt.Sprintf("the caller's client ID %q is neither azp %q nor appid %q", caller.ClientID, azp, appid)
	}
	if caller.ClientID != strings.ToLower(caller.ClientID) || len(caller.ClientID) != 36 {
		return fmt.Sprintf("the caller's client ID %q is not a lower-case GUID", caller.ClientID)
	}
	if caller.TenantID != tenantID {
		return fmt.Sprintf("the caller's tenant is %q", caller.TenantID)
	}
	return ""
}

func hasAudience(aud any) bool {
	accepted := func(s any) bool { return s == appIDURI || s == apiClientID }
	switch a := aud.(type) {
	case string:
		return accepted(a)
	case []any:
		for _, s := range a {
			if accepted(s) {
				return true
			}
		}
	}
	return false
}
