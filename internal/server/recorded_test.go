package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

const queueSecret = "whsec_cXVldWUtc2VjcmV0LW9mLXRoZS10ZXN0cy0wMTIz" // 30 bytes

// savedProgress is a Memory that records each progress save made while a message is unfinished.
type savedProgress struct {
	*state.Memory
	mu    sync.Mutex
	saves []string
}

func (s *savedProgress) SaveMessageProgress(ctx context.Context, key state.MessageKey, progress []byte, done bool) error {
	if !done {
		s.mu.Lock()
		s.saves = append(s.saves, string(progress))
		s.mu.Unlock()
	}
	return s.Memory.SaveMessageProgress(ctx, key, progress, done)
}

func (s *savedProgress) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.saves) == 0 {
		return ""
	}
	return s.saves[len(s.saves)-1]
}

// queueServer is a server whose queue messages verify against WEBHOOK_SECRETS and QUEUE_SECRETS.
func queueServer(t *testing.T, g *graph, st store, sink *audit) (http.Handler, webhook.Keys) {
	t.Helper()
	keys, err := webhook.ParseSecrets([]string{fixtureSecret})
	if err != nil {
		t.Fatal(err)
	}
	qkeys, err := webhook.ParseSecrets([]string{queueSecret})
	if err != nil {
		t.Fatal(err)
	}
	e := revoke.New(revoke.Config{Revoker: g, Users: g, Sink: sink, Concurrency: 4})
	return server.NewServer(server.Deps{
		Lifecycle: lifecycle(e, st, revoke.LifecycleConfig{MaxDequeueCount: 5}), Validator: request.NewValidator(), State: st, Audit: sink,
		Keys: keys, QueueKeys: qkeys, Tolerance: 5 * time.Minute, QueueMaxAge: 24 * time.Hour, MaxDequeueCount: 5,
	}), qkeys
}

func deliverQueue(h http.Handler, inv []byte) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/revoke-queue", strings.NewReader(string(inv)))
	r.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(w, r)
	return w
}

// A message the handler signed with QUEUE_SECRETS is accepted; one signed with neither list is
// refused; QUEUE_SECRETS lets no HTTP caller in.
func TestQueueSecretsVerifyMessages(t *testing.T) {
	t.Parallel()
	g, sink := &graph{}, &audit{}
	h, qkeys := queueServer(t, g, state.NewMemory(state.MemoryConfig{}), sink)
	other, err := webhook.ParseSecrets([]string{"whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24="})
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		name   string
		keys   webhook.Keys
		caller string
	}{
		{"queue secret", qkeys, "queue:0"},
		{"unknown secret", other, ""},
	} {
		text, err := queue.Seal(tt.keys, "msg_queue_secret_"+tt.name[:5], time.Now(), []byte(`{"upn":"alice@contoso.com"}`))
		if err != nil {
			t.Fatal(err)
		}
		w := deliverQueue(h, hostInvocation(text, "qs-"+tt.name[:5], 1))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: delivery = %d %s; want 200", tt.name, w.Code, w.Body)
		}
		outcomes := sink.all()
		switch {
		case tt.caller != "" && (len(outcomes) != 1 || outcomes[0].Caller != tt.caller || outcomes[0].Status != revoke.StatusRevoked):
			t.Errorf("%s: outcomes %+v; want one revoked by caller %s", tt.name, outcomes, tt.caller)
		case tt.caller == "" && (len(outcomes) != i || len(sink.reasons()) != 1 || sink.reasons()[0] != "bad_signature"):
			t.Errorf("%s: outcomes %d, rejections %v; want the message refused as bad_signature", tt.name, len(outcomes), sink.reasons())
		}
	}
	hdr, err := qkeys.Headers("msg_http_with_queue_secret", time.Now(), []byte(`{"upn":"alice@contoso.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(`{"upn":"alice@contoso.com"}`))
	for k, v := range hdr {
		r.Header[k] = v
	}
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("HTTP request signed with a queue secret = %d; want 401", w.Code)
	}
}

// A message's progress is saved as its users finish: while one user is still with Graph, the
// others are already saved, so a crash would repeat only the one in flight.
func TestQueueSavesProgressAsUsersFinish(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := &graph{revokeF: func(user string) (revoke.GraphResult, error) {
		if user == "slow@contoso.com" {
			<-release
		}
		return revoke.GraphResult{RequestID: "ok", Attempts: 1}, nil
	}}
	st := &savedProgress{Memory: state.NewMemory(state.MemoryConfig{})}
	h, qkeys := queueServer(t, g, st, &audit{})
	text, err := queue.Seal(qkeys, "msg_progress", time.Now(), []byte(`{"upns":["alice@contoso.com","slow@contoso.com","carol@contoso.com"]}`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- deliverQueue(h, hostInvocation(text, "progress-1", 1)) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(st.last(), "alice@contoso.com") || !strings.Contains(st.last(), "carol@contoso.com") {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("progress saved while one user is in flight = %q; want the two finished users", st.last())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if strings.Contains(st.last(), "slow@contoso.com") {
		t.Errorf("progress %q names the user still in flight", st.last())
	}
	close(release)
	if w := <-done; w.Code != http.StatusOK {
		t.Fatalf("delivery = %d %s; want 200", w.Code, w.Body)
	}
}

// A panic while revoking one user of a bulk request answers that user failed; the other users
// are revoked, and the server goes on serving.
func TestPanicInOneUserFailsOnlyThatUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.graph.revokeF = func(user string) (revoke.GraphResult, error) {
		if user == "bob@contoso.com" {
			panic("a bug for one user")
		}
		return revoke.GraphResult{RequestID: "ok", Attempts: 1}, nil
	}
	w := h.do(h.signed("msg_panic_bulk", `{"upns":["alice@contoso.com","bob@contoso.com","carol@contoso.com"]}`))
	body := decodeBody(t, w)
	got := map[string]string{}
	for _, r := range body.Results {
		got[r.UPN] = string(r.Status)
	}
	if w.Code != http.StatusMultiStatus || got["alice@contoso.com"] != "revoked" || got["bob@contoso.com"] != "failed" || got["carol@contoso.com"] != "revoked" {
		t.Errorf("bulk request with a panicking user = %d %v; want 207, that user failed and the others revoked", w.Code, got)
	}
	if w := h.do(h.signed("msg_panic_after", `{"upn":"alice@contoso.com"}`)); w.Code != http.StatusOK {
		t.Errorf("the next request = %d %s; want 200", w.Code, w.Body)
	}
}
