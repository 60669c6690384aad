package graph

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

const testToken = "static-test-token"

var (
	alice = graphtest.User{
		ID:                "3f1c2b9e-5a6d-4e7f-8a9b-0c1d2e3f4a5b",
		UPN:               "alice@contoso.com",
		UserType:          "Member",
		SessionsValidFrom: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	guest = graphtest.User{
		ID:       "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a",
		UPN:      "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com",
		UserType: "Guest",
	}
)

// waits records the retry delays a client asked for, without sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) got() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// calls records OnCall.
type calls struct {
	mu sync.Mutex
	c  []Call
}

func (c *calls) on(_ context.Context, call Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c = append(c.c, call)
}

func (c *calls) got() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.c...)
}

type fixture struct {
	graph *graphtest.Graph
	cred  *graphtest.Credential
	c     *Client
	waits *waits
	calls *calls
}

// mustFixture starts a Graph fake holding alice and the guest, and a client for it with a static
// credential and a wait that records instead of sleeping.
func mustFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		graph: graphtest.NewGraph(t),
		cred:  graphtest.NewCredential(testToken),
		waits: &waits{},
		calls: &calls{},
	}
	f.graph.AddUser(alice, guest)
	f.graph.RequireToken(testToken)
	f.c = mustClient(t, Config{BaseURL: f.graph.URL(), Credential: f.cred, OnCall: f.calls.on})
	f.c.wait = f.waits.wait
	return f
}

func mustClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return c
}

func mustContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustGraphError(t *testing.T, err error) *revoke.GraphError {
	t.Helper()
	var ge *revoke.GraphError
	if !errors.As(err, &ge) {
		t.Fatalf("error = %v (%T); want *revoke.GraphError", err, err)
	}
	return ge
}

func TestRevokeWithManagedIdentity(t *testing.T) {
	// Not parallel: azidentity reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the environment.
	id := graphtest.NewIdentity(t)
	id.SetEnv(t)
	g := graphtest.NewGraph(t)
	g.AddUser(alice)
	g.RequireToken(id.Token())
	cred, err := ManagedIdentity("")
	if err != nil {
		t.Fatalf("ManagedIdentity(\"\") = %v", err)
	}
	c := mustClient(t, Config{BaseURL: g.URL(), Credential: cred})

	res, err := c.RevokeSignInSessions(mustContext(t, 25*time.Second), alice.UPN)
	if err != nil {
		t.Fatalf("RevokeSignInSessions(%q) = %v; want success", alice.UPN, err)
	}
	reqs := g.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Graph got %d requests; want 1: %+v", len(reqs), reqs)
	}
	if want := "Bearer " + id.Token(); reqs[0].Authorization != want {
		t.Errorf("Authorization = %q; want %q", reqs[0].Authorization, want)
	}
	if res.RequestID == "" || res.RequestID != reqs[0].RequestID {
		t.Errorf("GraphResult.RequestID = %q; want Graph's request-id %q", res.RequestID, reqs[0].RequestID)
	}
	if res.Attempts != 1 {
		t.Errorf("GraphResult.Attempts = %d; want 1", res.Attempts)
	}
	if n := g.Revocations(alice.UPN); n != 1 {
		t.Errorf("Graph revocations of %s = %d; want 1", alice.UPN, n)
	}

	idReqs := id.Requests()
	if len(idReqs) == 0 {
		t.Fatal("identity endpoint got no request")
	}
	got := idReqs[len(idReqs)-1]
	if want := "http://" + g.Host(); got.Resource != want {
		t.Errorf("token resource = %q; want %q (scope derived from GRAPH_BASE_URL)", got.Resource, want)
	}
	if !got.HeaderOK || got.APIVersion != graphtest.IdentityAPIVersion || got.ClientID != "" {
		t.Errorf("identity request = %+v; want X-IDENTITY-HEADER, api-version %s, no client_id", got, graphtest.IdentityAPIVersion)
	}
}

func TestManagedIdentityUserAssigned(t *testing.T) {
	id := graphtest.NewIdentity(t)
	id.SetEnv(t)
	const clientID = "0b6e1c3a-7d2f-4e8a-9c5b-1a2b3c4d5e6f"
	cred, err := ManagedIdentity(clientID)
	if err != nil {
		t.Fatalf("ManagedIdentity(%q) = %v", clientID, err)
	}
	if _, _, err := Roles(mustContext(t, 25*time.Second), cred, "https://graph.microsoft.com/.default"); err != nil {
		t.Fatalf("Roles() = %v; want nil", err)
	}
	reqs := id.Requests()
	if len(reqs) != 1 {
		t.Fatalf("identity got %d requests; want 1", len(reqs))
	}
	if reqs[0].ClientID != clientID || reqs[0].Resource != "https://graph.microsoft.com" {
		t.Errorf("identity request client_id=%q resource=%q; want %q, %q", reqs[0].ClientID, reqs[0].Resource, clientID, "https://graph.microsoft.com")
	}
}

