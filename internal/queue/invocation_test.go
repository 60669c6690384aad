package queue_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// The fixtures' test secret and signing instant (shared/fixtures/README.md).
const fixtureSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var fixtureTime = time.Unix(1763769541, 0)

// Tolerances the handler uses for queue messages (QUEUE_SIGNATURE_MAX_AGE's default, and a small
// allowance for a clock ahead of ours).
const (
	maxAge = 24 * time.Hour
	future = 5 * time.Minute
)

func fixturesDir(t testing.TB) string {
	t.Helper()
	return testenv.FixtureDir(t)
}

func mustFixture(t testing.TB, name string) []byte {
	t.Helper()
	return testenv.Fixture(t, name)
}

func mustKeys(t testing.TB, secrets ...string) webhook.Keys {
	t.Helper()
	k, err := webhook.ParseSecrets(secrets)
	if err != nil {
		t.Fatalf("ParseSecrets: %v", err)
	}
	return k
}

// mustRequest decodes a §3 request body strictly (unknown fields and trailing data refused), as
// the handler will.
func mustRequest(t testing.TB, body []byte) request.Body {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b request.Body
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decode request body %q: %v", body, err)
	}
	if dec.More() {
		t.Fatalf("request body %q: trailing data", body)
	}
	return b
}

// TestFixtures decodes every file of shared/fixtures as the handler will, so a fixture added
// without an expectation here fails instead of going untested.
func TestFixtures(t *testing.T) {
	t.Parallel()
	const single = `{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`
	tests := map[string]struct {
		dequeueCount int
		signed       bool
		malformed    bool
		verifyErr    error  // from Keys.Verify at the fixtures' instant
		webhookID    string // of a signed message
		body         string // the request body, signed or not
		users        []string
		ticket       string
	}{
		"queue-unsigned.json": {dequeueCount: 1, body: single,
			users: []string{"alice@contoso.com"}, ticket: "INC0012345"},
		"queue-signed.json": {dequeueCount: 1, signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
			body: single, users: []string{"alice@contoso.com"}, ticket: "INC0012345"},
		"queue-signed-bulk.json": {dequeueCount: 1, signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X",
			body:   `{"upns":["alice@contoso.com","jane_fabrikam.com#EXT#@contoso.onmicrosoft.com","3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"],"ticket":"SIR-42"}`,
			users:  []string{"alice@contoso.com", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"},
			ticket: "SIR-42"},
		"queue-bad-signature.json": {dequeueCount: 1, signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4Y",
			body: single, verifyErr: webhook.ErrSignature},
		"queue-last-attempt.json": {dequeueCount: 5, signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4Z",
			body: single, users: []string{"alice@contoso.com"}, ticket: "INC0012345"},
		"queue-not-json.json": {dequeueCount: 1, malformed: true, body: "revoke alice@contoso.com please"},
	}
	keys := mustKeys(t, fixtureSecret)
	entries, err := os.ReadDir(fixturesDir(t))
	if err != nil {
		t.Fatalf("read fixtures: %v", err)
	}
	seen := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "queue-") {
			continue
		}
		seen++
		tt, ok := tests[name]
		if !ok {
			t.Errorf("fixture %s has no expectation in TestFixtures", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inv, err := queue.DecodeInvocation(bytes.NewReader(mustFixture(t, name)))
			if err != nil {
				t.Fatalf("DecodeInvocation(%s) = %v; want nil", name, err)
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

			env, signed, err := queue.ParseMessage(inv.Message)
			if tt.malformed {
				if !errors.Is(err, queue.ErrMalformed) {
					t.Errorf("ParseMessage(%q) = %v; want ErrMalformed", inv.Message, err)
				}
				if string(inv.Message) != tt.body {
					t.Errorf("Message = %q; want %q", inv.Message, tt.body)
				}
				return
			}
			if err != nil || signed != tt.signed {
				t.Fatalf("ParseMessage(%q) = signed %v, %v; want signed %v, nil", inv.Message, signed, err, tt.signed)
			}
			body := inv.Message
			if signed {
				body = []byte(env.Body)
				if env.ID != tt.webhookID || env.Timestamp != "1763769541" || !strings.HasPrefix(env.Signature, "v1,") {
					t.Errorf("envelope = %+v; want webhook-id %s, timestamp 1763769541, a v1 signature", env, tt.webhookID)
				}
				got, err := keys.Verify(env.Header(), body, fixtureTime.Add(time.Second), maxAge, future)
				if !errors.Is(err, tt.verifyErr) {
					t.Fatalf("Verify(%s) = %v; want %v", name, err, tt.verifyErr)
				}
				if err == nil && (got.ID != tt.webhookID || !got.Timestamp.Equal(fixtureTime)) {
					t.Errorf("Verify(%s) = %+v; want id %s at %v", name, got, tt.webhookID, fixtureTime)
				}
			}
			if string(body) != tt.body {
				t.Errorf("request body = %q; want %q", body, tt.body)
			}
			if tt.verifyErr != nil {
				return
			}
			req := mustRequest(t, body)
			if !slices.Equal(req.Users(), tt.users) || req.Ticket != tt.ticket {
				t.Errorf("request = %+v; want users %q, ticket %q", req, tt.users, tt.ticket)
			}
		})
	}
	if seen != len(tests) {
		t.Errorf("found %d queue fixtures; want the %d expected", seen, len(tests))
	}
}

// TestFixtureSignatureAge checks that the fixtures' clock matters: the same signed message is
// refused once older than QUEUE_SIGNATURE_MAX_AGE.
func TestFixtureSignatureAge(t *testing.T) {
	t.Parallel()
	inv, err := queue.DecodeInvocation(bytes.NewReader(mustFixture(t, "queue-signed.json")))
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := queue.ParseMessage(inv.Message)
	if err != nil {
		t.Fatal(err)
	}
	now := fixtureTime.Add(maxAge + time.Second)
	if _, err := mustKeys(t, fixtureSecret).Verify(env.Header(), []byte(env.Body), now, maxAge, future); !errors.Is(err, webhook.ErrExpired) {
		t.Errorf("Verify at %v = %v; want ErrExpired", now, err)
	}
}

// TestFixtureHTTP checks the forwarded HTTP fixture: its signature verifies at the fixtures'
// instant and its body is a valid request.
func TestFixtureHTTP(t *testing.T) {
	t.Parallel()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(mustFixture(t, "http-revoke-signed.txt"))))
	if err != nil {
		t.Fatalf("read http-revoke-signed.txt: %v", err)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(req.Body); err != nil {
		t.Fatal(err)
	}
	if _, err := mustKeys(t, fixtureSecret).Verify(req.Header, body.Bytes(), fixtureTime, maxAge, future); err != nil {
		t.Errorf("Verify(http-revoke-signed.txt) = %v; want nil", err)
	}
	if got := mustRequest(t, body.Bytes()).Users(); !slices.Equal(got, []string{"alice@contoso.com"}) {
		t.Errorf("users = %q; want [alice@contoso.com]", got)
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
			inv, err := queue.DecodeInvocation(strings.NewReader(tt.in))
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
			inv, err := queue.DecodeInvocation(strings.NewReader(tt.in))
			if !errors.Is(err, queue.ErrInvocation) {
				t.Errorf("DecodeInvocation(%s) = %+v, %v; want ErrInvocation", tt.in, inv, err)
			}
		})
	}
}
