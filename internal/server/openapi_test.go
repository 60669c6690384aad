package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// swagger2Out, when set, makes TestOpenAPISwagger2 write the Swagger 2.0 conversion of
// openapi.yaml there: Power Automate and Logic Apps custom connectors import Swagger 2.0 only
// (docs/cli.md).
var swagger2Out = flag.String("swagger2-out", "", "write openapi.yaml converted to Swagger 2.0 (JSON) to this file")

// mustOpenAPI loads and validates openapi.yaml from the repository root.
func mustOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join(testenv.RepoRoot(t), "openapi.yaml"))
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is OpenAPI %s; want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// revokeRoute is the documented POST /api/revoke operation.
func revokeRoute(t *testing.T, doc *openapi3.T) *routers.Route {
	t.Helper()
	item := doc.Paths.Value("/api/revoke")
	if item == nil || item.Post == nil {
		t.Fatal("openapi.yaml does not describe POST /api/revoke")
	}
	return &routers.Route{Spec: doc, Path: "/api/revoke", PathItem: item, Method: http.MethodPost, Operation: item.Post}
}

// validateRevokeResponse checks a real response of POST /api/revoke against the description:
// a documented status, its headers and its body schema (JSON Schema 2020-12 for OpenAPI 3.1).
func validateRevokeResponse(route *routers.Route, req *http.Request, w *httptest.ResponseRecorder) error {
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route},
		Status:                 w.Code,
		Header:                 w.Header(),
		Body:                   io.NopCloser(bytes.NewReader(w.Body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

// validateComponentResponse checks a response of another route against a shared response of
// components/responses: its required headers and its body schema.
func validateComponentResponse(doc *openapi3.T, name string, w *httptest.ResponseRecorder) error {
	ref := doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return errors.New("no components/responses/" + name)
	}
	for hname, h := range ref.Value.Headers {
		v := w.Header().Get(hname)
		if v == "" {
			if h.Value.Required {
				return errors.New("header " + hname + " missing")
			}
			continue
		}
		if err := h.Value.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			return err
		}
	}
	mt := ref.Value.Content.Get(w.Header().Get("Content-Type"))
	if mt == nil {
		return errors.New("undocumented Content-Type " + w.Header().Get("Content-Type"))
	}
	var body any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		return err
	}
	return mt.Schema.Value.VisitJSON(body, openapi3.EnableJSONSchema2020())
}

// conformanceCase is one request the suite sends and what it must produce.
type conformanceCase struct {
	name     string
	opts     options
	graph    func(string) (revoke.GraphResult, error)
	before   func(h *harness) // requests sent first (e.g. to exhaust the rate guard)
	request  func(h *harness) *http.Request
	engine   revoke.Runner // replaces the real engine, for the failures it never has
	route    string        // "" = POST /api/revoke, else a components/responses name
	want     int
	wantBody string // top-level status, or error code
}

// engineFunc is a function-field revoke.Runner.
type engineFunc func(ctx context.Context, job revoke.Job) (revoke.Result, error)

func (f engineFunc) Run(ctx context.Context, job revoke.Job) (revoke.Result, error) {
	return f(ctx, job)
}

var _ revoke.Runner = engineFunc(nil)

func graphErr(status revoke.Status, httpStatus int, code, msg string, retryAfter time.Duration) error {
	return &revoke.GraphError{Status: status, HTTPStatus: httpStatus, Code: code, Message: msg, RequestID: "graph-req-9", RetryAfter: retryAfter}
}

func unsigned(contentType, body string) func(h *harness) *http.Request {
	return func(h *harness) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		return r
	}
}

func signedBody(id, body string) func(h *harness) *http.Request {
	return func(h *harness) *http.Request { return h.signed(id, body) }
}

func bearer(token, body string) func(h *harness) *http.Request {
	return func(h *harness) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	}
}

