package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// deferAsync sends a respond-async request and returns its response and the message the handler
// enqueued for it.
func (h *harness) deferAsync(id, body string, mutate func(*http.Request)) (*httptest.ResponseRecorder, []byte) {
	h.t.Helper()
	r := h.signed(id, body)
	r.Header.Set("Prefer", "respond-async")
	if mutate != nil {
		mutate(r)
	}
	before := len(h.deferred())
	w := h.do(r)
	defs := h.deferred()
	if len(defs) != before+1 {
		h.t.Fatalf("respond-async %s = %d %s; want one deferral", body, w.Code, w.Body)
	}
	return w, h.message(defs[len(defs)-1])
}

// get fetches a status link through the server.
func (h *harness) get(link string) *httptest.ResponseRecorder {
	h.t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		h.t.Fatalf("status link %q: %v", link, err)
	}
	return h.do(httptest.NewRequest(http.MethodGet, u.RequestURI(), nil))
}

func TestStatusLinkFollowsTheRequestToItsOutcome(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	w, text := h.deferAsync("msg_status", `{"upns":["alice@contoso.com","ghost@contoso.com"]}`, nil)
	b := decodeBody(t, w)
	loc := w.Header().Get("Location")
	if w.Code != http.StatusAccepted || loc == "" || b.StatusURL != loc || w.Header().Get("Retry-After") == "" {
		t.Fatalf("respond-async = %d %s Location %q Retry-After %q; want 202 with Location = statusUrl and Retry-After", w.Code, w.Body, loc, w.Header().Get("Retry-After"))
	}
	handle := loc[strings.LastIndex(loc, "/")+1:]
	if !strings.HasPrefix(loc, "https://example.com/api/revoke/status/") || len(handle) < 22 {
		t.Errorf("status link %q; want https://<host>/api/revoke/status/<a handle of 128 bits or more>", loc)
	}

	pending := h.get(loc)
	if pending.Code != http.StatusAccepted || pending.Header().Get("Location") != loc || pending.Header().Get("Retry-After") == "" ||
		pending.Header().Get("Cache-Control") != "no-store" || decodeBody(t, pending).Status != "queued" {
		t.Fatalf("status while queued = %d %s %v; want 202 queued, Location, Retry-After, no-store", pending.Code, pending.Body, pending.Header())
	}

	h.graph.revokeF = statusFor("ghost@contoso.com", &revoke.GraphError{Status: revoke.StatusNotFound, HTTPStatus: 404, Code: "Request_ResourceNotFound"})
	if code, rep := h.invoke(hostInvocation(text, "6f0e1c1e-0000-4000-8000-0000000000b1", 1)); code != http.StatusOK {
		t.Fatalf("delivery = %d %v", code, rep.Logs)
	}
	final := h.get(loc)
	fb := decodeBody(t, final)
	if final.Code != http.StatusMultiStatus || fb.Status != "partial" || fb.StatusURL != "" || final.Header().Get("Location") != "" ||
		len(fb.Results) != 2 || fb.Results[0].Status != revoke.StatusRevoked || fb.Results[1].Status != revoke.StatusNotFound || fb.ID != "msg_status" {
		t.Errorf("final status = %d %s; want 207 as the synchronous call: alice revoked, ghost not_found, no link", final.Code, final.Body)
	}
	if final.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store", final.Header().Get("Cache-Control"))
	}

	// The caller's retry of the request replays the 202 with its link.
	again := h.do(func() *http.Request {
		r := h.signed("msg_status", `{"upns":["alice@contoso.com","ghost@contoso.com"]}`)
		r.Header.Set("Prefer", "respond-async")
		return r
	}())
	if again.Header().Get("Idempotent-Replayed") != "true" || again.Header().Get("Location") != loc || again.Header().Get("Retry-After") == "" {
		t.Errorf("replay = %d %v; want the first 202 with its Location and Retry-After", again.Code, again.Header())
	}
}

