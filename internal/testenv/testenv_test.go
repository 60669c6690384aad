package testenv_test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestNodeSignVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"upn":"alice@contoso.com"}`)
	h := testenv.NodeSign(t, secret, "msg_test", time.Now(), body)
	for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if h.Get(name) == "" {
			t.Fatalf("NodeSign headers %v: no %s", h, name)
		}
	}
	if err := testenv.NodeVerify(t, secret, h, body); err != nil {
		t.Errorf("NodeVerify(NodeSign(%q)) = %v; want nil", body, err)
	}

	tests := []struct {
		name   string
		header http.Header
		body   string
		want   string // in the library's error
	}{
		{"other body", h, `{"upn":"mallory@contoso.com"}`, "No matching signature"},
		{"other id", with(h, "webhook-id", "msg_other"), string(body), "No matching signature"},
		{"no signature", with(h, "webhook-signature", ""), string(body), "Missing required headers"},
		{"signed an hour ago", testenv.NodeSign(t, secret, "msg_test", time.Now().Add(-time.Hour), body), string(body), "too old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := testenv.NodeVerify(t, secret, tt.header, []byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NodeVerify(%v, %q) = %v; want an error with %q", tt.header, tt.body, err, tt.want)
			}
		})
	}
}

// with returns a copy of h with name set to value (deleted when value is empty).
func with(h http.Header, name, value string) http.Header {
	h = h.Clone()
	if value == "" {
		h.Del(name)
	} else {
		h.Set(name, value)
	}
	return h
}

func TestStartAzurite(t *testing.T) {
	t.Parallel()
	testenv.Node(t) // in -short mode without Node, skip here rather than in the subtest
	var endpoint string
	t.Run("running", func(t *testing.T) {
		a := testenv.StartAzurite(t)
		endpoint = a.QueueEndpoint
		if !strings.HasPrefix(a.QueueEndpoint, "http://127.0.0.1:") || !strings.HasSuffix(a.QueueEndpoint, "/devstoreaccount1") {
			t.Errorf("QueueEndpoint = %q; want http://127.0.0.1:PORT/devstoreaccount1", a.QueueEndpoint)
		}
		if !strings.Contains(a.ConnectionString, "QueueEndpoint="+a.QueueEndpoint+";") ||
			!strings.Contains(a.ConnectionString, "AccountKey="+testenv.AzuriteKey) {
			t.Errorf("ConnectionString = %q; want the development account at %s", a.ConnectionString, a.QueueEndpoint)
		}
		resp, err := http.Get(a.QueueEndpoint + "?comp=list")
		if err != nil {
			t.Fatalf("GET %s: %v", a.QueueEndpoint, err)
		}
		_ = resp.Body.Close()
		// Unsigned requests are refused, which shows it is Azurite's storage API that answers.
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without credentials: %d; want 403", a.QueueEndpoint, resp.StatusCode)
		}

		if !strings.HasPrefix(a.TableEndpoint, "http://127.0.0.1:") || !strings.HasSuffix(a.TableEndpoint, "/devstoreaccount1") ||
			a.TableEndpoint == a.QueueEndpoint {
			t.Errorf("TableEndpoint = %q; want http://127.0.0.1:PORT/devstoreaccount1 on its own port", a.TableEndpoint)
		}
		if !strings.Contains(a.ConnectionString, "TableEndpoint="+a.TableEndpoint+";") {
			t.Errorf("ConnectionString = %q; want TableEndpoint=%s", a.ConnectionString, a.TableEndpoint)
		}
		// The table service lists tables only for a signed request; unsigned, it refuses.
		resp, err = http.Get(a.TableEndpoint + "/Tables")
		if err != nil {
			t.Fatalf("GET %s/Tables: %v", a.TableEndpoint, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s/Tables without credentials: %d; want 403", a.TableEndpoint, resp.StatusCode)
		}

		// StopTable takes the table service away and leaves the queue service running.
		a.StopTable()
		client := &http.Client{Timeout: 5 * time.Second}
		if resp, err := client.Get(a.TableEndpoint + "/Tables"); err == nil {
			_ = resp.Body.Close()
			t.Errorf("GET %s after StopTable: %d; want the connection refused", a.TableEndpoint, resp.StatusCode)
		}
		resp, err = client.Get(a.QueueEndpoint + "?comp=list")
		if err != nil {
			t.Fatalf("GET %s after StopTable: %v; want the queue service still answering", a.QueueEndpoint, err)
		}
		_ = resp.Body.Close()
	})
	if endpoint == "" {
		t.Fatal("Azurite did not start")
	}
	// The subtest's cleanup stopped Azurite: nothing may answer there any more.
	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get(endpoint + "?comp=list"); err == nil {
		_ = resp.Body.Close()
		t.Errorf("GET %s after cleanup: %d; want the connection refused", endpoint, resp.StatusCode)
	}
}

func TestEventually(t *testing.T) {
	t.Parallel()
	start, calls := time.Now(), 0
	if !testenv.Eventually(10*time.Second, func() bool { calls++; return time.Since(start) > 50*time.Millisecond }) {
		t.Fatal("Eventually = false for a condition that holds after 50ms; want true")
	}
	if calls < 2 {
		t.Errorf("cond asked %d times; want it polled", calls)
	}
	calls = 0
	if testenv.Eventually(30*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("Eventually = true for a condition that never holds")
	}
	if calls < 2 {
		t.Errorf("cond asked %d times before giving up; want it asked again at the deadline", calls)
	}
}

// testenv imports nothing of this module: every package's tests use it, including those of
// packages it would otherwise import (telemetry's own tests use the ingestion fake).
func TestImportsNothingOfTheModule(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", ".")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/entra-revoke/entra-revoke/") && pkg != "github.com/entra-revoke/entra-revoke/internal/testenv" {
			t.Errorf("testenv depends on %s; it must import nothing of this module", pkg)
		}
	}
}
