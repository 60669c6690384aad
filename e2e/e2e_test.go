package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// secret is this suite's Standard Webhooks secret; signatures come from the npm package.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

const (
	aliceID = "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"
	guest   = "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"
)

// tenant starts the identity endpoint and a Graph with a small directory.
func tenant(t *testing.T) (*graphtest.Identity, *graphtest.Graph) {
	t.Helper()
	id := graphtest.NewIdentity(t)
	g := graphtest.NewGraph(t)
	g.AddUser(
		graphtest.User{ID: aliceID, UPN: "alice@contoso.com", UserType: "Member"},
		graphtest.User{ID: "7d2c9b1a-1111-4c1e-9f2a-6b5d4c3e2f1a", UPN: guest, UserType: "Guest"},
		graphtest.User{ID: "9e8d7c6b-2222-4c1e-9f2a-6b5d4c3e2f1a", UPN: "o'brien@contoso.com", UserType: "Member"},
	)
	return id, g
}

// handlerEnv is the settings of a Function App pointed at the fakes.
func handlerEnv(t *testing.T, id *graphtest.Identity, g *graphtest.Graph) map[string]string {
	env := baseEnv(t)
	env["WEBHOOK_SECRETS"] = secret
	env["GRAPH_BASE_URL"] = g.URL()
	env["IDENTITY_ENDPOINT"] = id.URL()
	env["IDENTITY_HEADER"] = id.Secret()
	return env
}

// signedHeaders signs body with the independent npm implementation.
func signedHeaders(t *testing.T, msgID string, body []byte) http.Header {
	t.Helper()
	h := testenv.NodeSign(t, secret, msgID, time.Now(), body)
	h.Set("Content-Type", "application/json")
	h.Set("X-Azure-Functions-InvocationId", "e2e-"+msgID)
	return h
}

type result struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Results []struct {
		UPN            string `json:"upn"`
		Status         string `json:"status"`
		GraphRequestID string `json:"graphRequestId"`
		RevokedAt      string `json:"revokedAt"`
		Error          *struct {
			Code string `json:"code"`
		} `json:"error"`
	} `json:"results"`
}

func decode(t *testing.T, b []byte) result {
	t.Helper()
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return r
}

