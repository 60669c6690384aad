package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// mustServe starts `handler serve` with env on a free loopback port, waits until it answers
// GET / as the Functions host does, and stops it with SIGTERM at cleanup. It returns the base URL.
func mustServe(t *testing.T, env map[string]string) string {
	t.Helper()
	base, _ := mustServeLogged(t, env)
	return base
}

// mustServeLogged is mustServe that also returns what the server writes on stdout.
func mustServeLogged(t *testing.T, env map[string]string) (string, *testenv.Buffer) {
	t.Helper()
	stdout, stderr := &testenv.Buffer{}, &testenv.Buffer{}
	p := testenv.StartProcess(t, testenv.Options{Bin: handlerBin, Args: []string{"serve"}, Env: envList(env),
		Listen: true, Stdout: stdout, Stderr: stderr})
	env[testenv.PortVariable] = p.Port
	t.Cleanup(func() { _ = p.Stop(15 * time.Second) }) // SIGTERM, as the host stops an instance
	if _, err := p.WaitReady(30*time.Second, 50*time.Millisecond); err != nil {
		t.Fatalf("handler serve: %v\nstderr:\n%s", err, stderr)
	}
	return p.URL, stdout
}

// comparableResult keeps what the caller decides on; ids and times differ between two runs.
type comparableResult struct {
	UPN     string
	Status  revoke.Status
	UserID  string
	Warning string
	Error   revoke.ErrorInfo
}

func comparableResults(res revoke.Result) []comparableResult {
	var out []comparableResult
	for _, u := range res.Results {
		c := comparableResult{UPN: u.UPN, Status: u.Status, UserID: u.UserID, Warning: u.Warning}
		if u.Error != nil {
			c.Error = *u.Error
		}
		out = append(out, c)
	}
	return out
}

// TestRevokeMatchesWebhook sends the same users to the webhook of `handler serve` and to
// `handler revoke` with the same settings and Graph, and expects the same outcomes.
func TestRevokeMatchesWebhook(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	f.graph.Script("bob@contoso.com", graphtest.Forbidden(), graphtest.Forbidden())
	settings := []string{"WEBHOOK_SECRETS", signSecret, "PROTECTED_USERS", "carol@contoso.com", "ALLOWED_DOMAINS", "contoso.com"}
	users := []string{"alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "nobody@contoso.com", "eve@fabrikam.com"}

	base := mustServe(t, f.with(settings...))
	body, err := json.Marshal(map[string]any{"upns": users, "ticket": "INC1"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/api/revoke", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = testenv.NodeSign(t, signSecret, "msg_parity", time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var webhook revoke.Result
	if err := json.NewDecoder(resp.Body).Decode(&webhook); err != nil {
		t.Fatalf("webhook response: %v", err)
	}
	if resp.StatusCode != http.StatusMultiStatus {
		t.Errorf("webhook status = %d; want 207", resp.StatusCode)
	}

	r := mustRun(t, f.with(settings...), "", append([]string{"revoke", "--json", "--ticket", "INC1"}, users...)...)
	if r.code != 1 {
		t.Errorf("exit %d; want 1, as the webhook's 207\n%s", r.code, r)
	}
	cli := mustResult(t, r)

	w, c := comparableResults(webhook), comparableResults(cli)
	if len(w) != len(users) || len(c) != len(users) {
		t.Fatalf("results: webhook %d, cli %d; want %d each\nwebhook: %+v\ncli: %+v", len(w), len(c), len(users), w, c)
	}
	for i := range w {
		if w[i] != c[i] {
			t.Errorf("user %d: webhook %+v, cli %+v; want the same", i, w[i], c[i])
		}
	}
	if webhook.Status != cli.Status || webhook.DryRun != cli.DryRun {
		t.Errorf("top level: webhook {%s %v}, cli {%s %v}; want the same", webhook.Status, webhook.DryRun, cli.Status, cli.DryRun)
	}
	// Every status a caller would branch on is present, so the comparison means something.
	want := []revoke.Status{revoke.StatusRevoked, revoke.StatusDenied, revoke.StatusProtected, revoke.StatusNotFound, revoke.StatusOutOfScope}
	for i, s := range want {
		if c[i].Status != s {
			t.Errorf("cli user %d status = %s; want %s", i, c[i].Status, s)
		}
	}
}