// conformanceCases produce every status POST /api/revoke can answer, through NewServer and a real
// revoke.Engine over function-field Graph fakes (the lead's harness in server_test.go).
func conformanceCases() []conformanceCase {
	const alice = `{"upn":"alice@contoso.com"}`
	throttled := graphErr(revoke.StatusThrottled, 429, "TooManyRequests", "Too many requests.", 7*time.Second)
	entra := tokens{errs: map[string]error{
		"no-role": &entraauth.Error{Reason: entraauth.ReasonMissingRole, Err: entraauth.ErrMissingRole},
	}}
	return []conformanceCase{
		{name: "200 revoked", request: signedBody("msg_200", `{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone","requestedBy":"analyst@contoso.com"}`), want: 200, wantBody: "revoked"},
		{name: "200 revoked, verified guest", opts: options{engine: func(c *revoke.Config) { c.Verify = true; c.Users = guestReader{} }},
			request: signedBody("msg_200v", `{"upn":"jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"}`), want: 200, wantBody: "revoked"},
		{name: "200 dry run", request: signedBody("msg_dry", `{"upn":"alice@contoso.com","dryRun":true}`), want: 200, wantBody: "dry_run"},
		{name: "200 bulk revoked", request: signedBody("msg_bulk", `{"upns":["alice@contoso.com","3f1c2a4e-8b7d-4c1e-9f0a-1b2c3d4e5f60"]}`), want: 200, wantBody: "revoked"},
		{name: "200 replayed", before: func(h *harness) { h.do(h.signed("msg_replay", alice)) },
			request: signedBody("msg_replay", alice), want: 200, wantBody: "revoked"},
		{name: "202 queued", opts: options{storage: true}, request: func(h *harness) *http.Request {
			r := h.signed("msg_async", `{"upns":["alice@contoso.com","bob@contoso.com"]}`)
			r.Header.Set("Prefer", "respond-async")
			return r
		}, want: 202, wantBody: "queued"},
		{name: "207 partial", graph: statusFor("nobody@contoso.com", graphErr(revoke.StatusNotFound, 404, "Request_ResourceNotFound", "Resource 'nobody@contoso.com' does not exist.", 0)),
			opts:    options{engine: func(c *revoke.Config) { c.ProtectedUsers = []string{"breakglass@contoso.com"} }},
			request: signedBody("msg_207", `{"upns":["alice@contoso.com","nobody@contoso.com","breakglass@contoso.com"]}`), want: 207, wantBody: "partial"},
		{name: "400 invalid UPN", request: signedBody("msg_400", `{"upn":"alice smith@contoso.com"}`), want: 400, wantBody: "invalid_request"},
		{name: "400 unknown field", request: signedBody("msg_400b", `{"upn":"alice@contoso.com","admin":true}`), want: 400, wantBody: "invalid_request"},
		{name: "401 no signature", request: unsigned("application/json", alice), want: 401, wantBody: "unauthorized"},
		{name: "401 bad token, WWW-Authenticate", opts: options{tokens: entra}, request: bearer("forged", alice), want: 401, wantBody: "unauthorized"},
		{name: "403 forbidden caller", opts: options{tokens: entra}, request: bearer("no-role", alice), want: 403, wantBody: "forbidden_caller"},
		{name: "403 protected", opts: options{engine: func(c *revoke.Config) { c.ProtectedUsers = []string{"alice@contoso.com"} }},
			request: signedBody("msg_prot", alice), want: 403, wantBody: "protected"},
		{name: "403 out of scope", opts: options{engine: func(c *revoke.Config) { c.AllowedDomains = []string{"fabrikam.com"} }},
			request: signedBody("msg_scope", alice), want: 403, wantBody: "out_of_scope"},
		{name: "403 denied", graph: statusFor("alice@contoso.com", graphErr(revoke.StatusDenied, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", 0)),
			request: signedBody("msg_denied", alice), want: 403, wantBody: "denied"},
		{name: "404 user not found", graph: statusFor("alice@contoso.com", graphErr(revoke.StatusNotFound, 404, "Request_ResourceNotFound", "Resource does not exist.", 0)),
			request: signedBody("msg_404", alice), want: 404, wantBody: "not_found"},
		{name: "409 conflict", before: func(h *harness) { h.do(h.signed("msg_409", alice)) },
			request: signedBody("msg_409", `{"upn":"bob@contoso.com"}`), want: 409, wantBody: "conflict"},
		{name: "409 in progress", before: func(h *harness) { holdClaim(h, "webhook", "msg_409b", alice) },
			request: signedBody("msg_409b", alice), want: 409, wantBody: "in_progress"},
		{name: "413 too large", request: signedBody("msg_413", `{"upn":"alice@contoso.com","reason":"`+strings.Repeat("x", request.MaxBodyBytes)+`"}`), want: 413, wantBody: "payload_too_large"},
		{name: "415 media type", request: func(h *harness) *http.Request {
			r := h.signed("msg_415", alice)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, want: 415, wantBody: "unsupported_media_type"},
		{name: "429 throttled", graph: statusFor("alice@contoso.com", throttled), request: signedBody("msg_429", alice), want: 429, wantBody: "throttled"},
		{name: "429 rate limited", opts: options{rate: 1},
			before:  func(h *harness) { h.do(h.signed("msg_rl1", `{"upn":"bob@contoso.com"}`)) },
			request: signedBody("msg_rl2", alice), want: 429, wantBody: "rate_limited"},
		{name: "500 internal", engine: engineFunc(func(context.Context, revoke.Job) (revoke.Result, error) {
			return revoke.Result{}, errors.New("boom")
		}), request: signedBody("msg_500", alice), want: 500, wantBody: "internal"},
		{name: "503 failed", graph: statusFor("alice@contoso.com", graphErr(revoke.StatusFailed, 503, "ServiceUnavailable", "Service Unavailable", 0)),
			request: signedBody("msg_503", alice), want: 503, wantBody: "failed"},
		{name: "404 unknown route", route: "RouteNotFound", request: func(h *harness) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/api/revoke/all", strings.NewReader(alice))
		}, want: 404, wantBody: "not_found"},
		{name: "405 method", route: "MethodNotAllowed", request: func(h *harness) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/api/revoke", nil)
		}, want: 405, wantBody: "method_not_allowed"},
	}
}

// guestReader reads back every user as a guest whose sessions moved just now.
type guestReader struct{}

func (guestReader) LookupUser(_ context.Context, user string) (revoke.User, error) {
	return revoke.User{ID: "9d2b4f6a-1c3e-4a5b-8d7c-0e1f2a3b4c5d", UPN: user, UserType: "Guest"}, nil
}

func (guestReader) ReadSessions(_ context.Context, user string) (revoke.User, error) {
	return revoke.User{ID: "9d2b4f6a-1c3e-4a5b-8d7c-0e1f2a3b4c5d", UPN: user, UserType: "Guest", SessionsValidFrom: fixtureTime}, nil
}

var _ revoke.UserReader = guestReader{}

// topLevel is the top-level status of a result body, or the code of an error body.
func topLevel(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Status string `json:"status"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if b.Error.Code != "" {
		return b.Error.Code
	}
	return b.Status
}

// TestOpenAPIConformance sends every kind of request the suite knows to the real server and
// validates each response against openapi.yaml, then checks that every documented status was seen.
func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPI(t)
	route := revokeRoute(t, doc)

	var mu sync.Mutex
	seen := map[string]bool{}
	for _, tt := range conformanceCases() {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			if tt.engine != nil {
				mem := state.NewMemory(state.MemoryConfig{})
				h.handler = server.NewServer(server.Deps{
					Lifecycle: lifecycle(tt.engine, mem, revoke.LifecycleConfig{}), Validator: request.NewValidator(), State: mem,
					Audit: h.audit, Keys: h.keys, Tolerance: 5 * time.Minute,
					Now: func() time.Time { return fixtureTime.Add(30 * time.Second) },
				})
			}
			h.graph.revokeF = tt.graph
			if tt.before != nil {
				tt.before(h)
			}
			req := tt.request(h)
			w := h.do(req)
			if w.Code != tt.want {
				t.Fatalf("status = %d %s; want %d", w.Code, w.Body, tt.want)
			}
			if got := topLevel(t, w.Body.Bytes()); got != tt.wantBody {
				t.Fatalf("body %s: top level %q; want %q", w.Body, got, tt.wantBody)
			}
			var err error
			if tt.route == "" {
				err = validateRevokeResponse(route, req, w)
				mu.Lock()
				seen[strconv.Itoa(w.Code)] = true
				mu.Unlock()
			} else {
				err = validateComponentResponse(doc, tt.route, w)
			}
			if err != nil {
				t.Errorf("%s %s → %d %s\nheaders %v\ndoes not match openapi.yaml: %v", req.Method, req.URL, w.Code, w.Body, w.Header(), err)
			}
			// Spot checks that the cases produce what their names say, so that a passing
			// validation is about the intended response.
			switch tt.name {
			case "200 replayed":
				if w.Header().Get("Idempotent-Replayed") != "true" {
					t.Errorf("Idempotent-Replayed = %q; want true", w.Header().Get("Idempotent-Replayed"))
				}
			case "200 revoked, verified guest":
				if !bytes.Contains(w.Body.Bytes(), []byte(`"verified":true`)) || !bytes.Contains(w.Body.Bytes(), []byte(`"warning"`)) {
					t.Errorf("body %s; want verified and a guest warning", w.Body)
				}
			case "401 bad token, WWW-Authenticate":
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q; want Bearer …", w.Header().Get("WWW-Authenticate"))
				}
			}
		})
	}
	t.Run("every documented status produced", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		for code := range route.Operation.Responses.Map() {
			if !seen[code] {
				t.Errorf("openapi.yaml documents %s for POST /api/revoke, but no case produced it", code)
			}
		}
	})
}

// TestOpenAPIValidationIsStrict proves that the validator would notice drift: a response with an
// undocumented field, status value or missing header must fail.
func TestOpenAPIValidationIsStrict(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPI(t)
	route := revokeRoute(t, doc)
	req := httptest.NewRequest(http.MethodPost, "/api/revoke", nil)
	ok := `{"id":"r1","status":"revoked","dryRun":false,"results":[{"upn":"alice@contoso.com","status":"revoked"}]}`
	respond := func(status int, header http.Header, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		w.Header().Set("Content-Type", "application/json")
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		w.WriteString(body)
		return w
	}
	// The control: the unaltered response passes, so each failure below is the alteration's.
	if err := validateRevokeResponse(route, req, respond(200, nil, ok)); err != nil {
		t.Fatalf("200 %s: %v; want it valid", ok, err)
	}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
	}{
		{"undocumented status", http.StatusTeapot, nil, ok},
		{"extra field", 200, nil, `{"id":"r1","status":"revoked","dryRun":false,"results":[{"upn":"alice@contoso.com","status":"revoked","token":"x"}]}`},
		{"unknown user status", 200, nil, `{"id":"r1","status":"revoked","dryRun":false,"results":[{"upn":"alice@contoso.com","status":"done"}]}`},
		{"200 with a failed overall status", 200, nil, `{"id":"r1","status":"failed","dryRun":false,"results":[{"upn":"alice@contoso.com","status":"failed"}]}`},
		{"missing results", 200, nil, `{"id":"r1","status":"revoked","dryRun":false}`},
		{"429 without Retry-After", 429, nil, `{"error":{"code":"rate_limited","message":"x"}}`},
		{"unknown error code", 400, nil, `{"error":{"code":"oops","message":"x"}}`},
		{"wrong content type", 200, http.Header{"Content-Type": {"text/plain"}}, ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := validateRevokeResponse(route, req, respond(tt.status, tt.header, tt.body)); err == nil {
				t.Errorf("%d %s validated; want a mismatch", tt.status, tt.body)
			}
		})
	}
}

// requestSchema is the schema of POST /api/revoke's JSON body.
func requestSchema(t *testing.T, route *routers.Route) *openapi3.MediaType {
	t.Helper()
	mt := route.Operation.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		t.Fatal("POST /api/revoke documents no application/json request body")
	}
	return mt
}

// TestOpenAPIExamples validates every example against its schema (JSON Schema 2020-12), and the
// request examples against the server's own decoder too: an example the server would refuse is a
// broken promise.
func TestOpenAPIExamples(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPI(t)
	route := revokeRoute(t, doc)
	for code, resp := range route.Operation.Responses.Map() {
		mt := resp.Value.Content.Get("application/json")
		if mt == nil || len(mt.Examples) == 0 {
			t.Errorf("response %s has no application/json examples", code)
			continue
		}
		for name, ex := range mt.Examples {
			if err := mt.Schema.Value.VisitJSON(ex.Value.Value, openapi3.EnableJSONSchema2020()); err != nil {
				t.Errorf("response %s example %s does not match its schema: %v", code, name, err)
			}
		}
	}
	mt := requestSchema(t, route)
	if len(mt.Examples) == 0 {
		t.Fatal("the request body has no examples")
	}
	v := request.NewValidator()
	for name, ex := range mt.Examples {
		b, err := json.Marshal(ex.Value.Value)
		if err != nil {
			t.Fatal(err)
		}
		if err := mt.Schema.Value.VisitJSON(ex.Value.Value, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("example %s %s does not match the schema: %v", name, b, err)
		}
		if _, err := v.Decode(b); err != nil {
			t.Errorf("example %s %s is refused by the server: %v", name, b, err)
		}
	}
}

// TestOpenAPIRequestSchemaAgreesWithServer checks that the request schema refuses what the server
// refuses, and accepts what it accepts.
func TestOpenAPIRequestSchemaAgreesWithServer(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPI(t)
	schema := requestSchema(t, revokeRoute(t, doc)).Schema.Value
	users := make([]string, 101)
	for i := range users {
		users[i] = "user" + strconv.Itoa(i) + "@contoso.com"
	}
	many, _ := json.Marshal(map[string]any{"upns": users})
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"upn":"alice@contoso.com"}`, true},
		{`{"upns":["alice@contoso.com","bob@contoso.com"],"dryRun":true}`, true},
		{`{"upn":"alice@contoso.com","ticket":"INC 42 – café","reason":"Lost phone\u00a0today","requestedBy":"Zoë O'Brien"}`, true},
		{`{}`, false},
		{`{"upn":"alice@contoso.com","upns":["bob@contoso.com"]}`, false},
		{`{"upn":"alice@contoso.com","admin":true}`, false},
		{`{"upns":[]}`, false},
		{string(many), false},
		{`{"upn":"alice@contoso.com","dryRun":"yes"}`, false},
		{`{"upn":"alice@contoso.com","ticket":"INC\u0007"}`, false},
		{`{"upn":"alice@contoso.com","requestedBy":"a\u00a0b"}`, false},
		{`{"upn":"alice@contoso.com","reason":"line\nbreak"}`, false},
		{`{"upn":"alice@contoso.com","reason":"para\u2029graph"}`, false},
		{`{"upn":"alice@contoso.com","ticket":"` + strings.Repeat("x", 257) + `"}`, false},
		{`{"upn":["alice@contoso.com"]}`, false},
	}
	v := request.NewValidator()
	for _, tt := range tests {
		var value any
		if err := json.Unmarshal([]byte(tt.body), &value); err != nil {
			t.Fatal(err)
		}
		schemaErr := schema.VisitJSON(value, openapi3.EnableJSONSchema2020())
		_, serverErr := v.Decode([]byte(tt.body))
		if (schemaErr == nil) != tt.ok || (serverErr == nil) != tt.ok {
			t.Errorf("%.80s: schema error %v, server error %v; want both to accept = %v", tt.body, schemaErr, serverErr, tt.ok)
		}
	}
}