func TestSignedRequestRevokesThroughGraph(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	p := startHandler(t, handlerEnv(t, id, g))

	body := []byte(`{"upns":["alice@contoso.com","` + guest + `","o'brien@contoso.com"],"ticket":"INC0012345","reason":"Lost phone"}`)
	status, hdr, resp := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_e2e_1", body), body)
	if status != http.StatusOK {
		t.Fatalf("status = %d %s; want 200", status, resp)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	r := decode(t, resp)
	if r.ID != "msg_e2e_1" || r.Status != "revoked" || len(r.Results) != 3 || r.Results[1].UPN != guest {
		t.Fatalf("response = %s; want three users revoked in input order", resp)
	}
	for _, u := range r.Results {
		if u.GraphRequestID == "" || u.RevokedAt == "" {
			t.Errorf("result %+v; want Graph's request id and revokedAt", u)
		}
	}

	var sawGuest bool
	for _, rq := range g.Requests() {
		if rq.Authorization != "Bearer "+id.Token() {
			t.Errorf("Graph request %s %s Authorization = %q; want the managed identity's token", rq.Method, rq.RawPath, rq.Authorization)
		}
		if rq.User == guest {
			sawGuest = true
			if !strings.Contains(rq.RawPath, "jane_fabrikam.com%23EXT%23") {
				t.Errorf("guest path = %s; want # sent as %%23", rq.RawPath)
			}
		}
	}
	if !sawGuest || g.Revocations("o'brien@contoso.com") != 1 {
		t.Errorf("Graph saw guest=%v, o'brien revoked %d times; want both reached intact", sawGuest, g.Revocations("o'brien@contoso.com"))
	}
	for _, rq := range id.Requests() {
		if !rq.HeaderOK || !strings.HasPrefix(rq.Resource, "http://127.0.0.1:") {
			t.Errorf("identity request %+v; want the identity header and a resource from GRAPH_BASE_URL's host", rq)
		}
	}

	// The caller's retry with the same webhook-id replays without a second Graph call.
	status, hdr, again := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_e2e_1", body), body)
	if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || string(again) != string(resp) {
		t.Errorf("replay = %d replayed=%q; want the first response again", status, hdr.Get("Idempotent-Replayed"))
	}
	if n := g.Revocations("alice@contoso.com"); n != 1 {
		t.Errorf("alice revoked %d times; want exactly 1 after a replay", n)
	}
	if got := lines(p.Stdout.String(), `"status":"revoked"`, `INC0012345`); len(got) != 3 {
		t.Errorf("stdout outcome lines = %d; want one JSON line per user:\n%s", len(got), p.Stdout)
	}

	// Unknown user, bad signature and bad input, as the host forwards them.
	one := []byte(`{"upn":"ghost@contoso.com"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_e2e_2", one), one); status != http.StatusNotFound || decode(t, b).Results[0].Status != "not_found" {
		t.Errorf("unknown user = %d %s; want 404 not_found", status, b)
	}
	forged := signedHeaders(t, "msg_e2e_3", one)
	if status, _, b := post(t, p.URL+"/api/revoke", forged, []byte(`{"upn":"alice@contoso.com"}`)); status != http.StatusUnauthorized {
		t.Errorf("altered body = %d %s; want 401", status, b)
	}
	bad := []byte(`{"upn":"alice@contoso.com/../admin"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_e2e_4", bad), bad); status != http.StatusBadRequest {
		t.Errorf("invalid UPN = %d %s; want 400", status, b)
	}
	if n := g.Revocations("alice@contoso.com"); n != 1 {
		t.Errorf("alice revoked %d times; rejected requests must not reach Graph", n)
	}
}

func TestGraphFailuresWithoutStorage(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	p := startHandler(t, handlerEnv(t, id, g))
	g.Script("alice@contoso.com", graphtest.TooManyRequests("1"), graphtest.OK())
	body := []byte(`{"upn":"alice@contoso.com"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_retry_1", body), body); status != 200 {
		t.Errorf("429 then 200 = %d %s; want the retry to succeed", status, b)
	}
	g.Script("o'brien@contoso.com", graphtest.Response{Status: 500}, graphtest.Response{Status: 500})
	one := []byte(`{"upn":"o'brien@contoso.com"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_retry_2", one), one); status != http.StatusServiceUnavailable {
		t.Errorf("Graph 500 = %d %s; want 503 failed", status, b)
	}
	g.Script(guest, graphtest.Forbidden())
	two := []byte(`{"upn":"` + guest + `"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_retry_3", two), two); status != http.StatusForbidden || decode(t, b).Results[0].Error.Code != "Authorization_RequestDenied" {
		t.Errorf("Graph 403 = %d %s; want 403 denied with Graph's code", status, b)
	}
}

func dequeue(t *testing.T, conn, queue string) (text []byte, id string) {
	t.Helper()
	svc, err := azqueue.NewServiceClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := svc.NewQueueClient(queue).DequeueMessage(ctx, nil)
	if err != nil {
		t.Fatalf("dequeue %s: %v", queue, err)
	}
	if len(resp.Messages) != 1 {
		t.Fatalf("queue %s holds %d messages; want 1", queue, len(resp.Messages))
	}
	m := resp.Messages[0]
	raw, err := base64.StdEncoding.DecodeString(*m.MessageText)
	if err != nil {
		t.Fatalf("message is not base64 as the Functions queue trigger expects: %v", err)
	}
	return raw, *m.MessageID
}

func TestDeferralThroughAzurite(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["AzureWebJobsStorage"] = az.ConnectionString
	env["REVOKE_QUEUE"] = "e2e-deferral"
	p := startHandler(t, env)

	// Graph is down: the request is queued instead of failing, signed as docs/custom-handler.md describes.
	g.Script("alice@contoso.com", graphtest.Response{Status: 500})
	body := []byte(`{"upn":"alice@contoso.com","ticket":"INC42"}`)
	status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_defer_1", body), body)
	if status != http.StatusAccepted || decode(t, b).Results[0].Status != "queued" {
		t.Fatalf("Graph down = %d %s; want 202 queued", status, b)
	}
	text, qid := dequeue(t, az.ConnectionString, "e2e-deferral")
	var env4 struct {
		ID        string `json:"webhook-id"`
		Timestamp string `json:"webhook-timestamp"`
		Signature string `json:"webhook-signature"`
		Body      string `json:"body"`
	}
	if err := json.Unmarshal(text, &env4); err != nil {
		t.Fatalf("queued message %s: %v", text, err)
	}
	h := http.Header{}
	h.Set("webhook-id", env4.ID)
	h.Set("webhook-timestamp", env4.Timestamp)
	h.Set("webhook-signature", env4.Signature)
	if err := testenv.NodeVerify(t, secret, h, []byte(env4.Body)); err != nil {
		t.Fatalf("independent verifier refused the queued envelope: %v", err)
	}
	if !strings.Contains(env4.Body, `"alice@contoso.com"`) || !strings.Contains(env4.Body, `"INC42"`) {
		t.Errorf("queued body = %s; want the user and ticket", env4.Body)
	}

	// The queue trigger finishes the work once Graph is back.
	before := g.Revocations("alice@contoso.com")
	status, _, b = post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", text, qid, 1))
	if status != http.StatusOK || !strings.Contains(string(b), `"Outputs":{}`) {
		t.Fatalf("queue invocation = %d %s; want 200 with the host reply", status, b)
	}
	if g.Revocations("alice@contoso.com") != before+1 {
		t.Errorf("alice revocations %d -> %d; want the queued request revoked", before, g.Revocations("alice@contoso.com"))
	}

	// Prefer: respond-async queues at once without touching Graph.
	async := []byte(`{"upns":["o'brien@contoso.com","` + guest + `"]}`)
	h2 := signedHeaders(t, "msg_defer_2", async)
	h2.Set("Prefer", "respond-async")
	if status, _, b := post(t, p.URL+"/api/revoke", h2, async); status != http.StatusAccepted || decode(t, b).Status != "queued" {
		t.Errorf("respond-async = %d %s; want 202 queued", status, b)
	}
	if g.Revocations("o'brien@contoso.com") != 0 {
		t.Errorf("respond-async reached Graph")
	}
	text2, _ := dequeue(t, az.ConnectionString, "e2e-deferral")
	if !strings.Contains(string(text2), `msg_defer_2`) {
		t.Errorf("async message = %s; want the request id", text2)
	}

	// Graph stays down for a queued user: each delivery fails so the host retries, and the last
	// one records the final outcome, completes the message and keeps a copy for replay.
	g.Script(guest, graphtest.Response{Status: 500}, graphtest.Response{Status: 500}, graphtest.Response{Status: 500})
	gb := []byte(`{"upn":"` + guest + `"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_defer_3", gb), gb); status != http.StatusAccepted {
		t.Fatalf("guest with Graph down = %d %s; want 202 queued", status, b)
	}
	gtext, gqid := dequeue(t, az.ConnectionString, "e2e-deferral")
	if status, _, b := post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", gtext, gqid, 1)); status < 300 {
		t.Errorf("delivery 1 with Graph down = %d %s; want non-2xx so the host retries", status, b)
	}
	if status, _, b := post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", gtext, gqid, 5)); status != http.StatusOK {
		t.Errorf("last delivery = %d %s; want 200: the outcome is final", status, b)
	}
	if kept, _ := dequeue(t, az.ConnectionString, "e2e-deferral-poison"); string(kept) != string(gtext) {
		t.Errorf("poison copy after the last delivery = %s; want the message unchanged", kept)
	}
	if got := lines(p.Stdout.String(), `"status":"failed"`, `"trigger":"queue"`, `"dequeueCount":"5"`); len(got) != 1 {
		t.Errorf("final failed outcome lines = %d; want exactly one, at the last delivery:\n%s", len(got), p.Stdout)
	}

	// A message that can never succeed is copied unchanged to the poison queue and completed.
	status, _, _ = post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", []byte("revoke alice please"), "poison-1", 1))
	if status != http.StatusOK {
		t.Fatalf("poison invocation = %d; want 200", status)
	}
	if poisoned, _ := dequeue(t, az.ConnectionString, "e2e-deferral-poison"); string(poisoned) != "revoke alice please" {
		t.Errorf("poison copy = %q; want the message unchanged", poisoned)
	}
}

func TestEnqueueFailureIs503(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	dead := freePort(t)
	env["AzureWebJobsStorage"] = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:" + dead + "/devstoreaccount1;"
	p := startHandler(t, env)
	body := []byte(`{"upn":"alice@contoso.com"}`)
	h := signedHeaders(t, "msg_dead_1", body)
	h.Set("Prefer", "respond-async")
	if status, _, b := post(t, p.URL+"/api/revoke", h, body); status != http.StatusServiceUnavailable {
		t.Errorf("enqueue to a dead queue = %d %s; want 503, never a silent drop", status, b)
	}
}

func TestEntraTokenCallers(t *testing.T) {
	t.Parallel()
	const tenantID, api, logicApp = "72f988bf-86f1-41af-91ab-2d7cd011db47", "api://entra-revoke", "5f3c1d2e-0000-4000-8000-000000000001"
	iss := entratest.NewIssuer(t, tenantID)
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	delete(env, "WEBHOOK_SECRETS")
	env["ENTRA_TENANT_ID"] = tenantID
	env["ENTRA_AUDIENCE"] = api
	env["ENTRA_OPENID_CONFIG_URL"] = iss.ConfigURL()
	p := startHandler(t, env)

	body := []byte(`{"upn":"alice@contoso.com"}`)
	send := func(token, key string) (int, http.Header, []byte) {
		h := http.Header{"Content-Type": {"application/json"}}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			h.Set("Idempotency-Key", key)
		}
		return post(t, p.URL+"/api/revoke", h, body)
	}
	var status int
	var b []byte
	if !testenv.Eventually(10*time.Second, func() bool {
		status, _, b = send(iss.Token(entratest.V2, api, logicApp, "Sessions.Revoke"), "incident-7-entity-1")
		return status == http.StatusOK
	}) {
		t.Fatalf("valid token = %d %s; want 200 once keys load", status, b)
	}
	if status, hdr, _ := send(iss.Token(entratest.V1, api, logicApp, "Sessions.Revoke"), "incident-7-entity-1"); status != 200 || hdr.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Logic Apps retry with the same Idempotency-Key = %d replayed=%q; want a replay", status, hdr.Get("Idempotent-Replayed"))
	}
	if n := g.Revocations("alice@contoso.com"); n != 1 {
		t.Errorf("alice revoked %d times; want 1", n)
	}
	if status, _, _ := send(iss.Token(entratest.V2, api, logicApp), ""); status != http.StatusForbidden {
		t.Errorf("token without the role = %d; want 403", status)
	}
	status, hdr, _ := send("", "")
	if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token = %d WWW-Authenticate=%q; want 401 with a Bearer challenge", status, hdr.Get("WWW-Authenticate"))
	}
	if got := lines(p.Stdout.String(), `entra:`+logicApp); len(got) == 0 {
		t.Errorf("stdout has no outcome with caller entra:%s", logicApp)
	}
}

