package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// TestQueueFixtureInvocations decodes every queue fixture as the host sends it: the message text
// after both JSON decodings, and the metadata with the host's embedded quotes stripped.
func TestQueueFixtureInvocations(t *testing.T) {
	t.Parallel()
	const single = `{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`
	tests := map[string]struct {
		dequeueCount int
		contains     string // a fragment of the message text
	}{
		"queue-unsigned.json":      {1, single},
		"queue-signed.json":        {1, `"webhook-id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"`},
		"queue-signed-bulk.json":   {1, `"webhook-id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4X"`},
		"queue-bad-signature.json": {1, `"webhook-id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4Y"`},
		"queue-last-attempt.json":  {5, `"webhook-id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4Z"`},
		"queue-not-json.json":      {1, "revoke alice@contoso.com please"},
	}
	paths, err := filepath.Glob(filepath.Join(testenv.FixtureDir(t), "queue-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(tests) {
		t.Errorf("found %d queue fixtures; want the %d expected", len(paths), len(tests))
	}
	for _, p := range paths {
		name := filepath.Base(p)
		tt, ok := tests[name]
		if !ok {
			t.Errorf("fixture %s has no expectation here", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inv, err := decodeQueueInvocation(bytes.NewReader(testenv.Fixture(t, name)))
			if err != nil {
				t.Fatalf("decodeQueueInvocation(%s) = %v; want nil", name, err)
			}
			if inv.DequeueCount != tt.dequeueCount {
				t.Errorf("DequeueCount = %d; want %d", inv.DequeueCount, tt.dequeueCount)
			}
			if want := "52d53c5f-e212-487e-998b-abbe3b9d51e4"; inv.ID != want {
				t.Errorf("ID = %q; want %q (quotes stripped)", inv.ID, want)
			}
			if want := "MThGZWIyMDI1MDM6MDY6MjA3NjM1"; inv.PopReceipt != want {
				t.Errorf("PopReceipt = %q; want %q (quotes stripped)", inv.PopReceipt, want)
			}
			if want := time.Date(2025, 11, 21, 23, 59, 1, 0, time.UTC); !inv.InsertionTime.Equal(want) {
				t.Errorf("InsertionTime = %v; want %v", inv.InsertionTime, want)
			}
			if !strings.Contains(string(inv.Message), tt.contains) {
				t.Errorf("Message = %q; want it to contain %q", inv.Message, tt.contains)
			}
		})
	}
}

// invocation builds a host invocation around a message text and metadata, encoding the text twice
// as the host does.
func invocation(t testing.TB, text string, metadata string) string {
	t.Helper()
	once, _ := json.Marshal(text)
	twice, _ := json.Marshal(string(once))
	return `{"Data":{"message":` + string(twice) + `},"Metadata":` + metadata + `}`
}

func TestDecodeInvocationValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		message string
		count   int
		id      string
		pop     string
	}{
		{"host shape", invocation(t, `{"upn":"a@contoso.com"}`, `{"DequeueCount":"2","Id":"\"id-1\"","PopReceipt":"\"pr\""}`),
			`{"upn":"a@contoso.com"}`, 2, "id-1", "pr"},
		{"dequeue count with quotes", invocation(t, "x", `{"DequeueCount":"\"3\""}`), "x", 3, "", ""},
		{"dequeue count as number", invocation(t, "x", `{"DequeueCount":4}`), "x", 4, "", ""},
		{"id without quotes", invocation(t, "x", `{"DequeueCount":"1","Id":"plain"}`), "x", 1, "plain", ""},
		{"empty message", invocation(t, "", `{"DequeueCount":"1"}`), "", 1, "", ""},
		{"unicode and escapes kept", invocation(t, "\"quoted\" \\ ü \u2028", `{"DequeueCount":"1"}`),
			"\"quoted\" \\ ü \u2028", 1, "", ""},
		{"other bindings and metadata ignored",
			`{"Data":{"message":"\"\\\"m\\\"\"","other":{"x":1}},"Metadata":{"DequeueCount":"1","upn":"\"x\"","sys":{"a":[1]}},"Extra":true}`,
			`"m"`, 1, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv, err := decodeQueueInvocation(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("DecodeInvocation(%s) = %v; want nil", tt.in, err)
			}
			if string(inv.Message) != tt.message || inv.DequeueCount != tt.count || inv.ID != tt.id || inv.PopReceipt != tt.pop {
				t.Errorf("DecodeInvocation(%s) = message %q, count %d, id %q, pop %q; want %q, %d, %q, %q",
					tt.in, inv.Message, inv.DequeueCount, inv.ID, inv.PopReceipt, tt.message, tt.count, tt.id, tt.pop)
			}
		})
	}
}