func TestIdentityFailure(t *testing.T) {
	id := graphtest.NewIdentity(t)
	id.SetEnv(t)
	id.Fail(http.StatusBadRequest, `{"statusCode":400,"message":"Unable to load the proper Managed Identity."}`)
	g := graphtest.NewGraph(t)
	g.AddUser(alice)
	cred, err := ManagedIdentity("")
	if err != nil {
		t.Fatalf("ManagedIdentity(\"\") = %v", err)
	}
	cc := &calls{}
	c := mustClient(t, Config{BaseURL: g.URL(), Credential: cred, OnCall: cc.on})
	ctx := mustContext(t, 25*time.Second)

	ops := []struct {
		name string
		call func() error
	}{
		{"RevokeSignInSessions", func() error { _, err := c.RevokeSignInSessions(ctx, alice.UPN); return err }},
		{"LookupUser", func() error { _, err := c.LookupUser(ctx, alice.UPN); return err }},
		{"ReadSessions", func() error { _, err := c.ReadSessions(ctx, alice.UPN); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.call()
			t.Logf("%s: %v", op.name, err)
			ge := mustGraphError(t, err)
			if ge.Status != revoke.StatusFailed || ge.HTTPStatus != 0 || ge.Attempts != 0 {
				t.Errorf("%s with failing identity = {Status:%s HTTPStatus:%d Attempts:%d}; want {failed 0 0}", op.name, ge.Status, ge.HTTPStatus, ge.Attempts)
			}
			if !errors.Is(err, ErrToken) {
				t.Errorf("%s error %v does not wrap ErrToken", op.name, err)
			}
			assertNoSecrets(t, err.Error(), id)
		})
	}
	if n := len(g.Requests()); n != 0 {
		t.Errorf("Graph got %d requests without a token; want 0", n)
	}
	if n := len(cc.got()); n != 0 {
		t.Errorf("OnCall called %d times with no HTTP attempt; want 0", n)
	}

	// Once the endpoint recovers, the same client works: nothing was cached from the failure.
	id.Fail(0, "")
	if _, err := c.LookupUser(ctx, alice.UPN); err != nil {
		t.Errorf("LookupUser() after recovery = %v; want nil", err)
	}
}

func assertNoSecrets(t *testing.T, text string, id *graphtest.Identity) {
	t.Helper()
	for _, secret := range []string{id.Token(), id.Secret()} {
		if strings.Contains(text, secret) {
			t.Errorf("error text %q contains a secret", text)
		}
	}
}

