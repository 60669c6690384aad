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

// The fixtures' test secret and signing instant (testdata/host/README.md).
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

// mustFixtureMessage returns the message text of a queue fixture: the host double-encodes it as a
// JSON string inside Data.message (the server package decodes whole invocations).
func mustFixtureMessage(t testing.TB, name string) []byte {
	t.Helper()
	var inv struct {
		Data struct {
			Message string `json:"message"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(mustFixture(t, name), &inv); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	var text string
	if err := json.Unmarshal([]byte(inv.Data.Message), &text); err != nil {
		t.Fatalf("fixture %s: Data.message is not double-encoded: %v", name, err)
	}
	return []byte(text)
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

// TestFixtures decodes every queue fixture of testdata/host as the handler will, so a fixture added
// without an expectation here fails instead of going untested.
func TestFixtures(t *testing.T) {
	t.Parallel()
	const single = `{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`
	tests := map[string]struct {
		signed    bool
		malformed bool
		verifyErr error  // from Keys.Verify at the fixtures' instant
		webhookID string // of a signed message
		body      string // the request body, signed or not
		users     []string
		ticket    string
	}{
		"queue-unsigned.json": {body: single,
			users: []string{"alice@contoso.com"}, ticket: "INC0012345"},
		"queue-signed.json": {signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
			body: single, users: []string{"alice@contoso.com"}, ticket: "INC0012345"},
		"queue-signed-bulk.json": {signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X",
			body:   `{"upns":["alice@contoso.com","jane_fabrikam.com#EXT#@contoso.onmicrosoft.com","3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"],"ticket":"SIR-42"}`,
			users:  []string{"alice@contoso.com", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"},
			ticket: "SIR-42"},
		"queue-bad-signature.json": {signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4Y",
			body: single, verifyErr: webhook.ErrSignature},
		"queue-last-attempt.json": {signed: true, webhookID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4Z",
			body: single, users: []string{"alice@contoso.com"}, ticket: "INC0012345"},
		"queue-not-json.json": {malformed: true, body: "revoke alice@contoso.com please"},
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
			inv := struct{ Message []byte }{mustFixtureMessage(t, name)}
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
	env, _, err := queue.ParseMessage(mustFixtureMessage(t, "queue-signed.json"))
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
