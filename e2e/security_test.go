package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// The findings of a security review (nothing lost, nothing reversible), each against the built
// binary: real Azurite for the queue and the state, requests signed by the npm implementation or
// Entra tokens from a fake tenant.

// secondSecret is the suite's second Standard Webhooks secret (24 bytes once decoded), for
// callers identified as webhook:1.
const secondSecret = "whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcw=="

const (
	entraTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	entraAPI    = "api://entra-revoke"
	logicAppA   = "5f3c1d2e-0000-4000-8000-00000000000a"
	logicAppB   = "5f3c1d2e-0000-4000-8000-00000000000b"
)

// entraEnv accepts Entra tokens from iss besides the webhook secrets (the first of which signs
// what the handler enqueues).
func entraEnv(env map[string]string, iss *entratest.Issuer) {
	env["WEBHOOK_SECRETS"] = secret + "," + secondSecret
	env["ENTRA_TENANT_ID"] = entraTenant
	env["ENTRA_AUDIENCE"] = entraAPI
	env["ENTRA_OPENID_CONFIG_URL"] = iss.ConfigURL()
}

// tokenPost posts body as the Entra client with an Idempotency-Key, waiting for the handler to
// have loaded the tenant's keys.
func tokenPost(t *testing.T, p *proc, iss *entratest.Issuer, client, key string, body []byte, async bool) (int, http.Header, []byte) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key}}
	if async {
		h.Set("Prefer", "respond-async")
	}
	var status int
	var hdr http.Header
	var b []byte
	testenv.Eventually(10*time.Second, func() bool {
		h.Set("Authorization", "Bearer "+iss.Token(entratest.V2, entraAPI, client, "Sessions.Revoke"))
		status, hdr, b = post(t, p.URL+"/api/revoke", h, body)
		return status != http.StatusUnauthorized
	})
	return status, hdr, b
}

// takeAll dequeues every message of queue, with the host's message ids.
func takeAll(t *testing.T, conn, queue string, n int) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for range n {
		text, id := dequeue(t, conn, queue)
		out[string(text)] = [2]string{string(text), id}
	}
	return out
}

// find returns the message whose text contains fragment.
func find(t *testing.T, msgs map[string][2]string, fragment string) ([]byte, string) {
	t.Helper()
	for text, m := range msgs {
		if strings.Contains(text, fragment) {
			return []byte(m[0]), m[1]
		}
	}
	t.Fatalf("no queued message mentions %s", fragment)
	return nil, ""
}

// Two Logic Apps both use ticket numbers as Idempotency-Key: CHG0042 from each is its own request,
// its own message, and neither is lost to the other — not as "already completed", and not by
// inheriting the other's finished users. The final outcomes name each original caller.
func TestSameRequestIDFromTwoCallersLosesNobody(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	iss := entratest.NewIssuer(t, entraTenant)
	id, g := tenant(t)
	g.AddUser(graphtest.User{ID: "5b1f0c3e-3333-4c1e-9f2a-6b5d4c3e2f1a", UPN: "bob@contoso.com", UserType: "Member"})
	env := sharedEnv(t, az, id, g, "lost")
	entraEnv(env, iss)
	ps := instances(t, env, 2)

	if status, _, b := tokenPost(t, ps[0], iss, logicAppA, "CHG0042", []byte(`{"upns":["alice@contoso.com","bob@contoso.com"]}`), true); status != http.StatusAccepted {
		t.Fatalf("client A, CHG0042 = %d %s; want 202 queued", status, b)
	}
	if status, _, b := tokenPost(t, ps[1], iss, logicAppB, "CHG0042", []byte(`{"upns":["o'brien@contoso.com","`+guest+`"]}`), true); status != http.StatusAccepted {
		t.Fatalf("client B, CHG0042 = %d %s; want 202 queued (another caller's id)", status, b)
	}
	msgs := takeAll(t, az.ConnectionString, env["REVOKE_QUEUE"], 2)
	aText, aID := find(t, msgs, "alice@contoso.com")
	bText, bID := find(t, msgs, "o'brien@contoso.com")

	// A's first delivery leaves bob unfinished; B's message must not inherit alice's outcome.
	g.Script("bob@contoso.com", graphtest.Response{Method: http.MethodPost, Status: http.StatusInternalServerError})
	if status := redeliver(t, ps[0], aText, aID, 1); status < 300 {
		t.Errorf("A's message with bob failing = %d; want non-2xx so the host retries", status)
	}
	if status := redeliver(t, ps[1], bText, bID, 1); status != http.StatusOK {
		t.Errorf("B's message = %d; want 200", status)
	}
	if status := redeliver(t, ps[1], aText, aID, 2); status != http.StatusOK {
		t.Errorf("A's message, second delivery on the other instance = %d; want 200", status)
	}
	if status := redeliver(t, ps[0], bText, bID, 2); status != http.StatusOK {
		t.Errorf("B's message delivered again = %d; want 200, already completed", status)
	}
	mustOnce(t, g, 1, "alice@contoso.com", "bob@contoso.com", "o'brien@contoso.com", guest)

	both := func() string { return ps[0].Stdout.String() + ps[1].Stdout.String() }
	linesSoon(both, 4, `"trigger":"queue"`, `"status":"revoked"`)
	out := both()
	for user, client := range map[string]string{"alice@contoso.com": logicAppA, "bob@contoso.com": logicAppA, "o'brien@contoso.com": logicAppB, guest: logicAppB} {
		got := lines(out, `"trigger":"queue"`, `"status":"revoked"`, `"requestId":"CHG0042"`, `"caller":"entra:`+client+`"`, user)
		if len(got) != 1 {
			t.Errorf("final queue outcome of %s by entra:%s under CHG0042: %d lines; want 1:\n%s", user, client, len(got), out)
		}
	}
	if got := lines(out, `"trigger":"queue"`, `"caller":"webhook:0"`); len(got) != 0 {
		t.Errorf("queue outcomes name webhook:0, the handler's own signing key:\n%s", strings.Join(got, "\n"))
	}
}

