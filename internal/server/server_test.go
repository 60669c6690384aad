package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// fixtureSecret signs the files of testdata/host at fixtureTime.
const fixtureSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var fixtureTime = time.Unix(1763769541, 0)

// graph is a function-field fake of the engine's Graph seams (the real client is tested against an
// HTTP Graph fake in internal/graph and end to end).
type graph struct {
	mu      sync.Mutex
	calls   []string
	revokeF func(user string) (revoke.GraphResult, error)
	lookupF func(user string) (revoke.User, error)
}

func (g *graph) RevokeSignInSessions(_ context.Context, user string) (revoke.GraphResult, error) {
	g.mu.Lock()
	g.calls = append(g.calls, user)
	f := g.revokeF
	g.mu.Unlock()
	if f != nil {
		return f(user)
	}
	return revoke.GraphResult{RequestID: "graph-req-1", Attempts: 1}, nil
}

func (g *graph) LookupUser(_ context.Context, user string) (revoke.User, error) {
	if g.lookupF != nil {
		return g.lookupF(user)
	}
	return revoke.User{}, &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}
}

func (g *graph) ReadSessions(context.Context, string) (revoke.User, error) {
	return revoke.User{}, &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403}
}

func (g *graph) revoked() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

// statusFor makes Graph answer one user with a given error.
func statusFor(user string, err error) func(string) (revoke.GraphResult, error) {
	return func(u string) (revoke.GraphResult, error) {
		if u == user {
			return revoke.GraphResult{}, err
		}
		return revoke.GraphResult{RequestID: "graph-req-1"}, nil
	}
}

type audit struct {
	mu       sync.Mutex
	rejected []telemetry.Rejection
	outcomes []revoke.Outcome
}

func (a *audit) Rejected(_ context.Context, r telemetry.Rejection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rejected = append(a.rejected, r)
}

func (a *audit) Stats() telemetry.Stats { return telemetry.Stats{Dropped: 3} }

func (a *audit) Outcome(_ context.Context, o revoke.Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.outcomes = append(a.outcomes, o)
}

func (a *audit) reasons() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.rejected {
		out = append(out, r.Reason)
	}
	return out
}

type deferrer struct {
	mu  sync.Mutex
	err error
	got []revoke.Deferral
}

func (d *deferrer) Defer(_ context.Context, def revoke.Deferral) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, def)
	return d.err
}

type poisoner struct {
	mu   sync.Mutex
	err  error
	msgs [][]byte
}

func (p *poisoner) Poison(_ context.Context, text []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, append([]byte(nil), text...))
	return p.err
}

func (p *poisoner) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

type tokens struct {
	callers map[string]entraauth.Caller
	errs    map[string]error
}

func (t tokens) Validate(_ context.Context, token string) (entraauth.Caller, error) {
	if c, ok := t.callers[token]; ok {
		return c, nil
	}
	if err, ok := t.errs[token]; ok {
		return entraauth.Caller{}, err
	}
	return entraauth.Caller{}, &entraauth.Error{Reason: "bad_token", Err: errors.New("invalid")}
}

func (tokens) Ready() bool { return true }

// store is what a test handler remembers: the lifecycle's store and the routes' state.
type store interface {
	revoke.Store
	server.State
}

// lifecycle wires a test handler's lifecycle as the CLI does: the engine, the store, HTTP answers.
func lifecycle(e revoke.Runner, st revoke.Store, cfg revoke.LifecycleConfig) *revoke.Lifecycle {
	cfg.Engine, cfg.Store, cfg.Render = e, st, server.HTTPRenderer{}
	return revoke.NewLifecycle(cfg)
}

type harness struct {
	t        *testing.T
	handler  http.Handler
	graph    *graph
	audit    *audit
	deferrer *deferrer
	poison   *poisoner
	state    *state.Memory
	keys     webhook.Keys
}

