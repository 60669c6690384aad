package entraauth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
)

// Benchmarks of bearer-token validation, the alternative to a webhook signature on every HTTP
// request: an RS256 verification (about 30× an HMAC) plus claim checks.

func BenchmarkValidate(b *testing.B) {
	iss := entratest.NewIssuer(b, tenantID)
	iss.SetClock(clock)
	v, err := entraauth.New(context.Background(), baseConfig(iss))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	for deadline := time.Now().Add(30 * time.Second); !v.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("signing keys did not load")
		}
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, iss.Claims(entratest.V2, appIDURI, clientA, role))
	noneToken, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		token  string
		reason string // "" = accepted
	}{
		{"v2", iss.Token(entratest.V2, appIDURI, clientA, role), ""},
		{"v1", iss.Token(entratest.V1, apiClientID, clientA, role), ""},
		{"missing_role", iss.Token(entratest.V2, appIDURI, clientA), entraauth.ReasonMissingRole},
		{"alg_none", noneToken, entraauth.ReasonBadToken},
	}
	ctx := context.Background()
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := v.Validate(ctx, tc.token)
				var e *entraauth.Error
				if (tc.reason == "" && err != nil) || (tc.reason != "" && (!errors.As(err, &e) || e.Reason != tc.reason)) {
					b.Fatalf("Validate(%s) = %v; want reason %q", tc.name, err, tc.reason)
				}
			}
		})
	}
}
