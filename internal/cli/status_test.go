package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// statusRoute is a status link speaking the route's protocol: 202 with Retry-After and the
// response as it stands while a user is queued, then the final status and body.
type statusRoute struct {
	mu      sync.Mutex
	answers []statusReply // served in turn; the last one again and again
	times   []time.Time
	srv     *httptest.Server
}

type statusReply struct {
	code       int
	retryAfter string
	body       string
}

const handle = "Wn3k9QbE2xYf7TqLp0sVcA8dR5uJhG1m"

func newStatusRoute(t *testing.T, answers ...statusReply) *statusRoute {
	t.Helper()
	s := &statusRoute{answers: answers}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.times = append(s.times, time.Now())
		a := s.answers[0]
		if len(s.answers) > 1 {
			s.answers = s.answers[1:]
		}
		s.mu.Unlock()
		if r.Method != http.MethodGet || r.URL.Path != "/api/revoke/status/"+handle {
			a = statusReply{code: 404, body: `{"error":{"code":"not_found","message":"no such route"}}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if a.code == http.StatusAccepted {
			w.Header().Set("Location", "http://"+r.Host+r.URL.Path)
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.code)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *statusRoute) url() string { return s.srv.URL + "/api/revoke/status/" + handle }

func (s *statusRoute) requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

func statusBody(status string, users ...string) string {
	type user struct {
		UPN    string `json:"upn"`
		Status string `json:"status"`
	}
	body := struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		DryRun    bool   `json:"dryRun"`
		Results   []user `json:"results"`
		StatusURL string `json:"statusUrl,omitempty"`
	}{ID: "msg_status_1", Status: status}
	for i := 0; i+1 < len(users); i += 2 {
		body.Results = append(body.Results, user{UPN: users[i], Status: users[i+1]})
	}
	if status == "queued" || strings.Contains(strings.Join(users, " "), "queued") {
		body.StatusURL = "https://example.invalid/api/revoke/status/" + handle
	}
	b, _ := json.Marshal(body)
	return string(b)
}

var (
	queuedBoth = statusReply{code: 202, retryAfter: "1", body: statusBody("queued", "alice@contoso.com", "queued", "bob@contoso.com", "queued")}
	queuedOne  = statusReply{code: 202, retryAfter: "1", body: statusBody("partial", "alice@contoso.com", "revoked", "bob@contoso.com", "queued")}
	doneBoth   = statusReply{code: 200, body: statusBody("revoked", "alice@contoso.com", "revoked", "bob@contoso.com", "revoked")}
	doneMixed  = statusReply{code: 207, body: statusBody("partial", "alice@contoso.com", "revoked", "bob@contoso.com", "failed")}
	failedOne  = statusReply{code: 503, body: statusBody("failed", "alice@contoso.com", "failed")}
	unknown    = statusReply{code: 404, body: `{"error":{"code":"not_found","message":"Not found."}}`}
)

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		answers  []statusReply
		flags    []string
		wantCode int
		wantGets int
		want     []string // in stdout
		wantErr  string   // in stderr
	}{
		{name: "final at once", answers: []statusReply{doneBoth}, wantCode: 0, wantGets: 1,
			want: []string{"alice@contoso.com  revoked", "bob@contoso.com    revoked", "2 user(s): 2 revoked"}},
		{name: "still queued, no --wait", answers: []statusReply{queuedOne, doneBoth}, wantCode: 1, wantGets: 1,
			want: []string{"bob@contoso.com    queued", "still queued: run with --wait"}},
		{name: "--wait until revoked", answers: []statusReply{queuedBoth, queuedOne, doneBoth}, flags: []string{"--wait"}, wantCode: 0, wantGets: 3,
			want: []string{"2 user(s): 2 revoked"}},
		{name: "--wait until a user failed", answers: []statusReply{queuedOne, doneMixed}, flags: []string{"--wait"}, wantCode: 1, wantGets: 2,
			want: []string{"bob@contoso.com    failed", "1 revoked, 1 failed"}},
		{name: "503 failed", answers: []statusReply{failedOne}, flags: []string{"--wait"}, wantCode: 1, wantGets: 1,
			want: []string{"alice@contoso.com  failed"}},
		{name: "--json", answers: []statusReply{queuedOne, doneBoth}, flags: []string{"--wait", "--json"}, wantCode: 0, wantGets: 2,
			want: []string{`"status": "revoked"`, `"upn": "bob@contoso.com"`}},
		{name: "unknown link", answers: []statusReply{unknown}, flags: []string{"--wait"}, wantCode: 1, wantGets: 1,
			wantErr: "HTTP 404 not_found: the link is unknown, wrong or expired"},
		{name: "--timeout", answers: []statusReply{queuedOne}, flags: []string{"--wait", "--timeout", "1500ms"}, wantCode: 1,
			want: []string{"bob@contoso.com    queued", "still queued after 1.5s: run again to keep waiting"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			route := newStatusRoute(t, tt.answers...)
			// Flags may follow the URL, as operators paste it first.
			args := append([]string{"status", route.url()}, tt.flags...)
			r := mustRun(t, map[string]string{}, "", args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d; want %d\n%s", r.code, tt.wantCode, r)
			}
			gets := route.requests()
			if tt.wantGets != 0 && len(gets) != tt.wantGets {
				t.Errorf("GETs = %d; want %d\n%s", len(gets), tt.wantGets, r)
			}
			// Retry-After: 1 is honoured between polls.
			for i := 1; i < len(gets); i++ {
				if gap := gets[i].Sub(gets[i-1]); gap < 900*time.Millisecond {
					t.Errorf("poll %d came %s after the previous one; want Retry-After's 1 s", i+1, gap)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q\n%s", w, r)
				}
			}
			if tt.wantErr != "" && !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q\n%s", tt.wantErr, r)
			}
			if strings.Contains(r.stderr, handle) {
				t.Errorf("stderr shows the link's handle, a credential\n%s", r)
			}
		})
	}
}

func TestStatusUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no URL", []string{"status"}, "takes one status URL"},
		{"two URLs", []string{"status", "https://a.example.com/api/revoke/status/x", "https://b.example.com/api/revoke/status/y"}, "takes one status URL"},
		{"plain http to a network host", []string{"status", "http://func-revoke.azurewebsites.net/api/revoke/status/" + handle}, "must use https"},
		{"not a URL", []string{"status", "status/" + handle}, "is not an absolute URL"},
		{"bad timeout", []string{"status", "--wait", "--timeout", "0s", "https://a.example.com/api/revoke/status/x"}, "--timeout must be positive"},
		{"unknown flag", []string{"status", "--follow", "https://a.example.com/api/revoke/status/x"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		r := mustRun(t, map[string]string{}, "", tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s: exit %d; want 2 and %q\n%s", tt.name, r.code, tt.want, r)
		}
		if strings.Contains(r.stderr, handle) {
			t.Errorf("%s: stderr shows the handle\n%s", tt.name, r)
		}
	}
}
