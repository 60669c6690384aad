package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
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

// lockedBuffer is a bytes.Buffer the process writes while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mustServeLogged is mustServe that also returns what the server writes on stdout.
func mustServeLogged(t *testing.T, env map[string]string) (string, *lockedBuffer) {
	t.Helper()
	stdout := &lockedBuffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	env["FUNCTIONS_CUSTOMHANDLER_PORT"] = port

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	cmd := exec.CommandContext(ctx, handlerBin, "serve")
	cmd.Env = envList(env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		cancel()
	})
	base := "http://127.0.0.1:" + port
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stdout
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler serve did not answer GET / within 30 s: %v\nstderr:\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
