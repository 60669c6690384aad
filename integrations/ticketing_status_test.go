package integrations_test

// The ticketing recipes follow a deferred revocation to its outcome: status.sh and send.sh
// --wait poll the status link honouring Retry-After, the ServiceNow Script Include reads it, and
// none of them sends a secret to it or follows a link somewhere else.

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeSleep puts a sleep command first on PATH that records its argument and returns at once,
// so the scripts' waits are checked without waiting. It returns the PATH and a function that
// reads the recorded waits.
func fakeSleep(t *testing.T) (path string, waits func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "sleeps")
	script := "#!/bin/sh\nprintf '%s\\n' \"$1\" >>'" + log + "'\n"
	if err := os.WriteFile(filepath.Join(dir, "sleep"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH"), func() []string {
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
}

// runWithPath runs a script like runScript, with PATH replaced.
func runWithPath(t *testing.T, path, script string, env []string, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	return runScript(t, script, append([]string{"PATH=" + path}, env...), stdin, args...)
}

// queuedLink starts an asyncServer, queues one request on it and returns the status link.
func queuedLink(t *testing.T, script asyncScript) (*asyncServer, string) {
	t.Helper()
	srv := newAsyncServer(t, script)
	resp, err := http.Post(srv.URL+"/api/revoke", "application/json", strings.NewReader(`{"upn":"alice@contoso.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	link := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || link == "" {
		t.Fatalf("queueing: %d, Location %q", resp.StatusCode, link)
	}
	return srv, link
}

func TestStatusScript(t *testing.T) {
	t.Parallel()
	mustTool(t, "curl", "apt-get install curl")
	tests := []struct {
		name      string
		script    asyncScript
		args      []string // before the link; the link is appended unless link is set
		link      string   // replaces the status link
		env       []string
		wantCode  int
		wantOut   string
		wantWaits []string
	}{
		{"wait: queued, then revoked", asyncScript{retryAfter: []string{"2", "3", "7"}, pollsBeforeFinal: 2, finalStatus: 200, final: revokedBody},
			[]string{"--wait"}, "", nil, 0, `"status":"revoked"`, []string{"3", "7"}},
		{"wait: queued, then failed", asyncScript{retryAfter: []string{"5"}, pollsBeforeFinal: 1, finalStatus: 503, final: failedBody},
			[]string{"--wait"}, "", nil, 1, `"status":"failed"`, []string{"5"}},
		{"wait runs out", asyncScript{retryAfter: []string{"900"}, pollsBeforeFinal: -1},
			[]string{"--wait"}, "", []string{"STATUS_TIMEOUT=1000"}, 3, `"status":"queued"`, []string{"300", "300", "300"}},
		{"once, still queued", asyncScript{retryAfter: []string{"5"}, pollsBeforeFinal: 3},
			nil, "", nil, 3, `"status":"queued"`, nil},
		{"once, final", asyncScript{retryAfter: []string{"5"}, pollsBeforeFinal: 0, finalStatus: 200, final: revokedBody},
			nil, "", nil, 0, `"status":"revoked"`, nil},
		{"unknown handle", asyncScript{retryAfter: []string{"5"}, pollsBeforeFinal: 0, finalStatus: 200, final: revokedBody},
			nil, "/api/revoke/status/unknownhandle", nil, 1, `"code":"not_found"`, nil},
		{"not a status link", asyncScript{retryAfter: []string{"5"}, pollsBeforeFinal: 0, finalStatus: 200, final: revokedBody},
			nil, "/api/revoke", nil, 2, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, link := queuedLink(t, tt.script)
			if tt.link != "" {
				link = srv.URL + tt.link
			}
			path, waits := fakeSleep(t)
			out, stderr, code := runWithPath(t, path, statusScript, tt.env, nil, append(tt.args, link)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("status.sh %v: exit %d, output %q (stderr %q); want exit %d and %q", tt.args, code, out, stderr, tt.wantCode, tt.wantOut)
			}
			if got := waits(); !slices.Equal(got, tt.wantWaits) {
				t.Errorf("sleeps = %q; want %q (Retry-After, clamped to 1-300 s)", got, tt.wantWaits)
			}
			for _, h := range srv.pollHeaders {
				for _, secret := range []string{"X-Functions-Key", "Webhook-Signature", "Authorization"} {
					if h.Get(secret) != "" {
						t.Errorf("a poll sent %s: the status link must be read without secrets", secret)
					}
				}
			}
		})
	}
}

// TestSendScriptWait: send.sh --wait follows the status link of a queued request to the final
// outcome; without --wait it exits 3 and prints the link; a link elsewhere is not followed.
func TestSendScriptWait(t *testing.T) {
	t.Parallel()
	mustTool(t, "openssl", "apt-get install openssl")
	mustTool(t, "curl", "apt-get install curl")
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"wait", []string{"--wait"}, nil, 0, `"status":"revoked"`, ""},
		{"no wait", nil, nil, 3, `"status":"queued"`, "status link: http://127.0.0.1"},
		{"link outside STATUS_BASE", []string{"--wait"}, []string{"STATUS_BASE=https://func-entra-revoke.azurewebsites.net"}, 2, `"status":"queued"`, "not followed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAsyncServer(t, asyncScript{retryAfter: []string{"4"}, pollsBeforeFinal: 1, finalStatus: 200, final: revokedBody})
			path, waits := fakeSleep(t)
			env := append([]string{"WEBHOOK_SECRET=" + testSecret, "FUNCTION_KEY=" + functionKey}, tt.env...)
			out, stderr, code := runWithPath(t, path, sendScript, env, []byte(`{"upn":"alice@contoso.com"}`), append(tt.args, srv.URL+"/api/revoke")...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("send.sh %v: exit %d, stdout %q, stderr %q; want exit %d, %q, stderr %q", tt.args, code, out, stderr, tt.wantCode, tt.wantOut, tt.wantErr)
			}
			if tt.wantCode == 0 && !slices.Equal(waits(), []string{"4"}) {
				t.Errorf("sleeps = %q; want [4]", waits())
			}
			if len(srv.posts) != 1 || srv.posts[0].Header.Get("x-functions-key") != functionKey {
				t.Errorf("POSTs = %d; want one carrying the function key", len(srv.posts))
			}
			for _, h := range srv.pollHeaders {
				if h.Get("X-Functions-Key") != "" || h.Get("Webhook-Signature") != "" {
					t.Errorf("a poll sent the function key or the signature: %v", h)
				}
			}
		})
	}
}

// TestServiceNowStatus: the Script Include keeps the status link of a queued request, and reads
// it without secrets, reporting whether the outcome is final and when to look again.
func TestServiceNowStatus(t *testing.T) {
	t.Parallel()
	mustTool(t, "node", "the Makefile's node-tools target needs it too")
	script, err := filepath.Abs(serviceNowPath)
	if err != nil {
		t.Fatal(err)
	}
	const (
		endpoint = "https://func-entra-revoke.azurewebsites.net/api/revoke"
		link     = "https://func-entra-revoke.azurewebsites.net/api/revoke/status/AbC-123_xyz"
	)
	props := map[string]string{
		"x_entra_revoke.endpoint":       endpoint,
		"x_entra_revoke.webhook_secret": testSecret,
		"x_entra_revoke.function_key":   functionKey,
	}
	type response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	tests := []struct {
		name       string
		method     string
		args       []any
		responses  []response
		wantResult map[string]any // fields of the result
		wantFail   bool           // the script throws
	}{
		{"revoke keeps the status link", "revoke", []any{"alice@contoso.com", "INC1", "Lost phone"},
			[]response{{202, map[string]string{"Location": link, "Retry-After": "5"}, `{"status":"queued"}`}},
			map[string]any{"status": 202.0, "statusUrl": link}, false},
		{"revoke ignores a link elsewhere", "revoke", []any{"alice@contoso.com", "INC1", "Lost phone"},
			[]response{{202, map[string]string{"Location": "https://evil.example/api/revoke/status/x"}, `{"status":"queued"}`}},
			map[string]any{"status": 202.0, "statusUrl": nil}, false},
		{"still queued", "status", []any{link},
			[]response{{202, map[string]string{"location": link, "retry-after": "7"}, `{"status":"queued"}`}},
			map[string]any{"final": false, "revoked": false, "retryAfter": 7.0}, false},
		{"final, revoked", "status", []any{link},
			[]response{{200, nil, `{"status":"revoked"}`}},
			map[string]any{"final": true, "revoked": true, "status": 200.0}, false},
		{"final, failed", "status", []any{link},
			[]response{{503, nil, `{"status":"failed"}`}},
			map[string]any{"final": true, "revoked": false, "status": 503.0}, false},
		{"a link elsewhere is refused", "status", []any{"https://evil.example/api/revoke/status/x"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, _ := json.Marshal(map[string]any{"properties": props, "method": tt.method, "args": tt.args, "responses": tt.responses})
			out, stderr, code := runScript(t, "node", nil, in, "testdata/servicenow-harness.js", script)
			if tt.wantFail {
				if code == 0 {
					t.Fatalf("harness succeeded (%s); want the script to refuse", out)
				}
				return
			}
			if code != 0 {
				t.Fatalf("node harness exit %d: %s", code, stderr)
			}
			var got struct {
				Request struct {
					Endpoint, Method string
					Headers          map[string]string
				}
				Result map[string]any
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("harness output %q: %v", out, err)
			}
			for k, want := range tt.wantResult {
				if got.Result[k] != want {
					t.Errorf("result[%s] = %v; want %v (result %v)", k, got.Result[k], want, got.Result)
				}
			}
			if tt.method == "status" {
				if got.Request.Endpoint != tt.args[0] || !strings.EqualFold(got.Request.Method, "get") || len(got.Request.Headers) != 0 {
					t.Errorf("request = %s %s headers %v; want a bare GET of the link", got.Request.Method, got.Request.Endpoint, got.Request.Headers)
				}
			}
		})
	}
}

// TestTicketingRealStatusLink: against the real handler, send.sh gets a deferred user's 202 and
// its status link; status.sh reads the handler's status route: still queued (exit 3), then,
// once the queue's work is done, the final answer (exit 0).
func TestTicketingRealStatusLink(t *testing.T) {
	t.Parallel()
	mustTool(t, "openssl", "apt-get install openssl")
	mustTool(t, "curl", "apt-get install curl")
	h := mustHandler(t, []string{testSecret}, false)
	env := []string{"WEBHOOK_SECRET=" + testSecret, "FUNCTION_KEY=" + functionKey}
	out, stderr, code := runScript(t, sendScript, env, []byte(`{"upn":"`+deferredUser+`","ticket":"INC7"}`), h.URL)
	_, link, found := strings.Cut(strings.TrimSpace(stderr), "status link: ")
	if code != 3 || !found || !strings.Contains(out, `"status":"queued"`) {
		t.Fatalf("send.sh: exit %d, stdout %q, stderr %q; want exit 3, queued and the status link", code, out, stderr)
	}
	if out, _, code := runScript(t, statusScript, nil, nil, link); code != 3 || !strings.Contains(out, `"status":"queued"`) {
		t.Errorf("status.sh before the queue finished: exit %d, %q; want 3 and queued", code, out)
	}
	h.finishDeferred(t)
	if out, _, code := runScript(t, statusScript, nil, nil, "--wait", link); code != 0 || !strings.Contains(out, `"status":"revoked"`) {
		t.Errorf("status.sh --wait after the queue finished: exit %d, %q; want 0 and revoked", code, out)
	}
	if out, _, code := runScript(t, statusScript, nil, nil, link+"x"); code != 1 || !strings.Contains(out, `"not_found"`) {
		t.Errorf("status.sh on a forged link: exit %d, %q; want 1 and not_found", code, out)
	}
}