// TestOpenAPIUserPattern checks the UserRef pattern against request.IsUPN and IsObjectID.
func TestOpenAPIUserPattern(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPI(t)
	ref := doc.Components.Schemas["UserRef"]
	if ref == nil || ref.Value.Pattern == "" {
		t.Fatal("components/schemas/UserRef has no pattern")
	}
	schema := ref.Value
	tests := []struct {
		user string
		want bool
	}{
		{"alice@contoso.com", true},
		{"jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", true},
		{"o'brien@contoso.com", true},
		{"a.b-c_d!e#f^g~h@sub.contoso.co.uk", true},
		{"x@a.io", true},
		{"x@host.b2", true},
		{"x@xn--bcher-kva.example", true},
		{"x@1-2.3-4", true},
		{"3f1c2a4e-8b7d-4c1e-9f0a-1b2c3d4e5f60", true},
		{"3F1C2A4E-8B7D-4C1E-9F0A-1B2C3D4E5F60", true},
		{"", false},
		{"alice", false},
		{"@contoso.com", false},
		{"alice@", false},
		{"alice@contoso", false},
		{".alice@contoso.com", false},
		{"alice.@contoso.com", false},
		{"al..ice@contoso.com", false},
		{"alice smith@contoso.com", false},
		{"alice@contoso.com/../x", false},
		{"alice@contoso.com?$select=id", false},
		{"al%40ice@contoso.com", false},
		{`"alice"@contoso.com`, false},
		{"[alice]@contoso.com", false},
		{`["alice@contoso.com"]`, false},
		{"alice@-contoso.com", false},
		{"alice@contoso-.com", false},
		{"alice@contoso..com", false},
		{"alice@192.168.1.1", false},
		{"alice@bob@contoso.com", false},
		{"älice@contoso.com", false},
		{"alice@contoso.com ", false},
		{"alice@contoso.com\n", false},
		{"{3f1c2a4e-8b7d-4c1e-9f0a-1b2c3d4e5f60}", false},
		{"3f1c2a4e8b7d4c1e9f0a1b2c3d4e5f60", false},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 40) + ".contoso.com", false}, // 117 characters
	}
	for _, tt := range tests {
		server := request.IsUPN(tt.user) || request.IsObjectID(tt.user)
		if server != tt.want {
			t.Errorf("IsUPN||IsObjectID(%q) = %v; the table says %v", tt.user, server, tt.want)
		}
		err := schema.VisitJSON(tt.user, openapi3.EnableJSONSchema2020())
		if (err == nil) != tt.want {
			t.Errorf("UserRef schema on %q: error %v; want valid = %v", tt.user, err, tt.want)
		}
	}
	// Known limit of a portable pattern: the 64/48 split of the 113 characters is the server's alone.
	for _, u := range []string{strings.Repeat("a", 65) + "@contoso.com", "a@" + strings.Repeat("b", 45) + ".com"} {
		if request.IsUPN(u) {
			t.Errorf("IsUPN(%q) = true; want false (part too long)", u)
		}
	}
}