// A webhook sender signing with the second secret is webhook:1 through the queue too.
func TestDeferredOutcomeNamesTheWebhookKey(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	env := sharedEnv(t, az, id, g, "key1")
	env["WEBHOOK_SECRETS"] = secret + "," + secondSecret
	p := instances(t, env, 1)[0]
	body := []byte(`{"upn":"alice@contoso.com"}`)
	h := testenv.NodeSign(t, secondSecret, "msg_key1", time.Now(), body)
	h.Set("Content-Type", "application/json")
	h.Set("Prefer", "respond-async")
	if status, _, b := post(t, p.URL+"/api/revoke", h, body); status != http.StatusAccepted {
		t.Fatalf("respond-async = %d %s", status, b)
	}
	if status, _, _ := deliver(t, p, az.ConnectionString, env["REVOKE_QUEUE"], 1); status != http.StatusOK {
		t.Fatalf("delivery = %d", status)
	}
	if got := linesSoon(p.Stdout.String, 1, `"trigger":"queue"`, `"status":"revoked"`, `"caller":"webhook:1"`, `"requestId":"msg_key1"`); len(got) != 1 {
		t.Errorf("queue outcome lines naming webhook:1 and msg_key1 = %d; want 1:\n%s", len(got), p.Stdout)
	}
}

// A guard rail's lookup that Graph throttles or fails is deferred (or answered 429/503 without
// storage), never turned into a final denial; only a refused lookup is denied.
func TestLookupOutagesAreNotRefusals(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	env := sharedEnv(t, az, id, g, "lookup")
	env["PROTECTED_USERS"] = "breakglass@contoso.com" // by UPN: a request by object ID needs a lookup
	p := instances(t, env, 1)[0]
	plain := handlerEnv(t, id, g)
	plain["PROTECTED_USERS"] = env["PROTECTED_USERS"]
	noStorage := startHandler(t, plain)

	body := []byte(`{"upn":"` + aliceID + `"}`)
	lookupFails := func(r graphtest.Response) {
		r.Method = http.MethodGet
		g.Script(aliceID, r)
	}
	tests := []struct {
		name   string
		p      *proc
		fail   graphtest.Response
		want   int
		status string
	}{
		{"throttled, with storage", p, graphtest.TooManyRequests("120"), http.StatusAccepted, "queued"},
		{"5xx, with storage", p, graphtest.Response{Status: http.StatusInternalServerError}, http.StatusAccepted, "queued"},
		{"throttled, without storage", noStorage, graphtest.TooManyRequests("120"), http.StatusTooManyRequests, "throttled"},
		{"5xx, without storage", noStorage, graphtest.Response{Status: http.StatusInternalServerError}, http.StatusServiceUnavailable, "failed"},
	}
	for i, tt := range tests {
		lookupFails(tt.fail)
		status, _, b := goPost(t, tt.p, "msg_lookup_"+string(rune('a'+i)), body)
		if status != tt.want || decode(t, b).Results[0].Status != tt.status {
			t.Errorf("%s: %d %s; want %d %s", tt.name, status, b, tt.want, tt.status)
		}
	}
	mustOnce(t, g, 0, "alice@contoso.com")
	// The deferred ones are revoked once Graph answers the lookup.
	for range 2 {
		if status, _, _ := deliver(t, p, az.ConnectionString, env["REVOKE_QUEUE"], 1); status != http.StatusOK {
			t.Errorf("delivery after Graph recovered = %d; want 200", status)
		}
	}
	mustOnce(t, g, 2, "alice@contoso.com")

	// A refused lookup is a denial: final, not queued.
	g.RefuseLookups(true)
	status, _, b := goPost(t, p, "msg_lookup_refused", body)
	if status != http.StatusForbidden || decode(t, b).Results[0].Status != "denied" {
		t.Errorf("refused lookup = %d %s; want 403 denied", status, b)
	}
	mustOnce(t, g, 2, "alice@contoso.com")
}

