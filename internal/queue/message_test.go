package queue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// TestSealMatchesFixture checks that Seal writes exactly the message the fixtures hold: same
// field order, same signature, same escaping.
func TestSealMatchesFixture(t *testing.T) {
	t.Parallel()
	inv := struct{ Message []byte }{mustFixtureMessage(t, "queue-signed.json")}
	body := []byte(`{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`)
	got, err := queue.Seal(mustKeys(t, fixtureSecret), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", fixtureTime, body)
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	if !bytes.Equal(got, inv.Message) {
		t.Errorf("Seal(%s) =\n%s\nwant the fixture's\n%s", body, got, inv.Message)
	}
}

func TestSealParseVerify(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, fixtureSecret, "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=")
	bodies := []string{
		`{"upn":"alice@contoso.com"}`,
		`{"reason":"<b>&amp;</b> \"quoted\" \\ \u2028 ü"}`, // characters JSON and HTML escaping treat specially
		"not JSON at all",
		"",
	}
	for _, body := range bodies {
		text, err := queue.Seal(keys, "msg_1", fixtureTime, []byte(body))
		if err != nil {
			t.Fatalf("Seal(%q) = %v", body, err)
		}
		env, signed, err := queue.ParseMessage(text)
		if err != nil || !signed {
			t.Fatalf("ParseMessage(Seal(%q)) = signed %v, %v; want signed", body, signed, err)
		}
		if env.Body != body {
			t.Errorf("ParseMessage(Seal(%q)).Body = %q", body, env.Body)
		}
		s, err := keys.Verify(env.Header(), []byte(env.Body), fixtureTime, maxAge, future)
		if err != nil || s.KeyIndex != 0 || s.ID != "msg_1" {
			t.Errorf("Verify(Seal(%q)) = %+v, %v; want signed by key 0 as msg_1", body, s, err)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, fixtureSecret)
	tests := []struct {
		name string
		keys webhook.Keys
		id   string
		at   time.Time
		body []byte
	}{
		{"no secret", webhook.Keys{}, "msg_1", fixtureTime, []byte("{}")},
		{"empty id", keys, "", fixtureTime, []byte("{}")},
		{"id with a space", keys, "msg 1", fixtureTime, []byte("{}")},
		{"id too long", keys, strings.Repeat("a", 257), fixtureTime, []byte("{}")},
		{"id not ASCII", keys, "msg_é", fixtureTime, []byte("{}")},
		{"time before 1970", keys, "msg_1", time.Unix(-1, 0), []byte("{}")},
		{"body not UTF-8", keys, "msg_1", fixtureTime, []byte("{\"a\":\"\xff\"}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, err := queue.Seal(tt.keys, tt.id, tt.at, tt.body); err == nil {
				t.Errorf("Seal(%q, %v, %q) = %s, nil; want an error", tt.id, tt.at, tt.body, got)
			}
		})
	}
}