// Users the HTTP request finished keep their outcome; only the queued ones change.
func TestStatusKeepsWhatTheRequestFinished(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true, engine: func(c *revoke.Config) { c.ProtectedUsers = []string{"breakglass@contoso.com"} }})
	h.graph.revokeF = statusFor("Bob@Contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"})
	w := h.do(h.signed("msg_mixed", `{"upns":["alice@contoso.com","Bob@Contoso.com","breakglass@contoso.com"]}`))
	b := decodeBody(t, w)
	if w.Code != http.StatusMultiStatus || b.StatusURL == "" || w.Header().Get("Location") != b.StatusURL {
		t.Fatalf("mixed = %d %s; want 207 with a status link for the queued user", w.Code, w.Body)
	}
	defs := h.deferred()
	if len(defs) != 1 || len(defs[0].Users) != 1 {
		t.Fatalf("deferrals = %+v; want bob alone", defs)
	}
	h.graph.revokeF = nil
	if code, _ := h.invoke(hostInvocation(h.message(defs[0]), "6f0e1c1e-0000-4000-8000-0000000000b2", 1)); code != http.StatusOK {
		t.Fatalf("delivery = %d", code)
	}
	fb := decodeBody(t, h.get(b.StatusURL))
	if got := []revoke.Status{fb.Results[0].Status, fb.Results[1].Status, fb.Results[2].Status}; got[0] != revoke.StatusRevoked || got[1] != revoke.StatusRevoked || got[2] != revoke.StatusProtected || fb.Results[1].UPN != "Bob@Contoso.com" {
		t.Errorf("final = %+v; want [revoked revoked protected] in input order and spelling", fb.Results)
	}
}

// The last delivery's failure is the request's final outcome, and its link says so.
func TestStatusShowsTheLastDeliverysFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	w, text := h.deferAsync("msg_fails", `{"upn":"alice@contoso.com"}`, nil)
	loc := w.Header().Get("Location")
	h.graph.revokeF = statusFor("alice@contoso.com", &revoke.GraphError{Status: revoke.StatusFailed, HTTPStatus: 503, Code: "ServiceUnavailable"})
	for n := 1; n <= 5; n++ {
		h.invoke(hostInvocation(text, "6f0e1c1e-0000-4000-8000-0000000000b3", n))
		got := h.get(loc)
		switch {
		case n < 5 && got.Code != http.StatusAccepted:
			t.Errorf("status after delivery %d = %d %s; want 202: the host retries", n, got.Code, got.Body)
		case n == 5 && (got.Code != http.StatusServiceUnavailable || decodeBody(t, got).Status != "failed"):
			t.Errorf("status after the last delivery = %d %s; want 503 failed", got.Code, got.Body)
		}
	}
}

func TestStatusLinkShape(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://revoke.contoso.com/")
	tests := []struct {
		name   string
		base   *url.URL
		host   string
		proto  string
		prefix string
	}{
		{"PUBLIC_BASE_URL wins", base, "entra-revoke.azurewebsites.net", "http", "https://revoke.contoso.com/api/revoke/status/"},
		{"forwarded proto and host", nil, "entra-revoke.azurewebsites.net", "https", "https://entra-revoke.azurewebsites.net/api/revoke/status/"},
		{"https by default", nil, "entra-revoke.azurewebsites.net", "", "https://entra-revoke.azurewebsites.net/api/revoke/status/"},
		{"forwarded http", nil, "entra-revoke.azurewebsites.net", "http", "http://entra-revoke.azurewebsites.net/api/revoke/status/"},
		{"nonsense proto", nil, "entra-revoke.azurewebsites.net", "javascript", "https://entra-revoke.azurewebsites.net/api/revoke/status/"},
		{"loopback is http", nil, "127.0.0.1:7071", "", "http://127.0.0.1:7071/api/revoke/status/"},
		{"localhost is http", nil, "localhost:7071", "", "http://localhost:7071/api/revoke/status/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{storage: true, publicBase: tt.base})
			w, _ := h.deferAsync("msg_shape", `{"upn":"alice@contoso.com"}`, func(r *http.Request) {
				r.Host = tt.host
				if tt.proto != "" {
					r.Header.Set("X-Forwarded-Proto", tt.proto)
				}
			})
			loc := w.Header().Get("Location")
			handle := strings.TrimPrefix(loc, tt.prefix)
			if !strings.HasPrefix(loc, tt.prefix) || len(handle) < 22 || strings.ContainsAny(handle, "/+=?#") {
				t.Errorf("Location = %q; want %s<URL-safe handle>", loc, tt.prefix)
			}
		})
	}
}

// Any handle one does not hold gets the same 404, and nothing of anyone's status.
func TestStatusUnknownHandles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{storage: true})
	w, _ := h.deferAsync("msg_secret", `{"upn":"alice@contoso.com"}`, nil)
	loc := w.Header().Get("Location")
	handle := loc[strings.LastIndex(loc, "/")+1:]
	flipped := []byte(handle)
	flipped[0] ^= 1
	var first string
	for _, p := range []string{
		"/api/revoke/status/" + string(flipped),
		"/api/revoke/status/" + handle[:len(handle)-1],
		"/api/revoke/status/" + handle + "A",
		"/api/revoke/status/AAAAAAAAAAAAAAAAAAAAAA",
		"/api/revoke/status/x",
		"/api/revoke/status/" + strings.ToUpper(handle),
		"/api/revoke/status/..%2F..%2Fhealth",
	} {
		got := h.do(httptest.NewRequest(http.MethodGet, p, nil))
		if got.Code != http.StatusNotFound || strings.Contains(got.Body.String(), "alice") || got.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s = %d %s; want 404 without data", p, got.Code, got.Body)
		}
		if first == "" {
			first = got.Body.String()
		} else if got.Body.String() != first {
			t.Errorf("GET %s = %s; want the same answer as every other unknown handle: %s", p, got.Body, first)
		}
	}
	if got := h.do(httptest.NewRequest(http.MethodPost, "/api/revoke/status/"+handle, nil)); got.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST to a status link = %d; want 405", got.Code)
	}
}