type options struct {
	rate          int      // MAX_REVOCATIONS_PER_MINUTE; 0 = unlimited
	publicBase    *url.URL // PUBLIC_BASE_URL
	storage       bool
	tokens        server.TokenValidator
	engine        func(*revoke.Config)
	allowUnsigned bool
	noSecrets     bool
	statusDown    *atomic.Bool // while true, the store cannot update status records
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	keys, err := webhook.ParseSecrets([]string{fixtureSecret})
	if err != nil {
		t.Fatal(err)
	}
	if o.noSecrets {
		keys = webhook.Keys{}
	}
	h := &harness{t: t, graph: &graph{}, audit: &audit{}, deferrer: &deferrer{}, poison: &poisoner{}, keys: keys}
	h.state = state.NewMemory(state.MemoryConfig{RatePerMinute: o.rate, Now: func() time.Time { return fixtureTime }})
	cfg := revoke.Config{Revoker: h.graph, Users: h.graph, Sink: h.audit, Concurrency: 4, RateGuard: h.state, Now: func() time.Time { return fixtureTime }}
	if o.storage {
		// As the CLI wires it: the status record is written before the message is enqueued.
		cfg.Deferrer = &revoke.StatusDeferrer{Next: h.deferrer, Statuses: h.state, TTL: time.Hour}
	}
	if o.engine != nil {
		o.engine(&cfg)
	}
	var st store = h.state
	if o.statusDown != nil {
		st = statusOutage{Memory: h.state, down: o.statusDown}
	}
	life := revoke.LifecycleConfig{
		IdempotencyTTL: time.Hour, StatusTTL: revoke.StatusTTL(time.Hour, 24*time.Hour),
		CanDefer: o.storage, MaxDequeueCount: 5,
	}
	if o.storage {
		life.Poison = h.poison
	}
	d := server.Deps{
		Lifecycle: lifecycle(revoke.New(cfg), st, life), Validator: request.NewValidator(),
		State: st, Audit: h.audit, PublicBaseURL: o.publicBase,
		Keys: keys, Tolerance: 5 * time.Minute, Tokens: o.tokens,
		Storage: o.storage, AllowUnsigned: o.allowUnsigned, QueueMaxAge: 24 * time.Hour, MaxDequeueCount: 5,
		Version: "test", Now: func() time.Time { return fixtureTime.Add(30 * time.Second) },
	}
	if o.storage {
		d.Poison = h.poison
	}
	h.handler = server.NewServer(d)
	return h
}

// signed builds a signed POST /api/revoke.
func (h *harness) signed(id, body string) *http.Request {
	h.t.Helper()
	hdr, err := h.keys.Headers(id, fixtureTime, []byte(body))
	if err != nil {
		h.t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(body))
	for k, v := range hdr {
		r.Header[k] = v
	}
	r.Header.Set("Content-Type", "application/json")
	return r
}

func (h *harness) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, r)
	return w
}

type respBody struct {
	ID        string              `json:"id"`
	Status    string              `json:"status"`
	DryRun    bool                `json:"dryRun"`
	Results   []revoke.UserResult `json:"results"`
	StatusURL string              `json:"statusUrl"`
	Error     *struct {
		Code    string           `json:"code"`
		Message string           `json:"message"`
		Details []request.Detail `json:"details"`
	} `json:"error"`
}

func decodeBody(t *testing.T, w *httptest.ResponseRecorder) respBody {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q; want application/json (body %s)", ct, w.Body)
	}
	var b respBody
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return b
}

func TestHostRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	tests := []struct {
		method, path string
		want         int
		code         string
	}{
		{"GET", "/", 200, ""},
		{"GET", "/api/health", 200, ""},
		{"GET", "/api/nothing", 404, "not_found"},
		{"GET", "/api/revoke", 405, "method_not_allowed"},
		{"PUT", "/api/revoke", 405, "method_not_allowed"},
		{"GET", "/revoke-queue", 405, "method_not_allowed"},
		{"POST", "/", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		w := h.do(httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.want {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.path, w.Code, tt.want)
			continue
		}
		if tt.code != "" {
			if b := decodeBody(t, w); b.Error == nil || b.Error.Code != tt.code {
				t.Errorf("%s %s body = %s; want error code %s", tt.method, tt.path, w.Body, tt.code)
			}
		}
		if tt.want == 405 && w.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow header", tt.method, tt.path)
		}
	}
	w := h.do(httptest.NewRequest("GET", "/api/health", nil))
	var health struct {
		Status    string `json:"status"`
		Telemetry struct {
			Dropped int `json:"dropped"`
		} `json:"telemetry"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &health); err != nil || health.Status != "ok" || health.Telemetry.Dropped != 3 {
		t.Errorf("health = %s (%v); want ok with the telemetry drop count", w.Body, err)
	}
}

// The host forwards the caller's raw request; the fixture is one as the host sends it.
func TestFixtureRequestIsRevoked(t *testing.T) {
	t.Parallel()
	raw := testenv.Fixture(t, "http-revoke-signed.txt")
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	body = bytes.TrimRight(body, "\r\n")
	req := httptest.NewRequest(r.Method, r.URL.String(), bytes.NewReader(body))
	req.Header = r.Header
	h := newHarness(t, options{})
	w := h.do(req)
	if w.Code != http.StatusOK {
		t.Fatalf("fixture request = %d %s; want 200", w.Code, w.Body)
	}
	b := decodeBody(t, w)
	if b.ID != "msg_2KWPBgLlAfxdpx2AI54pPJ85f50" || b.Status != "revoked" || len(b.Results) != 1 ||
		b.Results[0].UPN != "alice@contoso.com" || b.Results[0].GraphRequestID != "graph-req-1" || b.Results[0].RevokedAt.IsZero() {
		t.Errorf("body = %s; want alice revoked under the webhook id", w.Body)
	}
	o := h.audit.outcomes[0]
	if o.Caller != "webhook:0" || o.InvocationID != "7c9e6679-7425-40de-944b-e07fc1f90ae7" || o.Ticket != "INC0012345" {
		t.Errorf("outcome = %+v; want caller webhook:0, the invocation id and the ticket", o)
	}
}

func TestCallerAuthentication(t *testing.T) {
	t.Parallel()
	body := `{"upn":"alice@contoso.com"}`
	tests := []struct {
		name      string
		mutate    func(h *harness) *http.Request
		tokens    bool
		want      int
		reason    string
		wantChall bool
	}{
		{"no credentials", func(h *harness) *http.Request {
			r := h.signed("msg_a", body)
			r.Header.Del("webhook-signature")
			return r
		}, false, 401, "missing_signature", false},
		{"wrong secret", func(h *harness) *http.Request {
			other, _ := webhook.ParseSecrets([]string{"whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA=="})
			hdr, _ := other.Headers("msg_b", fixtureTime, []byte(body))
			r := h.signed("msg_b", body)
			r.Header.Set("webhook-signature", hdr.Get("webhook-signature"))
			return r
		}, false, 401, "bad_signature", false},
		{"altered body", func(h *harness) *http.Request {
			r := h.signed("msg_c", body)
			r.Body = io.NopCloser(strings.NewReader(`{"upn":"mallory@contoso.com"}`))
			return r
		}, false, 401, "bad_signature", false},
		{"stale timestamp", func(h *harness) *http.Request {
			hdr, _ := h.keys.Headers("msg_d", fixtureTime.Add(-10*time.Minute), []byte(body))
			r := h.signed("msg_d", body)
			for k, v := range hdr {
				r.Header[k] = v
			}
			return r
		}, false, 401, "expired", false},
		{"bad token", func(h *harness) *http.Request {
			r := httptest.NewRequest("POST", "/api/revoke", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer nope")
			r.Header.Set("Content-Type", "application/json")
			return r
		}, true, 401, "bad_token", true},
		{"missing signature with tokens accepted", func(h *harness) *http.Request {
			r := httptest.NewRequest("POST", "/api/revoke", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, true, 401, "missing_signature", true},
		{"token without role", func(h *harness) *http.Request {
			r := httptest.NewRequest("POST", "/api/revoke", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer norole")
			r.Header.Set("Content-Type", "application/json")
			return r
		}, true, 403, "missing_role", false},
		{"client not allowed", func(h *harness) *http.Request {
			r := httptest.NewRequest("POST", "/api/revoke", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer stranger")
			r.Header.Set("Content-Type", "application/json")
			return r
		}, true, 403, "client_not_allowed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := options{}
			if tt.tokens {
				o.tokens = tokens{errs: map[string]error{
					"norole":   &entraauth.Error{Reason: "missing_role", Err: errors.New("no role")},
					"stranger": &entraauth.Error{Reason: "client_not_allowed", Err: errors.New("client")},
				}}
			}
			h := newHarness(t, o)
			w := h.do(tt.mutate(h))
			if w.Code != tt.want {
				t.Fatalf("status = %d %s; want %d", w.Code, w.Body, tt.want)
			}
			wantCode := map[int]string{401: "unauthorized", 403: "forbidden_caller"}[tt.want]
			if b := decodeBody(t, w); b.Error == nil || b.Error.Code != wantCode {
				t.Errorf("body = %s; want error %s", w.Body, wantCode)
			}
			if got := w.Header().Get("WWW-Authenticate"); (got != "") != tt.wantChall || (tt.wantChall && !strings.HasPrefix(got, "Bearer")) {
				t.Errorf("WWW-Authenticate = %q; want Bearer challenge %v", got, tt.wantChall)
			}
			if got := h.audit.reasons(); len(got) != 1 || got[0] != tt.reason {
				t.Errorf("WebhookRejected reasons = %v; want [%s]", got, tt.reason)
			}
			if len(h.graph.revoked()) != 0 {
				t.Errorf("a rejected request reached Graph")
			}
		})
	}
}

func TestTokenCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{tokens: tokens{callers: map[string]entraauth.Caller{"good": {ClientID: "5f3c1d2e-0000-4000-8000-000000000001"}}}})
	send := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/revoke", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer good")
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		r.Header.Set("Idempotency-Key", "sentinel-incident-42-entity-1")
		return h.do(r)
	}
	w1 := send(`{"upn":"alice@contoso.com"}`)
	w2 := send(`{"upn":"alice@contoso.com"}`)
	if w1.Code != 200 || w2.Code != 200 || w2.Header().Get("Idempotent-Replayed") != "true" || w1.Body.String() != w2.Body.String() {
		t.Fatalf("token caller replay: %d %s / %d %s replayed=%q", w1.Code, w1.Body, w2.Code, w2.Body, w2.Header().Get("Idempotent-Replayed"))
	}
	if n := len(h.graph.revoked()); n != 1 {
		t.Errorf("Graph calls = %d; want 1 for two requests with one Idempotency-Key", n)
	}
	if h.audit.outcomes[0].Caller != "entra:5f3c1d2e-0000-4000-8000-000000000001" || h.audit.outcomes[0].RequestID != "sentinel-incident-42-entity-1" {
		t.Errorf("outcome = %+v; want caller entra:<client id> and the Idempotency-Key as request id", h.audit.outcomes[0])
	}
	if w := send(`{"upn":"bob@contoso.com"}`); w.Code != http.StatusConflict {
		t.Errorf("same Idempotency-Key, other body = %d; want 409", w.Code)
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		body        string
		contentType string
		want        int
		code        string
		field       string
	}{
		{"too large", `{"upn":"alice@contoso.com","reason":"` + strings.Repeat("x", 70000) + `"}`, "application/json", 413, "payload_too_large", ""},
		{"wrong media type", `{"upn":"alice@contoso.com"}`, "text/plain", 415, "unsupported_media_type", ""},
		{"other charset", `{"upn":"alice@contoso.com"}`, "application/json; charset=latin1", 415, "unsupported_media_type", ""},
		{"invalid upn", `{"upn":"alice smith@contoso.com"}`, "application/json", 400, "invalid_request", "upn"},
		{"unknown field", `{"upn":"alice@contoso.com","admin":true}`, "application/json", 400, "invalid_request", "admin"},
		{"trailing data", `{"upn":"alice@contoso.com"}{}`, "application/json", 400, "invalid_request", ""},
		{"duplicate upns", `{"upns":["a@contoso.com","A@Contoso.com"]}`, "application/json", 400, "invalid_request", "upns[1]"},
		{"wrong type", `{"upn":"alice@contoso.com","dryRun":"yes"}`, "application/json", 400, "invalid_request", "dryRun"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{})
			r := h.signed("msg_"+strings.ReplaceAll(tt.name, " ", "_"), tt.body)
			r.Header.Set("Content-Type", tt.contentType)
			w := h.do(r)
			if w.Code != tt.want {
				t.Fatalf("status = %d %s; want %d", w.Code, w.Body, tt.want)
			}
			b := decodeBody(t, w)
			if b.Error == nil || b.Error.Code != tt.code {
				t.Fatalf("body = %s; want error code %s", w.Body, tt.code)
			}
			if tt.field != "" && (len(b.Error.Details) == 0 || b.Error.Details[0].Field != tt.field) {
				t.Errorf("details = %+v; want field %s", b.Error.Details, tt.field)
			}
			if len(h.graph.revoked()) != 0 {
				t.Errorf("an invalid request reached Graph")
			}
		})
	}
}

func TestUserStatusMapping(t *testing.T) {
	t.Parallel()
	throttled := &revoke.GraphError{Status: revoke.StatusThrottled, HTTPStatus: 429, Code: "TooManyRequests", RetryAfter: 7 * time.Second}
	tests := []struct {
		name       string
		body       string
		graph      func(string) (revoke.GraphResult, error)
		opts       options
		prefer     string
		want       int
		status     string
		retryAfter string
	}{
		{"revoked", `{"upn":"alice@contoso.com"}`, nil, options{}, "", 200, "revoked", ""},
		{"dry run", `{"upn":"alice@contoso.com","dryRun":true}`, nil, options{}, "", 200, "dry_run", ""},
		{"not found", `{"upn":"ghost@contoso.com"}`, statusFor("ghost@contoso.com", &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound", Message: "Resource 'ghost@contoso.com' does not exist"}), options{}, "", 404, "not_found", ""},
		{"denied", `{"upn":"admin@contoso.com"}`, statusFor("admin@contoso.com", &revoke.GraphError{Status: revoke.StatusDenied, HTTPStatus: 403, Code: "Authorization_RequestDenied"}), options{}, "", 403, "denied", ""},
		{"throttled", `{"upn":"alice@contoso.com"}`, statusFor("alice@contoso.com", throttled), options{}, "", 429, "throttled", "7"},
		{"failed", `{"upn":"alice@contoso.com"}`, statusFor("alice@contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"}), options{}, "", 503, "failed", ""},
		{"protected", `{"upn":"breakglass@contoso.com"}`, nil, options{engine: func(c *revoke.Config) { c.ProtectedUsers = []string{"breakglass@contoso.com"} }}, "", 403, "protected", ""},
		{"out of scope", `{"upn":"bob@fabrikam.com"}`, nil, options{engine: func(c *revoke.Config) { c.AllowedDomains = []string{"contoso.com"} }}, "", 403, "out_of_scope", ""},
		{"failed is queued with storage", `{"upn":"alice@contoso.com"}`, statusFor("alice@contoso.com", throttled), options{storage: true}, "", 202, "queued", "10"},
		{"respond-async", `{"upn":"alice@contoso.com"}`, nil, options{storage: true}, "respond-async, wait=10", 202, "queued", "10"},
		{"respond-async without storage runs now", `{"upn":"alice@contoso.com"}`, nil, options{}, "respond-async", 200, "revoked", ""},
		{"bulk all revoked", `{"upns":["a@contoso.com","b@contoso.com"]}`, nil, options{}, "", 200, "revoked", ""},
		{"bulk all queued", `{"upns":["a@contoso.com","b@contoso.com"]}`, nil, options{storage: true}, "respond-async", 202, "queued", "10"},
		{"bulk mixed", `{"upns":["a@contoso.com","ghost@contoso.com"]}`, statusFor("ghost@contoso.com", &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound"}), options{}, "", 207, "partial", ""},
		{"bulk all not found", `{"upns":["x@contoso.com","ghost@contoso.com"]}`, func(string) (revoke.GraphResult, error) {
			return revoke.GraphResult{}, &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound"}
		}, options{}, "", 207, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.opts)
			h.graph.revokeF = tt.graph
			r := h.signed("msg_"+strings.ReplaceAll(tt.name, " ", "_"), tt.body)
			if tt.prefer != "" {
				r.Header.Set("Prefer", tt.prefer)
			}
			w := h.do(r)
			if w.Code != tt.want {
				t.Fatalf("status = %d %s; want %d", w.Code, w.Body, tt.want)
			}
			if b := decodeBody(t, w); b.Status != tt.status {
				t.Errorf("top-level status = %q; want %q (%s)", b.Status, tt.status, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q; want %q", got, tt.retryAfter)
			}
		})
	}
}

func TestDeferralFailureIs503(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	h.deferrer.err = errors.New("storage down")
	r := h.signed("msg_q", `{"upn":"alice@contoso.com"}`)
	r.Header.Set("Prefer", "respond-async")
	w := h.do(r)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d %s; want 503 when the enqueue fails", w.Code, w.Body)
	}
	if b := decodeBody(t, w); b.Results[0].Error == nil || b.Results[0].Error.Code != "queue_unavailable" {
		t.Errorf("body = %s; want queue_unavailable", w.Body)
	}
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	first := h.do(h.signed("msg_same", `{"upn":"alice@contoso.com"}`))
	second := h.do(h.signed("msg_same", `{"upn":"alice@contoso.com"}`))
	if first.Code != 200 || second.Code != 200 || second.Body.String() != first.Body.String() {
		t.Fatalf("replay = %d %s; want the first response %d %s", second.Code, second.Body, first.Code, first.Body)
	}
	if first.Header().Get("Idempotent-Replayed") != "" || second.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed = %q then %q; want empty then true", first.Header().Get("Idempotent-Replayed"), second.Header().Get("Idempotent-Replayed"))
	}
	if n := len(h.graph.revoked()); n != 1 {
		t.Errorf("Graph calls = %d; want exactly 1 after a replay", n)
	}
	conflict := h.do(h.signed("msg_same", `{"upn":"bob@contoso.com"}`))
	if conflict.Code != http.StatusConflict || decodeBody(t, conflict).Error.Code != "conflict" {
		t.Errorf("reused id with another body = %d %s; want 409 conflict", conflict.Code, conflict.Body)
	}

	// A retryable outcome is not remembered: the caller's retry runs again.
	h.graph.revokeF = statusFor("carol@contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503})
	if w := h.do(h.signed("msg_retry", `{"upn":"carol@contoso.com"}`)); w.Code != 503 {
		t.Fatalf("failing request = %d; want 503", w.Code)
	}
	h.graph.revokeF = nil
	if w := h.do(h.signed("msg_retry", `{"upn":"carol@contoso.com"}`)); w.Code != 200 || w.Header().Get("Idempotent-Replayed") != "" {
		t.Errorf("retry after a failure = %d replayed=%q; want a fresh 200", w.Code, w.Header().Get("Idempotent-Replayed"))
	}
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{rate: 1})
	if w := h.do(h.signed("msg_1", `{"upn":"a@contoso.com"}`)); w.Code != 200 {
		t.Fatalf("first = %d", w.Code)
	}
	w := h.do(h.signed("msg_2", `{"upn":"b@contoso.com"}`))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || decodeBody(t, w).Error.Code != "rate_limited" {
		t.Fatalf("second = %d %s Retry-After=%q; want 429 rate_limited with Retry-After", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if n := len(h.graph.revoked()); n != 1 {
		t.Errorf("Graph calls = %d; want 1", n)
	}
}

// A caller's retry of a bulk request that partly failed runs only the users not yet done.
func TestRetryOfPartialFailureSkipsFinishedUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.graph.revokeF = statusFor("b@contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 500, Code: "InternalServerError"})
	body := `{"upns":["a@contoso.com","b@contoso.com","c@contoso.com"]}`
	if w := h.do(h.signed("msg_partial", body)); w.Code != http.StatusMultiStatus {
		t.Fatalf("first attempt = %d %s; want 207", w.Code, w.Body)
	}
	h.graph.revokeF = nil
	w := h.do(h.signed("msg_partial", body))
	if w.Code != http.StatusOK || decodeBody(t, w).Status != "revoked" {
		t.Fatalf("retry = %d %s; want 200 with every user revoked", w.Code, w.Body)
	}
	calls := map[string]int{}
	for _, u := range h.graph.revoked() {
		calls[u]++
	}
	if calls["a@contoso.com"] != 1 || calls["b@contoso.com"] != 2 || calls["c@contoso.com"] != 1 {
		t.Errorf("Graph calls per user = %v; want the finished users revoked once and b retried", calls)
	}
	// The successful retry is remembered: the id is now bound to its body.
	if w := h.do(h.signed("msg_partial", `{"upns":["a@contoso.com","d@contoso.com"]}`)); w.Code != http.StatusConflict {
		t.Errorf("same id, other body after the retry = %d; want 409", w.Code)
	}
}
