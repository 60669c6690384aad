package cli_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const (
	signSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	signBody    = `{"upn":"jane_fabrikam.com#EXT#@contoso.onmicrosoft.com","ticket":"INC0012345","reason":"It's \"lost\" — phone"}`
)

// parseHeaders parses `name: value` lines.
func parseHeaders(t *testing.T, out string) http.Header {
	t.Helper()
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("line %q is not `name: value`", line)
		}
		h.Add(name, value)
	}
	return h
}

// secretFile writes content to a file only this test can read and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignVerifiedByStandardWebhooks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		secret string // the secret that must verify
		wantID string // "" = a generated msg_ id
	}{
		{name: "--secret-file", args: []string{"sign", "--secret-file", secretFile(t, signSecret+"\n")}, secret: signSecret},
		{name: "first of WEBHOOK_SECRETS", env: map[string]string{"WEBHOOK_SECRETS": otherSecret + " , " + signSecret}, args: []string{"sign"}, secret: otherSecret},
		{name: "--id", env: map[string]string{"WEBHOOK_SECRETS": signSecret}, args: []string{"sign", "--id", "INC0012345-1"}, secret: signSecret, wantID: "INC0012345-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			r := mustRun(t, env, signBody, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d; want 0\n%s", r.code, r)
			}
			h := parseHeaders(t, r.stdout)
			if len(h) != 3 {
				t.Errorf("printed %d headers; want webhook-id, webhook-timestamp, webhook-signature\n%s", len(h), r)
			}
			id := h.Get("webhook-id")
			if tt.wantID != "" && id != tt.wantID {
				t.Errorf("webhook-id = %q; want %q", id, tt.wantID)
			}
			if tt.wantID == "" && !strings.HasPrefix(id, "msg_") {
				t.Errorf("webhook-id = %q; want a generated msg_ id", id)
			}
			if err := testenv.NodeVerify(t, tt.secret, h, []byte(signBody)); err != nil {
				t.Errorf("standardwebhooks rejected the signature: %v\n%s", err, r)
			}
			// The signature covers the body: another body must not verify.
			if err := testenv.NodeVerify(t, tt.secret, h, []byte(signBody+" ")); err == nil {
				t.Errorf("standardwebhooks accepted the signature for another body")
			}
			if strings.Contains(r.stdout+r.stderr, strings.TrimPrefix(tt.secret, "whsec_")) {
				t.Errorf("output contains the secret\n%s", r)
			}
		})
	}
}

// TestSignCurl runs the printed curl command against a server that verifies the request with the
// standardwebhooks npm package, so both the quoting and the signature are proven.
func TestSignCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	var mu sync.Mutex
	var got *http.Request
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, gotBody = r, b
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/api/revoke?code=abc'def"

	r := mustRun(t, map[string]string{"WEBHOOK_SECRETS": signSecret}, signBody, "sign", "--curl", url)
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	if !strings.HasPrefix(r.stdout, "curl ") {
		t.Fatalf("stdout does not start with a curl command\n%s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", r.stdout)
	cmd.Env = []string{"PATH=" + strings.TrimSuffix(curl, "/curl") + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("running the printed command: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("the server got no request")
	}
	if got.Method != http.MethodPost || got.URL.RequestURI() != "/api/revoke?code=abc'def" {
		t.Errorf("request = %s %s; want POST /api/revoke?code=abc'def", got.Method, got.URL.RequestURI())
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	if string(gotBody) != signBody {
		t.Errorf("body = %q; want %q", gotBody, signBody)
	}
	if err := testenv.NodeVerify(t, signSecret, got.Header, gotBody); err != nil {
		t.Errorf("standardwebhooks rejected the request curl sent: %v", err)
	}
}

func TestSignUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "no secret", args: []string{"sign"}, wantErr: "no secret"},
		{name: "--secret in argv is refused", args: []string{"sign", "--secret", signSecret}, wantErr: "process list"},
		{name: "--secret refused even with WEBHOOK_SECRETS", env: map[string]string{"WEBHOOK_SECRETS": signSecret}, args: []string{"sign", "--secret", signSecret}, wantErr: "process list"},
		{name: "not whsec", args: []string{"sign", "--secret-file", secretFile(t, "hunter2\n")}, wantErr: "invalid secret"},
		{name: "empty secret file", args: []string{"sign", "--secret-file", secretFile(t, "\n")}, wantErr: "empty"},
		{name: "missing secret file", args: []string{"sign", "--secret-file", "/nonexistent/secret"}, wantErr: "--secret-file"},
		{name: "bad first of WEBHOOK_SECRETS", env: map[string]string{"WEBHOOK_SECRETS": "whsec_!!!," + signSecret}, args: []string{"sign"}, wantErr: "invalid secret"},
		{name: "argument", env: map[string]string{"WEBHOOK_SECRETS": signSecret}, args: []string{"sign", "body.json"}, wantErr: "stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			r := mustRun(t, env, signBody, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("want exit 2 and %q on stderr\n%s", tt.wantErr, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q; want nothing", r.stdout)
			}
		})
	}
}

func TestSignBodyTooLarge(t *testing.T) {
	t.Parallel()
	r := mustRun(t, map[string]string{"WEBHOOK_SECRETS": signSecret}, strings.Repeat("x", 64<<10+1), "sign")
	if r.code != 2 || !strings.Contains(r.stderr, "exceeds") {
		t.Errorf("want exit 2 for a body over 64 KiB\n%s", r)
	}
}