// A request's first attempt still holding the claim (on any instance) makes a repeat 409
// in_progress, described by openapi.yaml like every other answer.
func holdClaim(h *harness, scope, id, body string) {
	h.t.Helper()
	sum := sha256.Sum256([]byte(body))
	if _, err := h.state.Claim(context.Background(), state.RequestKey{Scope: scope, ID: id}, hex.EncodeToString(sum[:]), time.Minute); err != nil {
		h.t.Fatalf("Claim: %v", err)
	}
}

// statusRoute is the documented GET /api/revoke/status/{handle} operation.
func statusRoute(t *testing.T) *routers.Route {
	t.Helper()
	doc := mustOpenAPI(t)
	item := doc.Paths.Value("/api/revoke/status/{handle}")
	if item == nil || item.Get == nil {
		t.Fatal("openapi.yaml does not describe GET /api/revoke/status/{handle}")
	}
	return &routers.Route{Spec: doc, Path: "/api/revoke/status/{handle}", PathItem: item, Method: http.MethodGet, Operation: item.Get}
}

// TestOpenAPIStatusConformance drives real status links to every answer the route documents and
// validates each response against openapi.yaml.
func TestOpenAPIStatusConformance(t *testing.T) {
	t.Parallel()
	route := statusRoute(t)
	graphErrFor := func(user string, status revoke.Status, code int) func(string) (revoke.GraphResult, error) {
		return statusFor(user, &revoke.GraphError{Status: status, HTTPStatus: code, Code: "X" + strconv.Itoa(code), Message: "m"})
	}
	tests := []struct {
		name     string
		body     string
		graph    func(string) (revoke.GraphResult, error)
		delivery int // 0: not delivered yet; else the dequeue count of the one delivery
		corrupt  bool
		unknown  bool
		want     int
	}{
		{name: "202 pending", body: `{"upn":"alice@contoso.com"}`, want: 202},
		{name: "200 revoked", body: `{"upn":"alice@contoso.com"}`, delivery: 1, want: 200},
		{name: "207 mixed", body: `{"upns":["alice@contoso.com","ghost@contoso.com"]}`, graph: graphErrFor("ghost@contoso.com", revoke.StatusNotFound, 404), delivery: 1, want: 207},
		{name: "403 denied", body: `{"upn":"alice@contoso.com"}`, graph: graphErrFor("alice@contoso.com", revoke.StatusDenied, 403), delivery: 1, want: 403},
		{name: "404 user not found", body: `{"upn":"alice@contoso.com"}`, graph: graphErrFor("alice@contoso.com", revoke.StatusNotFound, 404), delivery: 1, want: 404},
		{name: "404 unknown handle", body: `{"upn":"alice@contoso.com"}`, unknown: true, want: 404},
		{name: "429 throttled at the last delivery", body: `{"upn":"alice@contoso.com"}`, graph: graphErrFor("alice@contoso.com", revoke.StatusThrottled, 429), delivery: 5, want: 429},
		{name: "500 unreadable record", body: `{"upn":"alice@contoso.com"}`, corrupt: true, want: 500},
		{name: "503 failed at the last delivery", body: `{"upn":"alice@contoso.com"}`, graph: graphErrFor("alice@contoso.com", revoke.StatusFailed, 503), delivery: 5, want: 503},
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{storage: true})
			w, text := h.deferAsync("msg_conf", tt.body, nil)
			loc := w.Header().Get("Location")
			h.graph.revokeF = tt.graph
			if tt.delivery > 0 {
				h.invoke(hostInvocation(text, "6f0e1c1e-0000-4000-8000-0000000000c1", tt.delivery))
			}
			if tt.corrupt {
				_ = h.state.PutStatus(context.Background(), loc[strings.LastIndex(loc, "/")+1:], []byte("{"), time.Hour)
			}
			if tt.unknown {
				loc = "https://example.com/api/revoke/status/AAAAAAAAAAAAAAAAAAAAAA"
			}
			u, _ := url.Parse(loc)
			req := httptest.NewRequest(http.MethodGet, u.RequestURI(), nil)
			got := h.do(req)
			if got.Code != tt.want {
				t.Fatalf("GET %s = %d %s; want %d", loc, got.Code, got.Body, tt.want)
			}
			err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route,
					PathParams: map[string]string{"handle": u.Path[strings.LastIndex(u.Path, "/")+1:]}},
				Status: got.Code, Header: got.Header(), Body: httpBody(got.Body.Bytes()),
				Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			})
			if err != nil {
				t.Errorf("GET %s → %d %s\nheaders %v\ndoes not match openapi.yaml: %v", loc, got.Code, got.Body, got.Header(), err)
			}
			mu.Lock()
			seen[strconv.Itoa(got.Code)] = true
			mu.Unlock()
		})
	}
	t.Cleanup(func() {
		for code := range route.Operation.Responses.Map() {
			if !seen[code] {
				t.Errorf("openapi.yaml documents %s for the status route, but no case produced it", code)
			}
		}
	})
}

func httpBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// statusOutage is the memory store with status updates failing as an unreachable table does.
type statusOutage struct {
	*state.Memory
	down *atomic.Bool
}

func (s statusOutage) UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func([]byte) ([]byte, error)) error {
	if s.down.Load() {
		return state.ErrUnavailable
	}
	return s.Memory.UpdateStatus(ctx, handle, ttl, update)
}

func (s statusOutage) GetStatus(ctx context.Context, handle string) ([]byte, error) {
	if s.down.Load() {
		return nil, state.ErrUnavailable
	}
	return s.Memory.GetStatus(ctx, handle)
}

// A status that cannot be read while the table is unreachable is neither "not found" (it may well
// exist) nor final: the poller gets 202 unavailable and comes back.
func TestStatusWhileTheStoreIsUnreachable(t *testing.T) {
	t.Parallel()
	down := &atomic.Bool{}
	h := newHarness(t, options{storage: true, statusDown: down})
	w, _ := h.deferAsync("msg_status_unreadable", `{"upn":"alice@contoso.com"}`, nil)
	down.Store(true)
	got := h.get(w.Header().Get("Location"))
	if got.Code != http.StatusAccepted || got.Header().Get("Retry-After") == "" || got.Header().Get("Cache-Control") != "no-store" ||
		!strings.Contains(got.Body.String(), `"code":"unavailable"`) {
		t.Errorf("status with the store unreachable = %d %v %s; want 202 unavailable with Retry-After and no-store, not 404", got.Code, got.Header(), got.Body)
	}
}

// A delivery whose users finished but whose status link could not be updated is retried, so the
// link does not show them queued until it expires; the retry revokes nobody again.
func TestQueueRetriesWhenTheStatusCannotBeUpdated(t *testing.T) {
	t.Parallel()
	down := &atomic.Bool{}
	h := newHarness(t, options{storage: true, statusDown: down})
	w, text := h.deferAsync("msg_status_outage", `{"upns":["alice@contoso.com","bob@contoso.com"]}`, nil)
	loc := w.Header().Get("Location")

	down.Store(true)
	inv := hostInvocation(text, "6f0e1c1e-0000-4000-8000-0000000000b4", 1)
	if code, rep := h.invoke(inv); code == http.StatusOK {
		t.Fatalf("delivery with the status store down = %d %v; want non-2xx so that the host retries", code, rep.Logs)
	}
	down.Store(false)
	if code, rep := h.invoke(hostInvocation(text, "6f0e1c1e-0000-4000-8000-0000000000b4", 2)); code != http.StatusOK {
		t.Fatalf("redelivery = %d %v; want 200", code, rep.Logs)
	}
	if got := h.get(loc); got.Code != http.StatusOK || decodeBody(t, got).Status != "revoked" {
		t.Errorf("status after the redelivery = %d %s; want 200 revoked", got.Code, got.Body)
	}
	for _, u := range []string{"alice@contoso.com", "bob@contoso.com"} {
		if n := h.graph.count(u); n != 1 {
			t.Errorf("%s revoked %d times; want once", u, n)
		}
	}

	// On the last delivery there is no next one: the delivery completes and only the link lags.
	_, text2 := h.deferAsync("msg_status_outage_last", `{"upn":"carol@contoso.com"}`, nil)
	down.Store(true)
	if code, rep := h.invoke(hostInvocation(text2, "6f0e1c1e-0000-4000-8000-0000000000b5", 5)); code != http.StatusOK {
		t.Errorf("last delivery with the status store down = %d %v; want 200", code, rep.Logs)
	}
}