// On the last delivery a failed outcome is final and the message is copied to the poison queue;
// when that copy fails, the invocation fails, so that the host poisons the message itself.
func TestLastDeliveryPoisonCopyFailure(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["AzureWebJobsStorage"] = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testenv.AzuriteKey + ";QueueEndpoint=http://127.0.0.1:" + freePort(t) + "/devstoreaccount1;"
	env["STATE_STORE"] = "memory"
	p := startHandler(t, env)

	keys, err := webhook.ParseSecrets([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	text, err := (&queue.Deferrer{Keys: keys}).Message(revoke.Deferral{Meta: revoke.Meta{RequestID: "msg_last", Caller: "webhook:0"}, Users: []string{"alice@contoso.com"}})
	if err != nil {
		t.Fatal(err)
	}
	g.Script("alice@contoso.com", graphtest.Response{Method: http.MethodPost, Status: http.StatusInternalServerError})
	status := redeliver(t, p, text, "52d53c5f-e212-487e-998b-abbe3b9d51e4", 5)
	if status < 300 {
		t.Errorf("last delivery whose poison copy failed = %d; want non-2xx so the host poisons the message", status)
	}
	if got := linesSoon(p.Stdout.String, 1, `"status":"failed"`, `"trigger":"queue"`, `"requestId":"msg_last"`); len(got) != 1 {
		t.Errorf("final failed outcome lines = %d; want 1:\n%s", len(got), p.Stdout)
	}
}

// clientIp of WebhookRejected is the address the platform appended to X-Forwarded-For, never the
// caller's own first entry.
func TestRejectedCallerIPIsThePlatformsAddress(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	p := startHandler(t, handlerEnv(t, id, g))
	body := []byte(`{"upn":"alice@contoso.com"}`)
	h := signedHeaders(t, "msg_forged", []byte(`{"upn":"mallory@contoso.com"}`))
	h.Set("X-Forwarded-For", "198.51.100.66, 203.0.113.9:51234")
	if status, _, b := post(t, p.URL+"/api/revoke", h, body); status != http.StatusUnauthorized {
		t.Fatalf("forged signature = %d %s; want 401", status, b)
	}
	var got []string
	waitFor(t, 10*time.Second, "the rejection's line", func() bool {
		got = lines(p.Stdout.String(), "bad_signature")
		return len(got) > 0
	})
	if len(got) != 1 || !strings.Contains(got[0], `"clientIp":"203.0.113.9"`) || strings.Contains(got[0], "198.51.100.66") {
		t.Errorf("rejection lines %q; want clientIp 203.0.113.9 (the platform's entry), never the caller's", got)
	}
}

// Only the handler writes a deferred request's origin: an HTTP request naming one is refused, and
// an unsigned queue message carrying one is poisoned, so nobody can borrow another caller's name
// or status link.
func TestOriginOnlyFromTheHandler(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	env := sharedEnv(t, az, id, g, "origin")
	env["QUEUE_ALLOW_UNSIGNED"] = "true"
	p := instances(t, env, 1)[0]
	body := []byte(`{"upn":"alice@contoso.com","deferred":{"requestId":"CHG0042","caller":"entra:` + logicAppA + `"}}`)
	status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_origin", body), body)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	if status != http.StatusBadRequest || e.Error.Code != "invalid_request" {
		t.Errorf("HTTP request with an origin = %d %s; want 400 invalid_request", status, b)
	}
	if status := redeliver(t, p, body, "6f0e1c1e-0000-4000-8000-0000000000d1", 1); status != http.StatusOK {
		t.Errorf("unsigned message with an origin = %d; want 200, poisoned", status)
	}
	if kept, _ := dequeue(t, az.ConnectionString, env["REVOKE_QUEUE"]+"-poison"); string(kept) != string(body) {
		t.Errorf("poison copy = %s; want the message", kept)
	}
	mustOnce(t, g, 0, "alice@contoso.com")
}