// TestClientTokenScope: the client asks for the scope of its own GRAPH_BASE_URL. The credential
// refuses, so no request leaves the machine whatever the host.
func TestClientTokenScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		baseURL string
		want    string
	}{
		{"", "https://graph.microsoft.com/.default"},
		{"https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"},
		{"https://graph.microsoft.us/v1.0/", "https://graph.microsoft.us/.default"},
		{"https://microsoftgraph.chinacloudapi.cn/v1.0", "https://microsoftgraph.chinacloudapi.cn/.default"},
		{"http://127.0.0.1:8080/v1.0", "http://127.0.0.1:8080/.default"},
	}
	for _, tt := range tests {
		t.Run(tt.baseURL, func(t *testing.T) {
			t.Parallel()
			cred := graphtest.NewCredential(testToken)
			cred.Fail(errors.New("no token in this test"))
			c := mustClient(t, Config{BaseURL: tt.baseURL, Credential: cred})
			if _, err := c.LookupUser(mustContext(t, 5*time.Second), "alice@contoso.com"); !errors.Is(err, ErrToken) {
				t.Fatalf("LookupUser() with a refusing credential = %v; want an ErrToken", err)
			}
			got := cred.Scopes()
			if len(got) != 1 || len(got[0]) != 1 || got[0][0] != tt.want {
				t.Errorf("BaseURL %q: scopes asked = %v; want [[%s]]", tt.baseURL, got, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	cred := graphtest.NewCredential(testToken)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no credential", Config{BaseURL: DefaultBaseURL}},
		{"plain http to a remote host", Config{BaseURL: "http://graph.microsoft.com/v1.0", Credential: cred}},
		{"other scheme", Config{BaseURL: "ftp://graph.microsoft.com/v1.0", Credential: cred}},
		{"user info", Config{BaseURL: "https://user:pw@graph.microsoft.com/v1.0", Credential: cred}},
		{"query", Config{BaseURL: "https://graph.microsoft.com/v1.0?x=1", Credential: cred}},
		{"no host", Config{BaseURL: "https:///v1.0", Credential: cred}},
		{"not a URL", Config{BaseURL: "::", Credential: cred}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if c, err := New(tt.cfg); err == nil {
				t.Errorf("New(%+v) = %v, nil; want an error", tt.cfg, c)
			}
		})
	}
}

func TestRevokePathEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		user    string
		wantRaw string // must appear in the escaped path
	}{
		{"guest UPN", guest.UPN, "jane_fabrikam.com%23EXT%23"},
		{"apostrophe", "o'neil@contoso.com", "o%27neil"},
		{"object ID", alice.ID, alice.ID},
		{"case kept", "Alice@Contoso.COM", "Alice"},
		{"allowed punctuation", "a.b-c_d!e^f~g@contoso.com", "a.b-c_d"},
		{"looks like /me to the SDK", "me-token-to-replace@contoso.com", "/users/me-token-to-replace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFixture(t)
			f.graph.AddUser(graphtest.User{ID: "id-" + tt.name, UPN: tt.user})
			if _, err := f.c.RevokeSignInSessions(mustContext(t, 25*time.Second), tt.user); err != nil {
				t.Fatalf("RevokeSignInSessions(%q) = %v; want success", tt.user, err)
			}
			reqs := f.graph.Requests()
			if len(reqs) != 1 {
				t.Fatalf("Graph got %d requests; want 1", len(reqs))
			}
			r := reqs[0]
			if r.User != tt.user || r.Action != "revokeSignInSessions" || r.Method != http.MethodPost {
				t.Errorf("RevokeSignInSessions(%q) reached Graph as %s user=%q action=%q; want POST user=%q action=revokeSignInSessions", tt.user, r.Method, r.User, r.Action, tt.user)
			}
			if !strings.Contains(r.RawPath, tt.wantRaw) {
				t.Errorf("RevokeSignInSessions(%q): escaped path %q does not contain %q", tt.user, r.RawPath, tt.wantRaw)
			}
			if strings.Contains(r.RawPath, "#") {
				t.Errorf("RevokeSignInSessions(%q): escaped path %q holds a raw #", tt.user, r.RawPath)
			}
		})
	}
}

func TestHostileUserStaysInItsSegment(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := mustContext(t, 25*time.Second)
	const user = "../../me?x=1#frag"
	_, err := f.c.RevokeSignInSessions(ctx, user)
	if ge := mustGraphError(t, err); ge.Status != revoke.StatusNotFound {
		t.Errorf("RevokeSignInSessions(%q) status = %s; want not_found", user, ge.Status)
	}
	if reqs := f.graph.Requests(); len(reqs) != 1 || reqs[0].User != user || reqs[0].RawQuery != "" {
		t.Errorf("RevokeSignInSessions(%q) reached Graph as %+v; want one request for that exact user, no query", user, reqs)
	}

	for _, bad := range []string{"", ".", ".."} {
		_, err := f.c.RevokeSignInSessions(ctx, bad)
		if ge := mustGraphError(t, err); ge.Status != revoke.StatusFailed || !errors.Is(err, errBadUser) {
			t.Errorf("RevokeSignInSessions(%q) = %v; want failed, errBadUser", bad, err)
		}
	}
	if n := len(f.graph.Requests()); n != 1 {
		t.Errorf("Graph got %d requests; want no more for empty or dot users", n)
	}
}

