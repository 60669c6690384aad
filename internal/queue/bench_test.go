package queue_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Benchmarks of the queue trigger's per-message work before the engine: classifying and verifying
// the message, and sealing a deferred request. The fixtures are the host payloads of testdata/host.

// benchFixtureTime is the webhook-timestamp of the signed fixtures.
var benchFixtureTime = time.Unix(1763769541, 0)

const benchFixtureSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func mustBenchFixture(b *testing.B, name string) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.FixtureDir(b), name))
	if err != nil {
		b.Fatalf("read fixture: %v", err)
	}
	return raw
}

// benchBulkInvocation is a signed 100-user message wrapped the way the host sends it.
func benchBulkInvocation(b *testing.B, keys webhook.Keys) []byte {
	b.Helper()
	upns := make([]string, 100)
	for i := range upns {
		upns[i] = fmt.Sprintf("user%03d@contoso.com", i)
	}
	body, _ := json.Marshal(map[string]any{"upns": upns, "ticket": "INC0012345"})
	text, err := queue.Seal(keys, "msg_bench_bulk", benchFixtureTime, body)
	if err != nil {
		b.Fatal(err)
	}
	inner, _ := json.Marshal(string(text))
	outer, _ := json.Marshal(string(inner))
	return []byte(`{"Data":{"message":` + string(outer) + `},"Metadata":{"DequeueCount":"1","Id":"\"52d53c5f-e212-487e-998b-abbe3b9d51e4\"","PopReceipt":"\"MThGZWIyMDI1MDM6MDY6MjA3NjM1\"","sys":{"MethodName":"revoke-queue"}}}`)
}

// benchMessage takes the message text out of a host invocation (double-encoded in Data.message).
func benchMessage(b *testing.B, inv []byte) []byte {
	b.Helper()
	var raw struct {
		Data struct {
			Message string `json:"message"`
		} `json:"Data"`
	}
	var text string
	if err := json.Unmarshal(inv, &raw); err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw.Data.Message), &text); err != nil {
		b.Fatal(err)
	}
	return []byte(text)
}

func mustBenchKeys(b *testing.B) webhook.Keys {
	b.Helper()
	k, err := webhook.ParseSecrets([]string{benchFixtureSecret})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkOpenMessage is the handler's check of a delivered message: classify it as a signed
// envelope, then verify the signature over its body.
func BenchmarkOpenMessage(b *testing.B) {
	keys := mustBenchKeys(b)
	cases := []struct {
		name string
		in   []byte
	}{
		{"signed", mustBenchFixture(b, "queue-signed.json")},
		{"signed_bulk100", benchBulkInvocation(b, keys)},
	}
	for _, tc := range cases {
		inv := struct{ Message []byte }{benchMessage(b, tc.in)}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(inv.Message)))
			for b.Loop() {
				env, signed, err := queue.ParseMessage(inv.Message)
				if err != nil || !signed {
					b.Fatalf("ParseMessage(%s) = signed %v, %v", inv.Message, signed, err)
				}
				if _, err := keys.Verify(env.Header(), []byte(env.Body), benchFixtureTime, 24*time.Hour, 5*time.Minute); err != nil {
					b.Fatalf("Verify(%s) = %v", inv.Message, err)
				}
			}
		})
	}
}

// BenchmarkSeal is the signing and encoding of a deferred request before it is enqueued.
func BenchmarkSeal(b *testing.B) {
	keys := mustBenchKeys(b)
	for _, n := range []int{1, 100} {
		upns := make([]string, n)
		for i := range upns {
			upns[i] = fmt.Sprintf("user%03d@contoso.com", i)
		}
		body, _ := json.Marshal(map[string]any{"upns": upns, "ticket": "INC0012345"})
		b.Run(fmt.Sprintf("users%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				text, err := queue.Seal(keys, "msg_bench", benchFixtureTime, body)
				if err != nil || !strings.Contains(string(text), `"webhook-signature":"v1,`) {
					b.Fatalf("Seal = %s, %v", text, err)
				}
			}
		})
	}
}