// TestOpenAPISwagger2 checks that openapi.yaml converts to Swagger 2.0, the format Power Automate
// and Logic Apps custom connectors import, with the operation, body and security intact. With
// -swagger2-out it writes the converted file.
func TestOpenAPISwagger2(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPI(t)
	v2, err := openapi2conv.FromV3(doc)
	if err != nil {
		t.Fatalf("convert to Swagger 2.0: %v", err)
	}
	op := v2.Paths["/api/revoke"]
	if op == nil || op.Post == nil || op.Post.OperationID != "RevokeSignInSessions" {
		t.Fatalf("Swagger 2.0 lacks POST /api/revoke RevokeSignInSessions")
	}
	// FromV3 adds an empty GET to every path; a connector would show it as an action.
	op.Get = nil
	// Swagger 2.0 has no server variables: use the default Function App name, which the
	// connector wizard asks to change.
	if v2.Host == "" && len(doc.Servers) > 0 {
		host := doc.Servers[0].URL
		for name, v := range doc.Servers[0].Variables {
			host = strings.ReplaceAll(host, "{"+name+"}", v.Default)
		}
		if u, err := url.Parse(host); err == nil {
			v2.Host, v2.BasePath, v2.Schemes = u.Host, u.Path, []string{u.Scheme}
		}
	}
	var hasBody bool
	for _, p := range op.Post.Parameters {
		hasBody = hasBody || p.In == "body"
	}
	if !hasBody {
		t.Errorf("Swagger 2.0 operation has no body parameter")
	}
	for _, name := range []string{"functionKey", "standardWebhooks", "entraBearer"} {
		if v2.SecurityDefinitions[name] == nil {
			t.Errorf("Swagger 2.0 lacks security definition %s", name)
		}
	}
	if v2.Host != "entra-revoke.azurewebsites.net" || !slices.Equal(v2.Schemes, []string{"https"}) {
		t.Errorf("Swagger 2.0 host %q schemes %v; want the Function App over https", v2.Host, v2.Schemes)
	}
	b, err := json.MarshalIndent(v2, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *swagger2Out != "" {
		if err := os.WriteFile(*swagger2Out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