// A revocation is never redirected: a 3xx is a failed call, and neither the SDK nor net/http
// follows it anywhere, with or without the token.
func TestRevokeRedirectFailsClosed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, target := range []string{other.URL + "/v1.0/users/x/revokeSignInSessions", "/v1.0/users/" + guest.ID + "/revokeSignInSessions"} {
			f := mustFixture(t)
			f.graph.Script(alice.UPN, graphtest.Response{Status: status, Location: target, Body: " "})
			_, err := f.c.RevokeSignInSessions(mustContext(t, 5*time.Second), alice.UPN)
			ge := mustGraphError(t, err)
			if ge.Status != revoke.StatusFailed || ge.HTTPStatus != status || ge.Attempts != 1 {
				t.Errorf("%d to %s: {Status:%s HTTPStatus:%d Attempts:%d}; want failed, %d, 1 attempt", status, target, ge.Status, ge.HTTPStatus, ge.Attempts, status)
			}
			if n := len(f.graph.Requests()); n != 1 {
				t.Errorf("%d to %s: Graph got %d requests; want 1 (the redirect not followed)", status, target, n)
			}
			if f.graph.Revocations(guest.ID) != 0 {
				t.Errorf("%d to %s: the redirect revoked another user", status, target)
			}
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("another host got %d requests", n)
	}
}

func TestRevokeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		user       string
		setup      func(g *graphtest.Graph)
		status     revoke.Status
		httpStatus int
		code       string
		message    string // substring
		attempts   int
		retryAfter time.Duration
	}{
		{
			name: "not found", user: "nobody@contoso.com",
			status: revoke.StatusNotFound, httpStatus: 404, code: "Request_ResourceNotFound",
			message: "Resource 'nobody@contoso.com' does not exist", attempts: 1,
		},
		{
			name: "forbidden", user: alice.UPN,
			setup:  func(g *graphtest.Graph) { g.Script(alice.UPN, graphtest.Forbidden()) },
			status: revoke.StatusDenied, httpStatus: 403, code: "Authorization_RequestDenied",
			message: "Insufficient privileges", attempts: 1,
		},
		{
			name: "unauthorized", user: alice.UPN,
			setup:  func(g *graphtest.Graph) { g.RequireToken("another-token") },
			status: revoke.StatusDenied, httpStatus: 401, code: "InvalidAuthenticationToken", attempts: 1,
		},
		{
			name: "internal error is not retried", user: alice.UPN,
			setup:  func(g *graphtest.Graph) { g.Script(alice.UPN, graphtest.Response{Status: 500}) },
			status: revoke.StatusFailed, httpStatus: 500, code: "UnknownError", attempts: 1,
		},
		{
			name: "bad request", user: alice.UPN,
			setup:  func(g *graphtest.Graph) { g.Script(alice.UPN, graphtest.Response{Status: 400}) },
			status: revoke.StatusFailed, httpStatus: 400, code: "BadRequest", attempts: 1,
		},
		{
			name: "gateway HTML", user: alice.UPN,
			setup: func(g *graphtest.Graph) {
				g.Script(alice.UPN, graphtest.Response{Status: 502, Body: "<html>Bad Gateway</html>"})
			},
			status: revoke.StatusFailed, httpStatus: 502, attempts: 1,
		},
		{
			name: "error body without code", user: alice.UPN,
			setup:  func(g *graphtest.Graph) { g.Script(alice.UPN, graphtest.Response{Status: 404, Body: `{"error":{}}`}) },
			status: revoke.StatusNotFound, httpStatus: 404, attempts: 1,
		},
		{
			name: "throttled after retries", user: alice.UPN,
			setup: func(g *graphtest.Graph) {
				for range 10 {
					g.Script(alice.UPN, graphtest.TooManyRequests("2"))
				}
			},
			status: revoke.StatusThrottled, httpStatus: 429, code: "TooManyRequests", attempts: 5, retryAfter: 2 * time.Second,
		},
		{
			name: "unavailable after retries", user: alice.UPN,
			setup: func(g *graphtest.Graph) {
				for range 10 {
					g.Script(alice.UPN, graphtest.ServiceUnavailable())
				}
			},
			status: revoke.StatusFailed, httpStatus: 503, code: "ServiceUnavailable", attempts: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFixture(t)
			if tt.setup != nil {
				tt.setup(f.graph)
			}
			res, err := f.c.RevokeSignInSessions(mustContext(t, 25*time.Second), tt.user)
			if err == nil {
				t.Fatalf("RevokeSignInSessions(%q) = %+v, nil; want status %s", tt.user, res, tt.status)
			}
			ge := mustGraphError(t, err)
			if ge.Status != tt.status || ge.HTTPStatus != tt.httpStatus || ge.Code != tt.code || ge.Attempts != tt.attempts || ge.RetryAfter != tt.retryAfter {
				t.Errorf("RevokeSignInSessions(%q) = {Status:%s HTTPStatus:%d Code:%q Attempts:%d RetryAfter:%v}; want {%s %d %q %d %v}",
					tt.user, ge.Status, ge.HTTPStatus, ge.Code, ge.Attempts, ge.RetryAfter, tt.status, tt.httpStatus, tt.code, tt.attempts, tt.retryAfter)
			}
			if !strings.Contains(ge.Message, tt.message) {
				t.Errorf("GraphError.Message = %q; want it to contain %q", ge.Message, tt.message)
			}
			reqs := f.graph.Requests()
			// Exactly our attempts reached Graph: the SDK's own retry handler is out of the pipeline.
			if len(reqs) != tt.attempts {
				t.Fatalf("Graph got %d requests; want %d", len(reqs), tt.attempts)
			}
			if last := reqs[len(reqs)-1]; ge.RequestID != last.RequestID {
				t.Errorf("GraphError.RequestID = %q; want the last response's request-id %q", ge.RequestID, last.RequestID)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
			if want := tt.attempts - 1; len(f.waits.got()) != want {
				t.Errorf("waited %v; want %d waits", f.waits.got(), want)
			}
		})
	}
}

func TestRevokeRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		script   []graphtest.Response
		attempts int
		// each wait must fall in [min, max]
		waits [][2]time.Duration
	}{
		{
			name:     "429 then 200 honours Retry-After seconds",
			script:   []graphtest.Response{graphtest.TooManyRequests("7"), graphtest.OK()},
			attempts: 2,
			waits:    [][2]time.Duration{{7 * time.Second, 7 * time.Second}},
		},
		{
			name:     "429 honours Retry-After HTTP date",
			script:   []graphtest.Response{graphtest.TooManyRequests(time.Now().Add(4 * time.Second).UTC().Format(http.TimeFormat))},
			attempts: 2,
			waits:    [][2]time.Duration{{2 * time.Second, 4 * time.Second}},
		},
		{
			name:     "503 twice backs off exponentially with jitter",
			script:   []graphtest.Response{graphtest.ServiceUnavailable(), graphtest.ServiceUnavailable()},
			attempts: 3,
			waits:    [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}},
		},
		{
			name:     "504 is retried",
			script:   []graphtest.Response{{Status: http.StatusGatewayTimeout}},
			attempts: 2,
			waits:    [][2]time.Duration{{500 * time.Millisecond, time.Second}},
		},
		{
			name:     "204 is success",
			script:   []graphtest.Response{graphtest.NoContent()},
			attempts: 1,
		},
		{
			name:     "any 2xx body is success",
			script:   []graphtest.Response{{Status: http.StatusAccepted, Body: "not json"}},
			attempts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFixture(t)
			f.graph.Script(alice.UPN, tt.script...)
			start := time.Now().UTC().Truncate(time.Second)
			res, err := f.c.RevokeSignInSessions(mustContext(t, 25*time.Second), alice.UPN)
			if err != nil {
				t.Fatalf("RevokeSignInSessions(%q) = %v; want success", alice.UPN, err)
			}
			reqs := f.graph.Requests()
			if res.Attempts != tt.attempts || len(reqs) != tt.attempts {
				t.Errorf("Attempts = %d, Graph requests = %d; want %d", res.Attempts, len(reqs), tt.attempts)
			}
			if res.RequestID != reqs[len(reqs)-1].RequestID {
				t.Errorf("RequestID = %q; want the last answer's %q", res.RequestID, reqs[len(reqs)-1].RequestID)
			}
			got := f.waits.got()
			if len(got) != len(tt.waits) {
				t.Fatalf("waits = %v; want %d", got, len(tt.waits))
			}
			for i, w := range tt.waits {
				if got[i] < w[0] || got[i] > w[1] {
					t.Errorf("wait %d = %v; want within [%v, %v]", i, got[i], w[0], w[1])
				}
			}
			if u, _ := f.graph.User(alice.UPN); u.SessionsValidFrom.Before(start) {
				t.Errorf("after revocation signInSessionsValidFromDateTime = %v; want >= %v", u.SessionsValidFrom, start)
			}
		})
	}
}

