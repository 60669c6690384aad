package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// TestTraceparentCorrelatesEveryItem: a caller that sends a W3C traceparent finds the request's
// items in its own trace — the trace id as ai.operation.id and its span as ai.operation.parentId —
// so that Application Insights' transaction view joins the caller's span to ours.
func TestTraceparentCorrelatesEveryItem(t *testing.T) {
	t.Parallel()
	const (
		trace = "4bf92f3577b34da6a3ce929d0e0e4736"
		span  = "00f067aa0ba902b7"
	)
	in := testenv.NewIngestion(t)
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
	p := startHandler(t, env)

	body := []byte(`{"upn":"alice@contoso.com","ticket":"INC0012345"}`)
	h := signedHeaders(t, "msg_traceparent", body)
	h.Set("traceparent", "00-"+trace+"-"+span+"-01")
	h.Set("X-Azure-Functions-InvocationId", "11111111-2222-3333-4444-555555555555")
	if status, _, b := post(t, p.URL+"/api/revoke", h, body); status != http.StatusOK {
		t.Fatalf("revoke = %d %s; want 200", status, b)
	}
	p.terminate(t) // flushes telemetry
	if code := p.exitCode(t, 12*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d; want 0", code)
	}

	seen := map[string]bool{}
	for _, e := range in.Accepted() {
		item := e.BaseType + "/" + e.Name
		if item == "EventData/GraphPermission" {
			continue // the background permission reading belongs to no request
		}
		seen[item] = true
		if got := e.Tags["ai.operation.id"]; got != trace {
			t.Errorf("%s: ai.operation.id = %q; want the caller's trace id %q", item, got, trace)
		}
		if got := e.Tags["ai.operation.parentId"]; got != span {
			t.Errorf("%s: ai.operation.parentId = %q; want the caller's span id %q", item, got, span)
		}
	}
	for _, want := range []string{"EventData/SessionRevocation", "RemoteDependencyData/POST /users/{id}/revokeSignInSessions"} {
		if !seen[want] {
			t.Errorf("no %s item in the telemetry; got %v", want, seen)
		}
	}
}
