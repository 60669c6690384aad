package webhook_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Benchmarks of the signature check that every HTTP request and every signed queue message pays
// before anything else. Run with: go test -run '^$' -bench . -benchmem ./internal/webhook

const (
	benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	benchStale  = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24="
	benchID     = "msg_2KWPBgLlAfxdpx2AI54pPJ85f50"
)

// benchBodies are the sizes a caller really sends: one user, the 100-user maximum, and the 64 KiB
// body limit (the HMAC is linear in the body, everything else is constant).
func benchBodies() []struct {
	name string
	body []byte
} {
	upns := make([]string, 100)
	for i := range upns {
		upns[i] = fmt.Sprintf(`"user%03d@contoso.com"`, i)
	}
	bulk := `{"upns":[` + strings.Join(upns, ",") + `],"ticket":"INC0012345"}`
	max := `{"upn":"alice@contoso.com","reason":"` + strings.Repeat("x", 64<<10-40) + `"}`
	return []struct {
		name string
		body []byte
	}{
		{"single_71B", []byte(`{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`)},
		{"bulk100_" + fmt.Sprint(len(bulk)) + "B", []byte(bulk)},
		{"max_64KiB", []byte(max)},
	}
}

func mustBenchKeys(b *testing.B, secrets ...string) webhook.Keys {
	b.Helper()
	k, err := webhook.ParseSecrets(secrets)
	if err != nil {
		b.Fatalf("ParseSecrets: %v", err)
	}
	return k
}

func BenchmarkVerify(b *testing.B) {
	now := time.Unix(1763769541, 0)
	signer := mustBenchKeys(b, benchSecret)
	cases := []struct {
		name    string
		keys    webhook.Keys
		tamper  bool
		wantErr error
	}{
		// The common case: one secret, a genuine signature.
		{name: "valid", keys: mustBenchKeys(b, benchSecret)},
		// During rotation the stale secret is tried first and fails: two HMACs per request.
		{name: "valid_second_key", keys: mustBenchKeys(b, benchStale, benchSecret)},
		// A forged request must cost no more than a genuine one (no early exit to time).
		{name: "forged", keys: mustBenchKeys(b, benchSecret), tamper: true, wantErr: webhook.ErrSignature},
	}
	for _, tc := range cases {
		for _, sz := range benchBodies() {
			h, err := signer.Headers(benchID, now, sz.body)
			if err != nil {
				b.Fatal(err)
			}
			if tc.tamper {
				// A genuine signature over another body: the shape is right, the HMAC is not.
				other, err := signer.Headers(benchID, now, append([]byte(" "), sz.body...))
				if err != nil {
					b.Fatal(err)
				}
				h.Set(webhook.HeaderSignature, other.Get(webhook.HeaderSignature))
			}
			b.Run(tc.name+"/"+sz.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(sz.body)))
				for b.Loop() {
					s, err := tc.keys.Verify(h, sz.body, now, 5*time.Minute, 5*time.Minute)
					if !errors.Is(err, tc.wantErr) || (err == nil && s.ID != benchID) {
						b.Fatalf("Verify = %+v, %v; want error %v", s, err, tc.wantErr)
					}
				}
			})
		}
	}
}

// BenchmarkSign is what the handler pays to sign a deferred request before enqueueing it.
func BenchmarkSign(b *testing.B) {
	keys := mustBenchKeys(b, benchSecret)
	now := time.Unix(1763769541, 0)
	for _, sz := range benchBodies() {
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(sz.body)))
			for b.Loop() {
				if sig, err := keys.Sign(benchID, now, sz.body); err != nil || !strings.HasPrefix(sig, "v1,") {
					b.Fatalf("Sign = %q, %v", sig, err)
				}
			}
		})
	}
}