func TestEntraUnreachableAtStartKeepsWebhooksWorking(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["ENTRA_TENANT_ID"] = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	env["ENTRA_AUDIENCE"] = "api://entra-revoke"
	env["ENTRA_OPENID_CONFIG_URL"] = "http://127.0.0.1:" + freePort(t) + "/v2.0/.well-known/openid-configuration"
	start := time.Now()
	p := startHandler(t, env)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("readiness took %s with Entra unreachable; want it not to wait for Entra", took)
	}
	body := []byte(`{"upn":"alice@contoso.com"}`)
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"}}
	if status, _, _ := post(t, p.URL+"/api/revoke", h, body); status != http.StatusUnauthorized {
		t.Errorf("token while keys are missing = %d; want 401", status)
	}
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_entra_down", body), body); status != http.StatusOK {
		t.Errorf("webhook caller = %d %s; want 200 regardless of Entra", status, b)
	}
}

func TestSIGTERMFinishesFlushesAndExitsZero(t *testing.T) {
	t.Parallel()
	in := testenv.NewIngestion(t)
	id, g := tenant(t)
	g.SetLatency(500 * time.Millisecond)
	env := handlerEnv(t, id, g)
	env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
	p := startHandler(t, env)

	body := []byte(`{"upn":"alice@contoso.com"}`)
	h := signedHeaders(t, "msg_sigterm", body)
	done := make(chan int, 1)
	go func() {
		status, _, _ := post(t, p.URL+"/api/revoke", h, body)
		done <- status
	}()
	waitFor(t, 20*time.Second, "the request to reach Graph", func() bool { return len(g.Requests()) > 0 })
	p.terminate(t)
	if code := p.exitCode(t, 12*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d; want 0", code)
	}
	if status := <-done; status != http.StatusOK {
		t.Errorf("in-flight request = %d; want it finished with 200", status)
	}
	if !in.Has("EventData:SessionRevocation") || !in.Has("RemoteDependencyData:POST /users/{id}/revokeSignInSessions") {
		t.Errorf("ingestion received %v; want the outcome event and the Graph dependency flushed at shutdown", in.Names())
	}
}

func TestInvalidSettingsExitTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		mention string
	}{
		{"nobody can authenticate", map[string]string{}, "WEBHOOK_SECRETS"},
		{"bad duration", map[string]string{"WEBHOOK_SECRETS": secret, "WEBHOOK_TOLERANCE": "five minutes"}, "WEBHOOK_TOLERANCE"},
		{"negative rate", map[string]string{"WEBHOOK_SECRETS": secret, "MAX_REVOCATIONS_PER_MINUTE": "-1"}, "MAX_REVOCATIONS_PER_MINUTE"},
		{"malformed connection string", map[string]string{"WEBHOOK_SECRETS": secret, "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=not-a-key-SECRETVALUE;IngestionEndpoint=ftp://x"}, "APPLICATIONINSIGHTS_CONNECTION_STRING"},
		{"empty secret", map[string]string{"WEBHOOK_SECRETS": "whsec_"}, "WEBHOOK_SECRETS"},
		// Standard Webhooks keys are 24 to 64 bytes; "sixteen-byte-key" is 16.
		{"short webhook key", map[string]string{"WEBHOOK_SECRETS": "whsec_c2l4dGVlbi1ieXRlLWtleQ=="}, "WEBHOOK_SECRETS"},
		{"redaction without a salt", map[string]string{"WEBHOOK_SECRETS": secret, "TELEMETRY_REDACT_UPN": "true"}, "TELEMETRY_UPN_SALT"},
		{"short salt", map[string]string{"WEBHOOK_SECRETS": secret, "TELEMETRY_REDACT_UPN": "true", "TELEMETRY_UPN_SALT": "SECRETVALUE"}, "TELEMETRY_UPN_SALT"},
		// No host.json beside the test binary and no host setting: the host's default of 5 holds.
		{"retired MAX_DEQUEUE_COUNT that disagrees", map[string]string{"WEBHOOK_SECRETS": secret, "MAX_DEQUEUE_COUNT": "3"}, "MAX_DEQUEUE_COUNT"},
		{"host setting and MAX_DEQUEUE_COUNT disagree", map[string]string{"WEBHOOK_SECRETS": secret, "MAX_DEQUEUE_COUNT": "5",
			"AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "7"}, "MAX_DEQUEUE_COUNT"},
		// Outside the Functions host the handler listens beyond loopback: unsigned messages would
		// be an open door.
		{"unsigned queue messages off the host", map[string]string{"WEBHOOK_SECRETS": secret, "QUEUE_ALLOW_UNSIGNED": "true"}, "QUEUE_ALLOW_UNSIGNED"},
		{"state store misspelt", map[string]string{"WEBHOOK_SECRETS": secret, "STATE_STORE": "tables"}, "STATE_STORE"},
		{"public base URL in clear text", map[string]string{"WEBHOOK_SECRETS": secret, "PUBLIC_BASE_URL": "http://revoke.contoso.com"}, "PUBLIC_BASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t)
			for k, v := range tt.env {
				env[k] = v
			}
			p := run(t, env)
			if code := p.exitCode(t, 10*time.Second); code != 2 {
				t.Fatalf("exit code = %d; want 2", code)
			}
			stderr := strings.TrimSpace(p.Stderr.String())
			if strings.Count(stderr, "\n") != 0 || !strings.Contains(stderr, tt.mention) {
				t.Errorf("stderr = %q; want one line naming %s", stderr, tt.mention)
			}
			for _, v := range tt.env {
				if strings.Contains(v, "SECRETVALUE") && strings.Contains(stderr+p.Stdout.String(), "SECRETVALUE") {
					t.Errorf("output repeats a secret value: %q", stderr)
				}
			}
			if strings.Contains(p.Stdout.String()+stderr, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Errorf("output contains the webhook secret")
			}
		})
	}
}