func TestRetryAfterHonouredOnTheClock(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	f.c.wait = sleep // the real wait
	f.graph.Script(alice.UPN, graphtest.TooManyRequests("1"))
	if _, err := f.c.RevokeSignInSessions(mustContext(t, 25*time.Second), alice.UPN); err != nil {
		t.Fatalf("RevokeSignInSessions(%q) = %v; want success", alice.UPN, err)
	}
	reqs := f.graph.Requests()
	if len(reqs) != 2 {
		t.Fatalf("Graph got %d requests; want 2", len(reqs))
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < time.Second {
		t.Errorf("retry came %v after a 429 with Retry-After: 1; want >= 1s", gap)
	}
}

func TestRetryStopsAtDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		script     graphtest.Response
		backoff    time.Duration
		status     revoke.Status
		retryAfter time.Duration
	}{
		{"Retry-After beyond the deadline", graphtest.TooManyRequests("30"), time.Second, revoke.StatusThrottled, 30 * time.Second},
		{"backoff beyond the deadline", graphtest.ServiceUnavailable(), 20 * time.Second, revoke.StatusFailed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFixture(t)
			f.c.backoffBase, f.c.backoffMax = tt.backoff, tt.backoff
			f.graph.Script(alice.UPN, tt.script, tt.script)
			_, err := f.c.RevokeSignInSessions(mustContext(t, 5*time.Second), alice.UPN)
			ge := mustGraphError(t, err)
			if ge.Status != tt.status || ge.Attempts != 1 || ge.RetryAfter != tt.retryAfter {
				t.Errorf("RevokeSignInSessions = {Status:%s Attempts:%d RetryAfter:%v}; want {%s 1 %v}", ge.Status, ge.Attempts, ge.RetryAfter, tt.status, tt.retryAfter)
			}
			if w := f.waits.got(); len(w) != 0 {
				t.Errorf("waited %v although the wait would pass the deadline", w)
			}
		})
	}
}