// TestSealVerifiesWithNode checks Seal against an independent implementation: the
// standardwebhooks npm package accepts what Seal signs.
func TestSealVerifiesWithNode(t *testing.T) {
	t.Parallel()
	body := []byte(`{"upns":["alice@contoso.com","jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"],"reason":"a <b> & \"c\""}`)
	text, err := queue.Seal(mustKeys(t, fixtureSecret), "msg_node", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := queue.ParseMessage(text)
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.NodeVerify(t, fixtureSecret, env.Header(), []byte(env.Body)); err != nil {
		t.Errorf("standardwebhooks rejects Seal's message %s: %v", text, err)
	}
	// And the converse: a tampered body must fail there too, or the check above proves nothing.
	if err := testenv.NodeVerify(t, fixtureSecret, env.Header(), append([]byte(env.Body), ' ')); err == nil {
		t.Errorf("standardwebhooks accepts a tampered body")
	}
}

// TestNodeSignedEnvelope checks the converse: an envelope built from the npm package's signature
// parses and verifies here, with the same signature Seal makes.
func TestNodeSignedEnvelope(t *testing.T) {
	t.Parallel()
	body := []byte(`{"upn":"alice@contoso.com","dryRun":true}`)
	at := time.Now().Truncate(time.Second)
	h := testenv.NodeSign(t, fixtureSecret, "msg_from_node", at, body)
	text, err := json.Marshal(map[string]string{
		"webhook-id": h.Get("webhook-id"), "webhook-timestamp": h.Get("webhook-timestamp"),
		"webhook-signature": h.Get("webhook-signature"), "body": string(body),
	})
	if err != nil {
		t.Fatal(err)
	}
	env, signed, err := queue.ParseMessage(text)
	if err != nil || !signed {
		t.Fatalf("ParseMessage(%s) = signed %v, %v; want signed", text, signed, err)
	}
	keys := mustKeys(t, fixtureSecret)
	if _, err := keys.Verify(env.Header(), []byte(env.Body), at, maxAge, future); err != nil {
		t.Errorf("Verify(node-signed %s) = %v; want nil", text, err)
	}
	sealed, err := queue.Seal(keys, "msg_from_node", at, body)
	if err != nil {
		t.Fatal(err)
	}
	ours, _, _ := queue.ParseMessage(sealed)
	if ours != env {
		t.Errorf("Seal = %+v; standardwebhooks = %+v; want the same", ours, env)
	}
}

func TestParseMessage(t *testing.T) {
	t.Parallel()
	valid := `{"webhook-id":"msg_1","webhook-timestamp":"1763769541","webhook-signature":"v1,abc","body":"{}"}`
	tests := []struct {
		name   string
		text   string
		signed bool
		err    error
		env    queue.Envelope
	}{
		{"envelope", valid, true, nil,
			queue.Envelope{ID: "msg_1", Timestamp: "1763769541", Signature: "v1,abc", Body: "{}"}},
		{"envelope with whitespace", " {\n\"body\" : \"b\", \"webhook-signature\":\"s\",\"webhook-timestamp\":\"t\",\"webhook-id\":\"i\"}\n", true, nil,
			queue.Envelope{ID: "i", Timestamp: "t", Signature: "s", Body: "b"}},
		{"envelope with empty fields", `{"webhook-id":"","webhook-timestamp":"","webhook-signature":"","body":""}`, true, nil,
			queue.Envelope{}},
		{"unsigned request", `{"upn":"alice@contoso.com"}`, false, nil, queue.Envelope{}},
		{"empty object", `{}`, false, nil, queue.Envelope{}},
		{"header names in other case", `{"Webhook-Id":"x","upn":"a@b.c"}`, false, nil, queue.Envelope{}},
		{"empty", ``, false, queue.ErrMalformed, queue.Envelope{}},
		{"not json", `revoke alice@contoso.com please`, false, queue.ErrMalformed, queue.Envelope{}},
		{"array", `[` + valid + `]`, false, queue.ErrMalformed, queue.Envelope{}},
		{"string", `"{}"`, false, queue.ErrMalformed, queue.Envelope{}},
		{"number", `42`, false, queue.ErrMalformed, queue.Envelope{}},
		{"null", `null`, false, queue.ErrMalformed, queue.Envelope{}},
		{"truncated", valid[:len(valid)-1], false, queue.ErrMalformed, queue.Envelope{}},
		{"trailing object", valid + `{}`, false, queue.ErrMalformed, queue.Envelope{}},
		{"trailing garbage", `{"upn":"a@b.c"} x`, false, queue.ErrMalformed, queue.Envelope{}},
		{"not UTF-8", "{\"upn\":\"\xff@b.c\"}", false, queue.ErrMalformed, queue.Envelope{}},
		{"envelope missing body", `{"webhook-id":"msg_1","webhook-timestamp":"1","webhook-signature":"v1,abc"}`, false, queue.ErrMalformed, queue.Envelope{}},
		{"only a signature", `{"webhook-signature":"v1,abc","upn":"a@b.c"}`, false, queue.ErrMalformed, queue.Envelope{}},
		{"envelope with unknown field", strings.TrimSuffix(valid, "}") + `,"upn":"a@b.c"}`, false, queue.ErrMalformed, queue.Envelope{}},
		{"timestamp a number", `{"webhook-id":"msg_1","webhook-timestamp":1763769541,"webhook-signature":"v1,abc","body":"{}"}`, false, queue.ErrMalformed, queue.Envelope{}},
		{"body an object", `{"webhook-id":"msg_1","webhook-timestamp":"1","webhook-signature":"v1,abc","body":{"upn":"a@b.c"}}`, false, queue.ErrMalformed, queue.Envelope{}},
		{"id null", `{"webhook-id":null,"webhook-timestamp":"1","webhook-signature":"v1,abc","body":"{}"}`, false, queue.ErrMalformed, queue.Envelope{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, signed, err := queue.ParseMessage([]byte(tt.text))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) || signed != tt.signed || env != tt.env {
				t.Errorf("ParseMessage(%q) = %+v, %v, %v; want %+v, %v, %v", tt.text, env, signed, err, tt.env, tt.signed, tt.err)
			}
		})
	}
}

func TestEnvelopeHeader(t *testing.T) {
	t.Parallel()
	env := queue.Envelope{ID: "msg_1", Timestamp: "1763769541", Signature: "v1,a v1,b", Body: "{}"}
	h := env.Header()
	want := http.Header{
		"Webhook-Id":        {"msg_1"},
		"Webhook-Timestamp": {strconv.Itoa(1763769541)},
		"Webhook-Signature": {"v1,a v1,b"},
	}
	if len(h) != len(want) {
		t.Fatalf("Header() = %v; want %v", h, want)
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v[0] {
			t.Errorf("Header()[%s] = %q; want %q", k, got, v)
		}
	}
}