// SIGTERM while Graph hangs: the in-flight request is aborted before the shutdown budget ends and
// still answered — queued with storage, 503 without — and the process exits 0 in time.
func TestSIGTERMWithGraphHanging(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	tests := []struct {
		name    string
		storage bool
		want    int
	}{
		{"with storage the request is queued", true, http.StatusAccepted},
		{"without storage the caller gets a clear error", false, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, g := tenant(t)
			g.SetLatency(time.Minute)
			env := handlerEnv(t, id, g)
			if tt.storage {
				env["AzureWebJobsStorage"] = az.ConnectionString
				env["REVOKE_QUEUE"] = "e2e-sigterm"
			}
			p := startHandler(t, env)
			body := []byte(`{"upn":"alice@contoso.com"}`)
			h := signedHeaders(t, "msg_hang", body)
			done := make(chan int, 1)
			go func() {
				status, _, _ := post(t, p.URL+"/api/revoke", h, body)
				done <- status
			}()
			waitFor(t, 20*time.Second, "the request to reach Graph", func() bool { return len(g.Requests()) > 0 })
			start := time.Now()
			p.terminate(t)
			if code := p.exitCode(t, 15*time.Second); code != 0 {
				t.Errorf("exit code = %d; want 0", code)
			}
			if took := time.Since(start); took > 11*time.Second {
				t.Errorf("shutdown took %s; want within the 10 s budget", took)
			}
			select {
			case status := <-done:
				if status != tt.want {
					t.Errorf("in-flight request = %d; want %d", status, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("in-flight request got no answer")
			}
			if tt.storage {
				if text, _ := dequeue(t, az.ConnectionString, "e2e-sigterm"); !strings.Contains(string(text), "alice@contoso.com") {
					t.Errorf("queued message = %s; want alice", text)
				}
			}
		})
	}
}