func TestDecodeInvocationHostile(t *testing.T) {
	t.Parallel()
	good := `{"DequeueCount":"1"}`
	msg := func(raw string) string { return `{"Data":{"message":` + raw + `},"Metadata":` + good + `}` }
	meta := func(m string) string { return invocation(t, "x", m) }
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"not json", "revoke alice"},
		{"array", `[1,2]`},
		{"null", `null`},
		{"string", `"x"`},
		{"trailing data", invocation(t, "x", good) + `{}`},
		{"missing Data", `{"Metadata":` + good + `}`},
		{"Data null", `{"Data":null,"Metadata":` + good + `}`},
		{"Data a string", `{"Data":"x","Metadata":` + good + `}`},
		{"Data without message", `{"Data":{"msg":"\"\\\"x\\\"\""},"Metadata":` + good + `}`},
		{"message a number", msg(`42`)},
		{"message null", msg(`null`)},
		{"message an object", msg(`{"upn":"a@contoso.com"}`)},
		{"message an array", msg(`["x"]`)},
		{"message encoded once", msg(`"{\"upn\":\"a@contoso.com\"}"`)},
		{"message inner escape broken", msg(`"\"\\x\""`)},
		{"message inner trailing data", msg(`"\"a\" 1"`)},
		{"missing Metadata", `{"Data":{"message":"\"\\\"x\\\"\""}}`},
		{"Metadata null", `{"Data":{"message":"\"\\\"x\\\"\""},"Metadata":null}`},
		{"missing DequeueCount", meta(`{"Id":"\"x\""}`)},
		{"DequeueCount zero", meta(`{"DequeueCount":"0"}`)},
		{"DequeueCount negative", meta(`{"DequeueCount":"-1"}`)},
		{"DequeueCount huge", meta(`{"DequeueCount":"99999999999999999999"}`)},
		{"DequeueCount past int32", meta(`{"DequeueCount":"2147483648"}`)},
		{"DequeueCount fraction", meta(`{"DequeueCount":1.5}`)},
		{"DequeueCount words", meta(`{"DequeueCount":"one"}`)},
		{"DequeueCount bool", meta(`{"DequeueCount":true}`)},
		{"DequeueCount object", meta(`{"DequeueCount":{"n":1}}`)},
		{"DequeueCount null", meta(`{"DequeueCount":null}`)},
		{"Id a number", meta(`{"DequeueCount":"1","Id":42}`)},
		{"Id with control characters", meta(`{"DequeueCount":"1","Id":"\"a\\nb\""}`)},
		{"Id too long", meta(`{"DequeueCount":"1","Id":"` + strings.Repeat("a", 257) + `"}`)},
		{"PopReceipt an object", meta(`{"DequeueCount":"1","PopReceipt":{}}`)},
		{"PopReceipt broken quotes", meta(`{"DequeueCount":"1","PopReceipt":"\"abc"}`)},
		{"InsertionTime not a time", meta(`{"DequeueCount":"1","InsertionTime":"yesterday"}`)},
		{"InsertionTime a number", meta(`{"DequeueCount":"1","InsertionTime":1763769541}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv, err := decodeQueueInvocation(strings.NewReader(tt.in))
			if !errors.Is(err, errInvocation) {
				t.Errorf("DecodeInvocation(%s) = %+v, %v; want ErrInvocation", tt.in, inv, err)
			}
		})
	}
}

func FuzzDecodeInvocation(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(testenv.FixtureDir(f), "queue-*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no queue fixtures: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Data":{"message":"\"\\\"x\\\"\""},"Metadata":{"DequeueCount":"1"}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		inv, err := decodeQueueInvocation(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, errInvocation) {
				t.Fatalf("DecodeInvocation(%q) = %v; want errInvocation", in, err)
			}
			return
		}
		if inv.DequeueCount < 1 {
			t.Fatalf("DecodeInvocation(%q).DequeueCount = %d; want at least 1", in, inv.DequeueCount)
		}
		for _, s := range []string{inv.ID, inv.PopReceipt} {
			for i := 0; i < len(s); i++ {
				if s[i] < 0x21 || s[i] > 0x7e {
					t.Fatalf("DecodeInvocation(%q) kept %q; want printable ASCII only", in, s)
				}
			}
		}
	})
}

func BenchmarkDecodeQueueInvocation(b *testing.B) {
	for _, name := range []string{"queue-signed.json", "queue-signed-bulk.json"} {
		in := testenv.Fixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				inv, err := decodeQueueInvocation(bytes.NewReader(in))
				if err != nil || inv.DequeueCount != 1 || len(inv.Message) == 0 {
					b.Fatalf("decodeQueueInvocation = %+v, %v", inv, err)
				}
			}
		})
	}
}
