package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
)

// hostInvocation wraps a message text as the Functions host delivers it: the text JSON-encoded
// twice, Metadata.Id and the dequeue count as the host writes them.
func hostInvocation(text []byte, msgID string, dequeueCount int) []byte {
	once, _ := json.Marshal(string(text))
	twice, _ := json.Marshal(string(once))
	id, _ := json.Marshal(`"` + msgID + `"`)
	return []byte(fmt.Sprintf(`{"Data":{"message":%s},"Metadata":{"DequeueCount":"%d","Id":%s,"PopReceipt":"\"AgAAAAMAAAAAAAAA\""}}`, twice, dequeueCount, id))
}

// message seals a deferral exactly as the handler enqueues it.
func (h *harness) message(def revoke.Deferral) []byte {
	h.t.Helper()
	d := &queue.Deferrer{Keys: h.keys, Now: func() time.Time { return fixtureTime }}
	text, err := d.Message(def)
	if err != nil {
		h.t.Fatalf("Message(%+v) = %v", def, err)
	}
	return text
}

func (h *harness) deferred() []revoke.Deferral {
	h.deferrer.mu.Lock()
	defer h.deferrer.mu.Unlock()
	return append([]revoke.Deferral(nil), h.deferrer.got...)
}

func (a *audit) all() []revoke.Outcome {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]revoke.Outcome(nil), a.outcomes...)
}

func (g *graph) count(user string) int {
	n := 0
	for _, u := range g.revoked() {
		if u == user {
			n++
		}
	}
	return n
}

// Two different messages that carry the same request id (a Logic App's ticket number used again,
// or by a second client) are two messages: the second is never skipped as "already completed",
// and a reused Metadata.Id with other content is not the same message either.
func TestQueueDifferentMessagesWithOneRequestIDAreBothRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	alice := h.message(revoke.Deferral{Meta: revoke.Meta{RequestID: "CHG0042", Caller: "entra:client-a"}, Users: []string{"alice@contoso.com"}})
	bob := h.message(revoke.Deferral{Meta: revoke.Meta{RequestID: "CHG0042", Caller: "entra:client-b"}, Users: []string{"bob@contoso.com"}})
	carol := h.message(revoke.Deferral{Meta: revoke.Meta{RequestID: "CHG0042", Caller: "entra:client-a"}, Users: []string{"carol@contoso.com"}})
	for _, inv := range [][]byte{
		hostInvocation(alice, "6f0e1c1e-0000-4000-8000-000000000001", 1),
		hostInvocation(bob, "6f0e1c1e-0000-4000-8000-000000000002", 1),
		hostInvocation(carol, "6f0e1c1e-0000-4000-8000-000000000001", 1), // the same Id, other content
	} {
		if code, rep := h.invoke(inv); code != http.StatusOK {
			t.Fatalf("delivery = %d %v; want 200", code, rep.Logs)
		}
	}
	for _, u := range []string{"alice@contoso.com", "bob@contoso.com", "carol@contoso.com"} {
		if n := h.graph.count(u); n != 1 {
			t.Errorf("%s revoked %d times; want 1: each message is its own", u, n)
		}
	}
	// A redelivery of a completed message is the only thing skipped.
	if code, rep := h.invoke(hostInvocation(bob, "6f0e1c1e-0000-4000-8000-000000000002", 2)); code != http.StatusOK || h.graph.count("bob@contoso.com") != 1 {
		t.Errorf("redelivery of bob's message = %d %v, %d revocations; want 200 and no new call", code, rep.Logs, h.graph.count("bob@contoso.com"))
	}
}

// A deferred request's final outcome names the request and caller it came from, carried inside
// the signed body; the message's own webhook-id is not the request id.
func TestQueueOutcomeNamesTheOriginalCaller(t *testing.T) {
	t.Parallel()
	const client = "5f3c1d2e-0000-4000-8000-000000000001"
	h := newHarness(t, options{storage: true, tokens: tokens{callers: map[string]entraauth.Caller{"good": {ClientID: client, TenantID: "t1"}}}})
	r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(`{"upns":["alice@contoso.com","bob@contoso.com"],"ticket":"CHG0042"}`))
	r.Header.Set("Authorization", "Bearer good")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", "CHG0042")
	r.Header.Set("Prefer", "respond-async")
	if w := h.do(r); w.Code != http.StatusAccepted {
		t.Fatalf("respond-async = %d %s; want 202", w.Code, w.Body)
	}
	defs := h.deferred()
	if len(defs) != 1 {
		t.Fatalf("deferrals = %+v; want one", defs)
	}
	text := h.message(defs[0])
	if !strings.Contains(string(text), `"webhook-id":"msg_`) {
		t.Errorf("message %s; want a webhook-id of its own", text)
	}
	if code, rep := h.invoke(hostInvocation(text, "52d53c5f-e212-487e-998b-abbe3b9d51e4", 1)); code != http.StatusOK {
		t.Fatalf("delivery = %d %v; want 200", code, rep.Logs)
	}
	var out []revoke.Outcome
	for _, o := range h.audit.all() {
		if o.Trigger == revoke.TriggerQueue {
			out = append(out, o)
		}
	}
	if len(out) != 2 {
		t.Fatalf("queue outcomes = %+v; want one per user", out)
	}
	for _, o := range out {
		if o.Caller != "entra:"+client || o.RequestID != "CHG0042" || o.Trigger != revoke.TriggerQueue || o.Status != revoke.StatusRevoked {
			t.Errorf("outcome = caller %q request %q trigger %q status %q; want entra:%s, CHG0042, queue, revoked", o.Caller, o.RequestID, o.Trigger, o.Status, client)
		}
	}
}