func TestContextEnds(t *testing.T) {
	t.Parallel()
	t.Run("deadline during the request", func(t *testing.T) {
		t.Parallel()
		f := mustFixture(t)
		f.graph.SetLatency(10 * time.Second)
		_, err := f.c.RevokeSignInSessions(mustContext(t, 300*time.Millisecond), alice.UPN)
		ge := mustGraphError(t, err)
		if ge.Status != revoke.StatusFailed || ge.HTTPStatus != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RevokeSignInSessions past its deadline = %v (status %s, http %d); want failed, 0, wrapping context.DeadlineExceeded", err, ge.Status, ge.HTTPStatus)
		}
		if c := f.calls.got(); len(c) != 1 || c[0].ResultCode != 0 || c[0].Success {
			t.Errorf("OnCall = %+v; want one failed call with ResultCode 0", c)
		}
	})
	t.Run("cancelled while waiting to retry", func(t *testing.T) {
		t.Parallel()
		f := mustFixture(t)
		ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
		defer cancel()
		f.c.wait = func(ctx context.Context, _ time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		f.graph.Script(alice.UPN, graphtest.TooManyRequests("1"))
		_, err := f.c.RevokeSignInSessions(ctx, alice.UPN)
		ge := mustGraphError(t, err)
		if ge.Status != revoke.StatusFailed || !errors.Is(err, context.Canceled) || ge.Attempts != 1 {
			t.Errorf("RevokeSignInSessions cancelled = %v (status %s, attempts %d); want failed wrapping context.Canceled, 1 attempt", err, ge.Status, ge.Attempts)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		t.Parallel()
		f := mustFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := f.c.LookupUser(ctx, alice.UPN)
		if ge := mustGraphError(t, err); ge.Status != revoke.StatusFailed || !errors.Is(err, context.Canceled) {
			t.Errorf("LookupUser with a cancelled context = %v; want failed wrapping context.Canceled", err)
		}
	})
}

func TestOnCall(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := mustContext(t, 25*time.Second)
	f.graph.Script(guest.UPN, graphtest.TooManyRequests("0"))
	if _, err := f.c.RevokeSignInSessions(ctx, guest.UPN); err != nil {
		t.Fatalf("RevokeSignInSessions(%q) = %v", guest.UPN, err)
	}
	if _, err := f.c.LookupUser(ctx, guest.UPN); err != nil {
		t.Fatalf("LookupUser(%q) = %v", guest.UPN, err)
	}
	reqs := f.graph.Requests()
	got := f.calls.got()
	want := []struct {
		name, data string
		code       int
		success    bool
	}{
		{"POST /users/{id}/revokeSignInSessions", f.graph.URL() + "/users/{id}/revokeSignInSessions", 429, false},
		{"POST /users/{id}/revokeSignInSessions", f.graph.URL() + "/users/{id}/revokeSignInSessions", 200, true},
		{"GET /users/{id}", f.graph.URL() + "/users/{id}?$select=id,userPrincipalName,userType", 200, true},
	}
	if len(got) != len(want) || len(reqs) != len(want) {
		t.Fatalf("OnCall called %d times for %d requests; want %d: %+v", len(got), len(reqs), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.Name != w.name || c.Data != w.data || c.ResultCode != w.code || c.Success != w.success || c.Target != f.graph.Host() {
			t.Errorf("call %d = %+v; want Name %q Data %q ResultCode %d Success %v Target %q", i, c, w.name, w.data, w.code, w.success, f.graph.Host())
		}
		if c.RequestID != reqs[i].RequestID {
			t.Errorf("call %d RequestID = %q; want %q", i, c.RequestID, reqs[i].RequestID)
		}
		if c.Start.IsZero() || c.Duration <= 0 {
			t.Errorf("call %d Start %v Duration %v; want both set", i, c.Start, c.Duration)
		}
		if strings.Contains(c.Name+c.Data, "jane") {
			t.Errorf("call %d names the user: %+v", i, c)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	baseURL := dead.URL + "/v1.0"
	dead.Close()
	cc := &calls{}
	c := mustClient(t, Config{BaseURL: baseURL, Credential: graphtest.NewCredential(testToken), OnCall: cc.on})
	_, err := c.RevokeSignInSessions(mustContext(t, 25*time.Second), alice.UPN)
	ge := mustGraphError(t, err)
	if ge.Status != revoke.StatusFailed || ge.HTTPStatus != 0 || ge.Attempts != 1 {
		t.Errorf("RevokeSignInSessions to a closed port = {Status:%s HTTPStatus:%d Attempts:%d}; want {failed 0 1}", ge.Status, ge.HTTPStatus, ge.Attempts)
	}
	if got := cc.got(); len(got) != 1 || got[0].ResultCode != 0 || got[0].Success || got[0].Name != "POST /users/{id}/revokeSignInSessions" {
		t.Errorf("OnCall = %+v; want one failed call with ResultCode 0", got)
	}
}

func TestReadUser(t *testing.T) {
	t.Parallel()
	type read func(c *Client, ctx context.Context, user string) (revoke.User, error)
	lookup := func(c *Client, ctx context.Context, user string) (revoke.User, error) { return c.LookupUser(ctx, user) }
	sessions := func(c *Client, ctx context.Context, user string) (revoke.User, error) {
		return c.ReadSessions(ctx, user)
	}
	tests := []struct {
		name       string
		read       read
		user       string
		setup      func(g *graphtest.Graph)
		want       revoke.User
		wantSelect string
		status     revoke.Status // "" = success
	}{
		{
			name: "lookup by UPN in another case", read: lookup, user: "ALICE@contoso.com",
			want:       revoke.User{ID: alice.ID, UPN: alice.UPN, UserType: "Member"},
			wantSelect: "id,userPrincipalName,userType",
		},
		{
			name: "lookup guest by object ID", read: lookup, user: guest.ID,
			want:       revoke.User{ID: guest.ID, UPN: guest.UPN, UserType: "Guest"},
			wantSelect: "id,userPrincipalName,userType",
		},
		{
			name: "read sessions", read: sessions, user: alice.ID,
			want:       revoke.User{ID: alice.ID, UPN: alice.UPN, UserType: "Member", SessionsValidFrom: alice.SessionsValidFrom},
			wantSelect: "id,userPrincipalName,userType,signInSessionsValidFromDateTime",
		},
		{
			name: "read sessions never revoked", read: sessions, user: guest.UPN,
			want:       revoke.User{ID: guest.ID, UPN: guest.UPN, UserType: "Guest"},
			wantSelect: "id,userPrincipalName,userType,signInSessionsValidFromDateTime",
		},
		{
			name: "lookup refused", read: lookup, user: alice.UPN,
			setup:  func(g *graphtest.Graph) { g.RefuseLookups(true) },
			status: revoke.StatusDenied, wantSelect: "id,userPrincipalName,userType",
		},
		{
			name: "not found", read: sessions, user: "ghost@contoso.com",
			status: revoke.StatusNotFound, wantSelect: "id,userPrincipalName,userType,signInSessionsValidFromDateTime",
		},
		{
			name: "answer without userPrincipalName", read: lookup, user: alice.UPN,
			setup: func(g *graphtest.Graph) {
				g.Script(alice.UPN, graphtest.Response{Status: 200, Body: `{"id":"` + alice.ID + `"}`})
			},
			status: revoke.StatusFailed, wantSelect: "id,userPrincipalName,userType",
		},
		{
			name: "answer not JSON", read: lookup, user: alice.UPN,
			setup: func(g *graphtest.Graph) {
				g.Script(alice.UPN, graphtest.Response{Status: 200, Body: `<html>`})
			},
			status: revoke.StatusFailed, wantSelect: "id,userPrincipalName,userType",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFixture(t)
			if tt.setup != nil {
				tt.setup(f.graph)
			}
			got, err := tt.read(f.c, mustContext(t, 25*time.Second), tt.user)
			if tt.status == "" {
				if err != nil || got != tt.want {
					t.Errorf("read(%q) = %+v, %v; want %+v, nil", tt.user, got, err, tt.want)
				}
			} else {
				ge := mustGraphError(t, err)
				if ge.Status != tt.status || got != (revoke.User{}) {
					t.Errorf("read(%q) = %+v, status %s; want zero user, status %s", tt.user, got, ge.Status, tt.status)
				}
			}
			reqs := f.graph.Requests()
			if len(reqs) != 1 {
				t.Fatalf("Graph got %d requests; want 1", len(reqs))
			}
			if r := reqs[0]; r.Method != http.MethodGet || r.User != tt.user || r.Query.Get("$select") != tt.wantSelect {
				t.Errorf("request = %s user=%q $select=%q; want GET user=%q $select=%q", r.Method, r.User, r.Query.Get("$select"), tt.user, tt.wantSelect)
			}
		})
	}
}

func TestReadSessionsAfterRevoke(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := mustContext(t, 25*time.Second)
	start := time.Now().UTC().Truncate(time.Second)
	if _, err := f.c.RevokeSignInSessions(ctx, guest.UPN); err != nil {
		t.Fatalf("RevokeSignInSessions(%q) = %v", guest.UPN, err)
	}
	u, err := f.c.ReadSessions(ctx, guest.ID)
	if err != nil {
		t.Fatalf("ReadSessions(%q) = %v", guest.ID, err)
	}
	if u.SessionsValidFrom.Before(start) || u.SessionsValidFrom.Location() != time.UTC {
		t.Errorf("SessionsValidFrom after revoke = %v; want UTC, >= %v", u.SessionsValidFrom, start)
	}
}

func TestIdlePoolSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		concurrency, want int
	}{
		{0, DefaultConcurrency},
		{-3, DefaultConcurrency},
		{1, 1},
		{32, 32},
	}
	for _, tt := range tests {
		c := mustClient(t, Config{Credential: graphtest.NewCredential(testToken), Concurrency: tt.concurrency})
		if c.transport.MaxIdleConnsPerHost != tt.want || c.transport.MaxIdleConns < tt.want {
			t.Errorf("Concurrency %d: MaxIdleConnsPerHost %d, MaxIdleConns %d; want %d, >= %d",
				tt.concurrency, c.transport.MaxIdleConnsPerHost, c.transport.MaxIdleConns, tt.want, tt.want)
		}
	}
}

// TestIdlePoolReused proves the client really goes through the transport it sized: two rounds
// of n simultaneous calls open n connections, not n + (n - 2) as the SDK's default pool would.
func TestIdlePoolReused(t *testing.T) {
	t.Parallel()
	const n = 6
	b := newBarrier(n)
	var mu sync.Mutex
	opened := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.arrive() {
			t.Errorf("only some of %d concurrent calls arrived", n)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean","value":true}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := mustClient(t, Config{BaseURL: srv.URL + "/v1.0", Credential: graphtest.NewCredential(testToken), Concurrency: n})
	ctx := mustContext(t, 25*time.Second)
	for round := range 2 {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := c.RevokeSignInSessions(ctx, alice.UPN); err != nil {
					t.Errorf("round %d call %d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
		b.reset()
	}
	mu.Lock()
	defer mu.Unlock()
	if opened != n {
		t.Errorf("two rounds of %d concurrent calls opened %d connections; want %d (idle pool reused)", n, opened, n)
	}
}

// barrier holds arrivals until n have arrived (or a generous timeout passes).
type barrier struct {
	n       int
	mu      sync.Mutex
	count   int
	release chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, release: make(chan struct{})} }

func (b *barrier) arrive() bool {
	b.mu.Lock()
	b.count++
	ch := b.release
	if b.count == b.n {
		close(ch)
	}
	b.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

func (b *barrier) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count = 0
	b.release = make(chan struct{})
}
