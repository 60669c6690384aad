package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// Answers that a configuration change can change are not replayed: a request answered dry_run
// and repeated with the same id after going live is revoked; one answered denied and repeated
// after the permission was granted runs again. Other outcomes of the same request stay done.

// mustStatuses decodes a revoke response and returns each user's status, in input order.
func mustStatuses(t *testing.T, b []byte) []string {
	t.Helper()
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	out := make([]string, len(r.Results))
	for i, u := range r.Results {
		out[i] = u.Status
	}
	return out
}

func TestReplayAfterConfigurationChange(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)

	t.Run("dry run, then live after a restart, is revoked", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "golive")
		env["DRY_RUN"] = "true"
		p := startHandler(t, env)
		body := []byte(`{"upn":"alice@contoso.com","ticket":"SMOKE-1"}`)
		status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_go_live", body), body)
		if got := mustStatuses(t, b); status != http.StatusOK || len(got) != 1 || got[0] != "dry_run" {
			t.Fatalf("under DRY_RUN = %d %s; want 200 dry_run", status, b)
		}
		// A repeat while still in dry run runs again too (nothing to replay), and still revokes nobody.
		status, hdr, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_go_live", body), body)
		if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "" {
			t.Errorf("repeat in dry run = %d replayed %q %s; want 200, not replayed", status, hdr.Get("Idempotent-Replayed"), b)
		}
		mustOnce(t, g, 0, "alice@contoso.com")

		p.terminate(t)
		if code := p.exitCode(t, 15*time.Second); code != 0 {
			t.Fatalf("SIGTERM exit code = %d", code)
		}
		env["DRY_RUN"] = "false"
		live := startHandler(t, env)
		status, hdr, b = post(t, live.URL+"/api/revoke", signedHeaders(t, "msg_go_live", body), body)
		if got := mustStatuses(t, b); status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "" || got[0] != "revoked" {
			t.Fatalf("same id after going live = %d replayed %q %s; want 200 revoked, not a replay", status, hdr.Get("Idempotent-Replayed"), b)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
		// A revoked answer is final: the next repeat is a replay and Graph is not called again.
		status, hdr, again := post(t, live.URL+"/api/revoke", signedHeaders(t, "msg_go_live", body), body)
		if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || string(again) != string(b) {
			t.Errorf("repeat after revoked = %d replayed %q %s; want the revoked answer replayed", status, hdr.Get("Idempotent-Replayed"), again)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("denied by Graph, then the permission granted, runs again", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		p := startHandler(t, sharedEnv(t, az, id, g, "granted"))
		g.Script("alice@contoso.com", graphtest.Response{Method: http.MethodPost, Status: http.StatusForbidden, Code: "Authorization_RequestDenied"})
		body := []byte(`{"upns":["o'brien@contoso.com","alice@contoso.com"],"ticket":"INC9"}`)
		status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_granted", body), body)
		if got := mustStatuses(t, b); status != http.StatusMultiStatus || got[0] != "revoked" || got[1] != "denied" {
			t.Fatalf("first = %d %s; want 207 revoked, denied", status, b)
		}
		// The script has run out: Graph now accepts, as after the grant.
		status, hdr, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_granted", body), body)
		if got := mustStatuses(t, b); status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "" || got[0] != "revoked" || got[1] != "revoked" {
			t.Fatalf("same id after the grant = %d replayed %q %s; want 200, both revoked, not a replay", status, hdr.Get("Idempotent-Replayed"), b)
		}
		// The user finished the first time is not revoked again; the denied one is, once.
		mustOnce(t, g, 1, "o'brien@contoso.com", "alice@contoso.com")
	})

	t.Run("a refused guard-rail lookup, then User.Read.All granted, runs again", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := handlerEnv(t, id, g) // memory state: the same holds within one process
		env["ALLOWED_DOMAINS"] = "contoso.com"
		p := startHandler(t, env)
		g.RefuseLookups(true)
		body := []byte(`{"upn":"` + aliceID + `"}`)
		status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_lookup", body), body)
		if got := mustStatuses(t, b); status != http.StatusForbidden || got[0] != "denied" {
			t.Fatalf("lookup refused = %d %s; want 403 denied", status, b)
		}
		g.RefuseLookups(false)
		status, hdr, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_lookup", body), body)
		if got := mustStatuses(t, b); status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "" || got[0] != "revoked" {
			t.Fatalf("same id after the grant = %d replayed %q %s; want 200 revoked, not a replay", status, hdr.Get("Idempotent-Replayed"), b)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
	})
}