// Only the handler writes a request's origin: an HTTP caller naming one is refused, and so is an
// unsigned queue message.
func TestOriginCannotComeFromOutside(t *testing.T) {
	t.Parallel()
	body := `{"upn":"alice@contoso.com","deferred":{"requestId":"CHG0042","caller":"entra:someone-else"}}`
	h := newHarness(t, options{storage: true, allowUnsigned: true})
	w := h.do(h.signed("msg_origin", body))
	if b := decodeBody(t, w); w.Code != http.StatusBadRequest || b.Error == nil || b.Error.Code != "invalid_request" {
		t.Errorf("HTTP body with an origin = %d %s; want 400 invalid_request", w.Code, w.Body)
	}
	if code, _ := h.invoke(hostInvocation([]byte(body), "6f0e1c1e-0000-4000-8000-0000000000aa", 1)); code != http.StatusOK || h.poison.count() != 1 {
		t.Errorf("unsigned message with an origin = %d, %d poison copies; want 200 and poisoned", code, h.poison.count())
	}
	if n := len(h.graph.revoked()); n != 0 || len(h.audit.all()) != 0 {
		t.Errorf("%d revocations, outcomes %+v; want none", n, h.audit.all())
	}
}

// A guard rail's lookup that Graph throttles or fails is deferred like any transient failure,
// never refused.
func TestLookupOutageIsDeferredNotDenied(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		storage bool
		want    int
		status  string
	}{
		{"throttled, with storage", &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, RetryAfter: 2 * time.Second}, true, 202, "queued"},
		{"failed, with storage", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503}, true, 202, "queued"},
		{"throttled, without storage", &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, RetryAfter: 2 * time.Second}, false, 429, "throttled"},
		{"failed, without storage", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 504}, false, 503, "failed"},
		{"refused", &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}, true, 403, "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{storage: tt.storage, engine: func(c *revoke.Config) { c.ProtectedUsers = []string{"breakglass@contoso.com"} }})
			h.graph.lookupF = func(string) (revoke.User, error) { return revoke.User{}, tt.err }
			w := h.do(h.signed("msg_lookup", `{"upn":"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"}`))
			if b := decodeBody(t, w); w.Code != tt.want || b.Status != tt.status {
				t.Errorf("lookup %v = %d %s; want %d %s", tt.err, w.Code, w.Body, tt.want, tt.status)
			}
			if n := len(h.graph.revoked()); n != 0 {
				t.Errorf("%d revocations without a successful lookup; want none", n)
			}
		})
	}
}

// On the last delivery the outcome is final and a copy goes to the poison queue; when that copy
// fails, the invocation fails, so that the host poisons the message itself.
func TestLastDeliveryPoisonCopyFailureFailsTheInvocation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	h.graph.revokeF = statusFor("alice@contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"})
	h.poison.err = errors.New("storage unavailable")
	code, rep := h.invoke(fixture(t, "queue-last-attempt.json"))
	if code < 300 {
		t.Fatalf("last delivery with a failed poison copy = %d %v; want non-2xx so the host poisons it", code, rep.Logs)
	}
	if out := h.audit.all(); len(out) != 1 || out[0].Status != revoke.StatusFailed {
		t.Errorf("outcomes = %+v; want the final failed outcome recorded", out)
	}
	h.poison.err = nil
	if code, _ := h.invoke(fixture(t, "queue-last-attempt.json")); code != http.StatusOK || h.poison.count() != 2 {
		t.Errorf("with the poison queue back = %d, %d copies; want 200 and a copy", code, h.poison.count())
	}
}

