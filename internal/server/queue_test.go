package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return testenv.Fixture(t, name)
}

// withDequeueCount rewrites a fixture's Metadata.DequeueCount (a string, as the host sends it).
func withDequeueCount(t *testing.T, inv []byte, n string) []byte {
	t.Helper()
	out := bytes.Replace(inv, []byte(`"DequeueCount": "1"`), []byte(`"DequeueCount": "`+n+`"`), 1)
	if bytes.Equal(out, inv) && n != "1" {
		t.Fatal("fixture has no DequeueCount 1")
	}
	return out
}

type hostReply struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

func (h *harness) invoke(inv []byte) (int, hostReply) {
	h.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/revoke-queue", bytes.NewReader(inv))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Azure-Functions-InvocationId", "0b5f6a1e-queue-invocation")
	w := h.do(r)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("queue reply Content-Type = %q; the host rejects anything but application/json", ct)
	}
	var rep hostReply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.Outputs == nil || rep.Logs == nil {
		h.t.Fatalf("queue reply = %s (%v); want {Outputs:{}, Logs:[...], ReturnValue:null}", w.Body, err)
	}
	if !strings.Contains(w.Body.String(), `"ReturnValue":null`) {
		h.t.Errorf("queue reply = %s; want ReturnValue null", w.Body)
	}
	return w.Code, rep
}

func TestQueueFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file          string
		allowUnsigned bool
		wantStatus    int
		wantRevoked   []string
		wantPoison    bool
		wantReason    string
	}{
		{"queue-signed.json", false, 200, []string{"alice@contoso.com"}, false, ""},
		{"queue-signed-bulk.json", false, 200, []string{"alice@contoso.com", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"}, false, ""},
		{"queue-last-attempt.json", false, 200, []string{"alice@contoso.com"}, false, ""},
		{"queue-unsigned.json", false, 200, nil, true, "unsigned_message"},
		{"queue-unsigned.json", true, 200, []string{"alice@contoso.com"}, false, ""},
		{"queue-bad-signature.json", false, 200, nil, true, "bad_signature"},
		{"queue-not-json.json", false, 200, nil, true, "malformed_message"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{storage: true, allowUnsigned: tt.allowUnsigned})
			code, rep := h.invoke(fixture(t, tt.file))
			if code != tt.wantStatus {
				t.Fatalf("status = %d (logs %v); want %d", code, rep.Logs, tt.wantStatus)
			}
			got := h.graph.revoked()
			if strings.Join(sorted(got), ",") != strings.Join(sorted(tt.wantRevoked), ",") {
				t.Errorf("Graph revocations = %v; want %v", got, tt.wantRevoked)
			}
			if (h.poison.count() == 1) != tt.wantPoison {
				t.Errorf("poison copies = %d; want poisoned %v", h.poison.count(), tt.wantPoison)
			}
			if tt.wantReason != "" {
				if r := h.audit.reasons(); len(r) != 1 || r[0] != tt.wantReason {
					t.Errorf("WebhookRejected reasons = %v; want [%s]", r, tt.wantReason)
				}
			}
			for _, o := range h.audit.outcomes {
				if o.Trigger != revoke.TriggerQueue || o.InvocationID != "0b5f6a1e-queue-invocation" || o.DequeueCount < 1 {
					t.Errorf("outcome = %+v; want trigger queue, the invocation id and the dequeue count", o)
				}
			}
		})
	}
}

func TestQueuePoisonCopyIsTheMessageUnchanged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	h.invoke(fixture(t, "queue-not-json.json"))
	if got := string(h.poison.msgs[0]); got != "revoke alice@contoso.com please" {
		t.Errorf("poison copy = %q; want the message text as it came", got)
	}
}

func TestQueueTransientFailureRetriesThenCompletes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	h.graph.revokeF = statusFor("alice@contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"})
	inv := fixture(t, "queue-signed.json")

	for n := 1; n <= 4; n++ {
		code, rep := h.invoke(withDequeueCount(t, inv, string(rune('0'+n))))
		if code < 300 {
			t.Fatalf("delivery %d = %d (logs %v); want non-2xx so the host retries", n, code, rep.Logs)
		}
	}
	if len(h.audit.outcomes) != 0 || h.poison.count() != 0 {
		t.Fatalf("before the last delivery: %d outcomes, %d poison copies; want none", len(h.audit.outcomes), h.poison.count())
	}
	code, _ := h.invoke(withDequeueCount(t, inv, "5"))
	if code != http.StatusOK {
		t.Fatalf("last delivery = %d; want 200: the outcome is final", code)
	}
	if len(h.audit.outcomes) != 1 || h.audit.outcomes[0].Status != revoke.StatusFailed || h.audit.outcomes[0].DequeueCount != 5 {
		t.Errorf("outcomes = %+v; want one final failed outcome at dequeue count 5", h.audit.outcomes)
	}
	if h.poison.count() != 1 {
		t.Errorf("poison copies = %d; want the message kept for replay", h.poison.count())
	}
}

func TestQueueRedeliverySkipsFinishedUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	failing := true
	h.graph.revokeF = func(user string) (revoke.GraphResult, error) {
		if failing && user == "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a" {
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, Code: "TooManyRequests"}
		}
		return revoke.GraphResult{RequestID: "ok"}, nil
	}
	inv := fixture(t, "queue-signed-bulk.json")
	if code, _ := h.invoke(inv); code < 300 {
		t.Fatalf("first delivery = %d; want a retry", code)
	}
	failing = false
	if code, _ := h.invoke(withDequeueCount(t, inv, "2")); code != 200 {
		t.Fatalf("second delivery = %d; want 200", code)
	}
	calls := map[string]int{}
	for _, u := range h.graph.revoked() {
		calls[u]++
	}
	if calls["alice@contoso.com"] != 1 || calls["3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"] != 2 {
		t.Errorf("revocations per user = %v; want finished users revoked once, the throttled one retried", calls)
	}
	if len(h.audit.outcomes) != 3 {
		t.Errorf("outcomes = %d; want exactly one per user", len(h.audit.outcomes))
	}
	// A duplicate delivery of a completed message does nothing.
	if code, _ := h.invoke(withDequeueCount(t, inv, "3")); code != 200 || len(h.graph.revoked()) != 4 {
		t.Errorf("duplicate delivery = %d with %d Graph calls; want 200 and no new call", code, len(h.graph.revoked()))
	}
}

func TestQueueRateGuardRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true, rate: 1})
	if code, _ := h.invoke(fixture(t, "queue-signed.json")); code != 200 {
		t.Fatalf("first message = %d", code)
	}
	other := bytes.ReplaceAll(fixture(t, "queue-last-attempt.json"), []byte(`"DequeueCount": "5"`), []byte(`"DequeueCount": "1"`))
	if code, _ := h.invoke(other); code < 300 {
		t.Errorf("rate-limited message = %d; want non-2xx so the host retries later", code)
	}
	if code, _ := h.invoke(fixture(t, "queue-last-attempt.json")); code != 200 || h.audit.outcomes[len(h.audit.outcomes)-1].Status != revoke.StatusThrottled {
		t.Errorf("rate-limited last delivery = %d; want 200 with a final throttled outcome", code)
	}
}

func TestQueueUndecodableInvocation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	for _, inv := range []string{`not json`, `{"Data":{"message":42},"Metadata":{"DequeueCount":"1"}}`, `{}`} {
		if code, _ := h.invoke([]byte(inv)); code < 400 {
			t.Errorf("invocation %q = %d; want 4xx", inv, code)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