// A panic between claiming a request id and recording its answer releases the claim: the retry
// runs instead of waiting out the lease.
func TestPanicReleasesTheClaim(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	var mu sync.Mutex
	panicked := false
	engine := engineFunc(func(ctx context.Context, job revoke.Job) (revoke.Result, error) {
		mu.Lock()
		first := !panicked
		panicked = true
		mu.Unlock()
		if first {
			panic("boom")
		}
		return revoke.Result{ID: job.RequestID, Status: revoke.StatusRevoked, Results: []revoke.UserResult{{UPN: job.Users[0], Status: revoke.StatusRevoked}}}, nil
	})
	h.handler = server.NewServer(server.Deps{
		Lifecycle: lifecycle(engine, h.state, revoke.LifecycleConfig{}), Validator: request.NewValidator(), State: h.state, Audit: h.audit, Keys: h.keys, Tolerance: 5 * time.Minute,
		Now: func() time.Time { return fixtureTime.Add(30 * time.Second) },
	})
	if w := h.do(h.signed("msg_panic", `{"upn":"alice@contoso.com"}`)); w.Code != http.StatusInternalServerError {
		t.Fatalf("panicking request = %d %s; want 500", w.Code, w.Body)
	}
	if w := h.do(h.signed("msg_panic", `{"upn":"alice@contoso.com"}`)); w.Code != http.StatusOK {
		t.Errorf("retry after a panic = %d %s; want 200 (the claim released), not in_progress", w.Code, w.Body)
	}
}

// clientIP in WebhookRejected is the address the platform appended, never the caller's own
// first X-Forwarded-For entry.
func TestRejectedClientIPIsThePlatformsAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		xff  []string
		want string
	}{
		{"caller's forged entry first", []string{"198.51.100.66, 203.0.113.9:51234"}, "203.0.113.9"},
		{"only the platform's", []string{"203.0.113.9:443"}, "203.0.113.9"},
		{"IPv6 with a port", []string{"10.0.0.1, [2001:db8::7]:51234"}, "2001:db8::7"},
		{"two header lines", []string{"198.51.100.66", "203.0.113.10"}, "203.0.113.10"},
		{"no header: the peer", nil, "192.0.2.1"},
		{"garbage: the peer", []string{"not an address"}, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{})
			r := h.signed("msg_ip", `{"upn":"alice@contoso.com"}`)
			r.Header.Set("webhook-signature", "v1,Zm9yZ2Vk")
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if w := h.do(r); w.Code != http.StatusUnauthorized {
				t.Fatalf("forged signature = %d; want 401", w.Code)
			}
			h.audit.mu.Lock()
			got := []telemetry.Rejection(h.audit.rejected)
			h.audit.mu.Unlock()
			if len(got) != 1 || got[0].ClientIP != tt.want {
				t.Errorf("X-Forwarded-For %q: rejections %+v; want clientIp %s", tt.xff, got, tt.want)
			}
		})
	}
}

// Request ids are scoped by caller: the same Idempotency-Key from two Entra clients, or from a
// client and a webhook sender, is two requests.
func TestRequestIDsAreScopedByCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{tokens: tokens{callers: map[string]entraauth.Caller{
		"a":       {ClientID: "client-a", TenantID: "t1"},
		"b":       {ClientID: "client-b", TenantID: "t1"},
		"a-other": {ClientID: "client-a", TenantID: "t2"},
	}}})
	send := func(token, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Idempotency-Key", "CHG0042")
		return h.do(r)
	}
	for _, c := range []struct{ token, user string }{{"a", "alice@contoso.com"}, {"b", "bob@contoso.com"}, {"a-other", "carol@contoso.com"}} {
		if w := send(c.token, `{"upn":"`+c.user+`"}`); w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "" {
			t.Errorf("caller %s, CHG0042 for %s = %d %s; want a fresh 200", c.token, c.user, w.Code, w.Body)
		}
	}
	if w := h.do(h.signed("CHG0042", `{"upn":"dave@contoso.com"}`)); w.Code != http.StatusOK {
		t.Errorf("webhook sender, CHG0042 = %d %s; want a fresh 200", w.Code, w.Body)
	}
	if w := send("a", `{"upn":"alice@contoso.com"}`); w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("client a again = %d replayed %q; want its own first answer replayed", w.Code, w.Header().Get("Idempotent-Replayed"))
	}
	if n := len(h.graph.revoked()); n != 4 {
		t.Errorf("Graph calls = %d; want 4", n)
	}
}

// A concurrent duplicate is answered 409 in_progress with Retry-After, never run twice.
func TestConcurrentDuplicateIsInProgress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	entered, release := make(chan struct{}), make(chan struct{})
	h.graph.revokeF = func(string) (revoke.GraphResult, error) {
		close(entered)
		<-release
		return revoke.GraphResult{RequestID: "r"}, nil
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- h.do(h.signed("msg_dup", `{"upn":"alice@contoso.com"}`)) }()
	<-entered
	w := h.do(h.signed("msg_dup", `{"upn":"alice@contoso.com"}`))
	close(release)
	if b := decodeBody(t, w); w.Code != http.StatusConflict || b.Error == nil || b.Error.Code != "in_progress" || w.Header().Get("Retry-After") == "" {
		t.Errorf("concurrent duplicate = %d %s Retry-After %q; want 409 in_progress with Retry-After", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if f := <-first; f.Code != http.StatusOK {
		t.Errorf("first = %d %s; want 200", f.Code, f.Body)
	}
	if n := len(h.graph.revoked()); n != 1 {
		t.Errorf("Graph calls = %d; want 1", n)
	}
}
