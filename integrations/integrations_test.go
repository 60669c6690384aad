// Package integrations_test checks the caller integrations offline: the Microsoft Sentinel
// playbook and the Logic App are parsed, statically checked and run by a small workflow
// interpreter against the real HTTP handler (server.NewServer with a fake engine, real Entra ID
// token validation against a fake tenant); the ticketing recipes (sign.sh and send.sh with
// openssl and curl, and the ServiceNow Script Include under node) must produce requests the
// handler accepts.
package integrations_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

const (
	tenantID       = "8d3e6b1a-5c2f-4e7a-9b1d-0f2c3a4b5c6d"
	apiAudience    = "api://6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"
	miClientID     = "2b7f0c1e-3d4a-4b5c-8d6e-7f8091a2b3c4"
	functionKey    = "test-function-key-not-a-secret"
	testSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the fixtures' public test secret
	protectedUser  = "carol@contoso.com"
	notFoundUser   = "ghost@contoso.com"
	deferredUser   = "slow@contoso.com" // queued when the request allows deferral
	sentinelPath   = "sentinel/azuredeploy.json"
	logicAppPath   = "logic-apps/azuredeploy.json"
	signScript     = "ticketing/sign.sh"
	sendScript     = "ticketing/send.sh"
	statusScript   = "ticketing/status.sh"
	serviceNowPath = "ticketing/servicenow/EntraRevoke.js"
)

// specFields are the request body fields (openapi.yaml).
var specFields = []string{"upn", "upns", "ticket", "reason", "requestedBy", "dryRun"}

// fakeEngine stands in for the revocation engine: every user is revoked (or a dry run), except
// protectedUser (protected), notFoundUser (not_found) and deferredUser (queued, through deferrer,
// as the real engine defers), and every job is recorded.
type fakeEngine struct {
	deferrer revoke.Deferrer

	mu       sync.Mutex
	jobs     []revoke.Job
	deferred []revoke.Deferral
}

var _ revoke.Runner = (*fakeEngine)(nil)

func (e *fakeEngine) Run(ctx context.Context, job revoke.Job) (revoke.Result, error) {
	e.mu.Lock()
	e.jobs = append(e.jobs, job)
	e.mu.Unlock()
	res := revoke.Result{ID: job.RequestID, DryRun: job.DryRun}
	var queued []string
	for _, u := range job.Users {
		if strings.EqualFold(u, deferredUser) && job.Defer != revoke.DeferNever && e.deferrer != nil {
			res.Results = append(res.Results, revoke.UserResult{UPN: u, Status: revoke.StatusQueued})
			queued = append(queued, u)
			continue
		}
		r := revoke.UserResult{UPN: u, Status: revoke.StatusRevoked, UserID: "uid-" + u, RevokedAt: time.Date(2026, 11, 21, 23, 59, 1, 0, time.UTC)}
		switch {
		case strings.EqualFold(u, protectedUser):
			r = revoke.UserResult{UPN: u, Status: revoke.StatusProtected,
				Error: &revoke.ErrorInfo{Code: "protected", Message: "the user is on PROTECTED_USERS"}}
		case strings.EqualFold(u, notFoundUser):
			r = revoke.UserResult{UPN: u, Status: revoke.StatusNotFound,
				Error: &revoke.ErrorInfo{Code: "Request_ResourceNotFound", Message: "Resource '" + u + "' does not exist"}}
		case job.DryRun:
			r.Status, r.RevokedAt = revoke.StatusDryRun, time.Time{}
		}
		res.Results = append(res.Results, r)
	}
	res.Status = revoke.Overall(res.Results)
	if len(queued) > 0 {
		d := revoke.Deferral{Meta: job.Meta, Users: queued, Ticket: job.Ticket, Reason: job.Reason,
			RequestedBy: job.RequestedBy, DryRun: job.DryRun, Request: res}
		if err := e.deferrer.Defer(ctx, d); err != nil {
			return revoke.Result{}, err
		}
		e.mu.Lock()
		e.deferred = append(e.deferred, d)
		e.mu.Unlock()
	}
	return res, nil
}

// nopDeferrer stands in for the queue: the test finishes deferred users itself (finishDeferred).
type nopDeferrer struct{}

func (nopDeferrer) Defer(context.Context, revoke.Deferral) error { return nil }

func (e *fakeEngine) Jobs() []revoke.Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.jobs)
}

// recordingAuditor records refused callers; it has nothing to report in Stats.
type recordingAuditor struct {
	mu       sync.Mutex
	rejected []telemetry.Rejection
}

var _ server.Auditor = (*recordingAuditor)(nil)

func (a *recordingAuditor) Rejected(_ context.Context, r telemetry.Rejection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rejected = append(a.rejected, r)
}

func (a *recordingAuditor) Stats() telemetry.Stats { return telemetry.Stats{} }

// handler is the real HTTP handler on an httptest server.
type handler struct {
	URL     string        // .../api/revoke
	KeysURL string        // the revoke function's listKeys on the fake Azure Resource Manager
	key     *atomic.Value // the revoke function's key, as the Functions front end checks it
	Engine  *fakeEngine
	Audit   *recordingAuditor
	Issuer  *entratest.Issuer // nil unless Entra tokens are accepted
	State   *state.Memory     // the handler's state: idempotency and status records
}

// finishDeferred does what the queue trigger does when deferred users reach their final outcome:
// every queued user of every deferred request becomes revoked in its status record.
func (h *handler) finishDeferred(t *testing.T) {
	t.Helper()
	h.Engine.mu.Lock()
	deferred := slices.Clone(h.Engine.deferred)
	h.Engine.mu.Unlock()
	for _, d := range deferred {
		err := h.State.UpdateStatus(context.Background(), d.Meta.StatusHandle, 24*time.Hour, func(body []byte) ([]byte, error) {
			var res revoke.Result
			if err := json.Unmarshal(body, &res); err != nil {
				return nil, err
			}
			for i, r := range res.Results {
				if r.Status == revoke.StatusQueued {
					res.Results[i] = revoke.UserResult{UPN: r.UPN, Status: revoke.StatusRevoked, UserID: "uid-" + r.UPN, RevokedAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
				}
			}
			res.Status = revoke.Overall(res.Results)
			return json.Marshal(res)
		})
		if err != nil {
			t.Fatalf("finish deferred request %s: %v", d.Meta.RequestID, err)
		}
	}
}

// mustHandler starts the handler with webhook secrets and, when withEntra, Entra ID tokens for
// apiAudience from a fake tenant.
func mustHandler(t *testing.T, secrets []string, withEntra bool) *handler {
	t.Helper()
	keys, err := webhook.ParseSecrets(secrets)
	if err != nil {
		t.Fatalf("ParseSecrets: %v", err)
	}
	store := state.NewMemory(state.MemoryConfig{})
	h := &handler{Audit: &recordingAuditor{}, State: store,
		Engine: &fakeEngine{deferrer: &revoke.StatusDeferrer{Next: nopDeferrer{}, Statuses: store, TTL: 24 * time.Hour}}}
	deps := server.Deps{
		Logger: slog.New(slog.DiscardHandler),
		Lifecycle: revoke.NewLifecycle(revoke.LifecycleConfig{
			Engine: h.Engine, Store: store, Render: server.HTTPRenderer{},
			CanDefer: true, // deferral possible: the fake engine queues deferredUser
		}),
		Validator: request.NewValidator(),
		State:     store,
		Storage:   true, // deferral possible: the fake engine queues deferredUser
		Audit:     h.Audit,
		Keys:      keys,
		Tolerance: 5 * time.Minute,
		Version:   "test",
	}
	if withEntra {
		h.Issuer = entratest.NewIssuer(t, tenantID)
		v, err := entraauth.New(context.Background(), entraauth.Config{
			TenantID: tenantID, Audiences: []string{apiAudience, strings.TrimPrefix(apiAudience, "api://")},
			RequiredRole: "Sessions.Revoke", OpenIDConfigURL: h.Issuer.ConfigURL(),
		})
		if err != nil {
			t.Fatalf("entraauth.New: %v", err)
		}
		t.Cleanup(v.Close)
		// The keys load in the background; wait for them (this is set-up, not an assertion).
		for deadline := time.Now().Add(20 * time.Second); !v.Ready(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the Entra validator did not load the fake tenant's keys")
			}
		}
		deps.Tokens = v
	}
	h.key = &atomic.Value{}
	h.key.Store(functionKey)
	srv := httptest.NewServer(withFunctionsFront(server.NewServer(deps), h.key.Load))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/api/revoke"
	h.KeysURL = srv.URL + fakeKeysPath
	return h
}

// fakeKeysPath is the revoke function's listKeys on Azure Resource Manager, as the workflows'
// FunctionKeysUrl names it.
const fakeKeysPath = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-entra-revoke/providers/Microsoft.Web/sites/app/functions/revoke/listKeys"

// withFunctionsFront stands in for the Functions front end and for Azure Resource Manager: a
// request to the revoke function that carries a function key other than key() is refused with
// 401 before the handler sees it (requests without a key pass, for tests of the handler alone);
// POST fakeKeysPath with a bearer token answers the current key, as listKeys does.
func withFunctionsFront(next http.Handler, key func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fakeKeysPath {
			if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || r.URL.Query().Get("api-version") == "" {
				http.Error(w, "listKeys: POST with a token and an api-version", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"default": key()})
			return
		}
		if got := r.Header.Get("x-functions-key"); r.URL.Path == "/api/revoke" && got != "" && got != key() {
			w.WriteHeader(http.StatusUnauthorized) // the platform's refusal: no body
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rotateKey gives the revoke function a new key, as az functionapp function keys set does.
func (h *handler) rotateKey(key string) { h.key.Store(key) }

// miToken is the token a Logic App's managed identity gets for audience: a v1 token (the
// default accessTokenAcceptedVersion) whose aud is the resource asked for, with the app role.
func (h *handler) miToken(audience string) string {
	return h.Issuer.Token(entratest.V1, audience, miClientID, "Sessions.Revoke")
}

func mustReadJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	return v
}

// workflowOf returns the Logic App resource of an ARM template and its workflow definition.
func workflowOf(t *testing.T, tmpl map[string]any) (resource, definition map[string]any) {
	t.Helper()
	for _, r := range mustSlice(t, tmpl["resources"], "resources") {
		r := mustObject(t, r, "resource")
		if r["type"] == "Microsoft.Logic/workflows" {
			props := mustObject(t, r["properties"], "workflow properties")
			return r, mustObject(t, props["definition"], "definition")
		}
	}
	t.Fatal("no Microsoft.Logic/workflows resource in the template")
	return nil, nil
}

// walkStrings calls fn with the JSON path and value of every string in v.
func walkStrings(v any, path string, fn func(path, s string)) {
	switch v := v.(type) {
	case string:
		fn(path, v)
	case map[string]any:
		for k, x := range v {
			walkStrings(k, path+"/"+k+"(key)", fn)
			walkStrings(x, path+"/"+k, fn)
		}
	case []any:
		for i, x := range v {
			walkStrings(x, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

var (
	armParamRef  = regexp.MustCompile(`parameters\('([^']+)'\)`)
	armVarRef    = regexp.MustCompile(`variables\('([^']+)'\)`)
	wfConnRef    = regexp.MustCompile(`parameters\('\$connections'\)\['([^']+)'\]`)
	secretShapes = []*regexp.Regexp{
		regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{8,}`),
		regexp.MustCompile(`(?i)AccountKey=`),
		regexp.MustCompile(`(?i)SharedAccessSignature|[?&]sig=`),
		regexp.MustCompile(`(?i)InstrumentationKey=[0-9a-f-]{8}`),
		regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`), // a JWT
		regexp.MustCompile(`[?&]code=`),               // a function key in a URL
	}
)

// TestWorkflowTemplates checks both Logic App templates without running them.
func TestWorkflowTemplates(t *testing.T) {
	t.Parallel()
	for _, path := range []string{sentinelPath, logicAppPath} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			tmpl := mustReadJSON(t, path)
			resource, def := workflowOf(t, tmpl)

			// Every template parameter and variable used is declared.
			tparams := mustObject(t, tmpl["parameters"], "parameters")
			tvars, _ := tmpl["variables"].(map[string]any)
			// A nested deployment evaluated in its own (inner) scope declares its own.
			inner := map[string]map[string]any{}
			for i, r := range mustSlice(t, tmpl["resources"], "resources") {
				r := mustObject(t, r, "resource")
				if props, _ := r["properties"].(map[string]any); r["type"] == "Microsoft.Resources/deployments" && props["template"] != nil {
					inner[fmt.Sprintf("/resources[%d]/properties/template/", i)] = mustObject(t, props["template"], "nested template")
				}
			}
			walkStrings(tmpl, "", func(p, s string) {
				if !strings.HasPrefix(s, "[") || strings.HasPrefix(s, "[[") {
					return
				}
				tparams, tvars := tparams, tvars
				for prefix, it := range inner {
					if strings.HasPrefix(p, prefix) {
						tparams, _ = it["parameters"].(map[string]any)
						tvars, _ = it["variables"].(map[string]any)
					}
				}
				for _, m := range armParamRef.FindAllStringSubmatch(s, -1) {
					if _, ok := tparams[m[1]]; !ok {
						t.Errorf("%s: %s uses template parameter %q, which is not declared", path, p, m[1])
					}
				}
				for _, m := range armVarRef.FindAllStringSubmatch(s, -1) {
					if _, ok := tvars[m[1]]; !ok {
						t.Errorf("%s: %s uses variable %q, which is not declared", path, p, m[1])
					}
				}
			})

			// ARM values reach the definition only through workflow parameters: an ARM expression
			// inside the definition would be evaluated at deployment and could bake a key into it.
			walkStrings(def, "definition", func(p, s string) {
				if strings.HasPrefix(s, "[") && !strings.HasPrefix(s, "[[") {
					t.Errorf("%s: %s is an ARM expression inside the workflow definition: %q", path, p, s)
				}
			})

			// Every workflow parameter used is declared in the definition, and every declared one
			// without a default gets a value from the resource (and nothing else does).
			dparams := mustObject(t, def["parameters"], "definition parameters")
			values := mustObject(t, mustObject(t, resource["properties"], "properties")["parameters"], "workflow parameter values")
			walkStrings(def, "definition", func(p, s string) {
				if !strings.Contains(s, "@") {
					return
				}
				for _, m := range armParamRef.FindAllStringSubmatch(s, -1) {
					if _, ok := dparams[m[1]]; !ok {
						t.Errorf("%s: %s uses workflow parameter %q, which the definition does not declare", path, p, m[1])
					}
				}
			})
			for name, d := range dparams {
				if _, hasDefault := mustObject(t, d, name)["defaultValue"]; !hasDefault {
					if _, ok := values[name]; !ok {
						t.Errorf("%s: workflow parameter %q has neither a default nor a value", path, name)
					}
				}
			}
			for name := range values {
				if _, ok := dparams[name]; !ok {
					t.Errorf("%s: a value is given for workflow parameter %q, which the definition does not declare", path, name)
				}
			}
			if conns, ok := values["$connections"]; ok {
				declared := mustObject(t, mustObject(t, conns, "$connections")["value"], "$connections value")
				walkStrings(def, "definition", func(p, s string) {
					for _, m := range wfConnRef.FindAllStringSubmatch(s, -1) {
						if _, ok := declared[m[1]]; !ok {
							t.Errorf("%s: %s uses connection %q, which $connections does not define", path, p, m[1])
						}
					}
				})
			}

			// The function key is never part of the deployment: no listKeys() in the template, the
			// workflow reads it at run time from the URL of the revoke function's listKeys, with the
			// cloud's Resource Manager as audience. A rotated key needs no redeployment.
			if _, ok := dparams["FunctionKey"]; ok || strings.Contains(string(mustMarshal(t, tmpl)), "listKeys(") {
				t.Errorf("%s: the function key is read at deployment (a FunctionKey parameter or listKeys()): a rotation would break the workflow", path)
			}
			v := fmt.Sprint(mustObject(t, values["FunctionKeysUrl"], "FunctionKeysUrl value")["value"])
			if m := armVarRef.FindStringSubmatch(v); m != nil && v == "[variables('"+m[1]+"')]" {
				v = fmt.Sprint(tvars[m[1]])
			}
			if !strings.Contains(v, "environment().resourceManager") ||
				!strings.Contains(v, "'Microsoft.Web/sites/functions'") || !strings.Contains(v, "'revoke'") || !strings.Contains(v, "/listKeys?api-version=") {
				t.Errorf("%s: FunctionKeysUrl = %v; want the revoke function's listKeys on the cloud's Resource Manager", path, v)
			}
			if v := mustObject(t, values["ManagementAudience"], "ManagementAudience value")["value"]; v != "[environment().resourceManager]" {
				t.Errorf("%s: ManagementAudience = %v; want the cloud's Resource Manager", path, v)
			}
			for name, p := range tparams {
				if typ := mustObject(t, p, name)["type"]; strings.EqualFold(fmt.Sprint(typ), "securestring") {
					if d, ok := mustObject(t, p, name)["defaultValue"]; ok && d != "" {
						t.Errorf("%s: secure parameter %q has a default value", path, name)
					}
				}
			}
			walkStrings(tmpl, "", func(p, s string) {
				for _, re := range secretShapes {
					if re.MatchString(s) {
						t.Errorf("%s: %s looks like a secret (%s): %q", path, p, re, s)
					}
				}
			})

			// Every HTTP action calls the webhook with the managed identity, the function key and
			// an Idempotency-Key, sends only contract fields, and hides its inputs in run history.
			var httpActions int
			forEachAction(t, mustObject(t, def["actions"], "actions"), func(name string, a map[string]any) {
				if a["type"] != "Http" {
					return
				}
				in := mustObject(t, a["inputs"], name)
				if name == "Get_function_key" {
					auth, _ := in["authentication"].(map[string]any)
					rc, _ := a["runtimeConfiguration"].(map[string]any)
					secure, _ := rc["secureData"].(map[string]any)
					if in["method"] != "POST" || in["uri"] != "@parameters('FunctionKeysUrl')" || auth["type"] != "ManagedServiceIdentity" ||
						auth["audience"] != "@parameters('ManagementAudience')" || !slices.Contains(toStrings(t, secure["properties"]), "outputs") {
						t.Errorf("%s: %s = %v; want POST listKeys with the managed identity for Resource Manager, its outputs (the key) hidden", path, name, in)
					}
					return
				}
				if name == "Follow_status" {
					// A status link is its own credential: followed with nothing else, no key, no token.
					if in["method"] != "GET" || in["authentication"] != nil || in["headers"] != nil || !strings.Contains(fmt.Sprint(in["uri"]), "['statusUrl']") {
						t.Errorf("%s: %s = %v; want a bare GET of the answer's statusUrl", path, name, in)
					}
					return
				}
				httpActions++
				if in["method"] != "POST" || in["uri"] != "@parameters('RevokeUrl')" {
					t.Errorf("%s: %s: %v %v; want POST @parameters('RevokeUrl')", path, name, in["method"], in["uri"])
				}
				auth := mustObject(t, in["authentication"], name+" authentication")
				if auth["type"] != "ManagedServiceIdentity" || auth["audience"] != "@parameters('ApiAudience')" {
					t.Errorf("%s: %s authentication = %v; want ManagedServiceIdentity with audience @parameters('ApiAudience')", path, name, auth)
				}
				headers := mustObject(t, in["headers"], name+" headers")
				if headers["x-functions-key"] != "@body('Get_function_key')?['default']" {
					t.Errorf("%s: %s x-functions-key = %v; want the key read at run time, @body('Get_function_key')?['default']", path, name, headers["x-functions-key"])
				}
				if _, ok := headers["Idempotency-Key"]; !ok {
					t.Errorf("%s: %s sends no Idempotency-Key: a retried action could revoke twice", path, name)
				}
				for k := range mustObject(t, in["body"], name+" body") {
					if !slices.Contains(specFields, k) {
						t.Errorf("%s: %s body field %q is not a request field of openapi.yaml %v", path, name, k, specFields)
					}
				}
				rc := mustObject(t, a["runtimeConfiguration"], name+" runtimeConfiguration")
				secure := mustObject(t, rc["secureData"], name+" secureData")
				if !slices.Contains(toStrings(t, secure["properties"]), "inputs") {
					t.Errorf("%s: %s does not hide its inputs (the function key) from run history", path, name)
				}
				// Retries are safe thanks to the Idempotency-Key, and the policy sits where Logic
				// Apps reads it.
				if _, ok := in["retryPolicy"].(map[string]any); !ok {
					t.Errorf("%s: %s has no retryPolicy inside its inputs", path, name)
				}
				// The asynchronous pattern follows a deferred revocation to its final outcome; the
				// wait covers the queue's whole retry budget.
				if hasOperationOption(a, "DisableAsyncPattern") {
					t.Errorf("%s: %s disables the asynchronous pattern: a deferred revocation would read as final at 202", path, name)
				}
				limit, _ := a["limit"].(map[string]any)
				timeout, err := parseISODuration(fmt.Sprint(limit["timeout"]))
				if budget := queueRetryBudget(t); err != nil || timeout < budget {
					t.Errorf("%s: %s limit.timeout = %v (%v); want at least %s, the longest the queue keeps retrying", path, name, limit["timeout"], err, budget)
				}
			})
			if httpActions != 1 {
				t.Errorf("%s: %d HTTP actions; want 1", path, httpActions)
			}
			if problems := checkDefinition(def); len(problems) > 0 {
				t.Errorf("%s: Logic Apps would refuse the workflow:\n  %s", path, strings.Join(problems, "\n  "))
			}
		})
	}
}

// queueRetryBudget is the longest a deferred revocation can stay queued before its final
// outcome, from host.json: every delivery may run for functionTimeout and then wait
// visibilityTimeout, maxDequeueCount times.
func queueRetryBudget(t *testing.T) time.Duration {
	t.Helper()
	host := mustReadJSON(t, "../host.json")
	q := mustObject(t, mustObject(t, host["extensions"], "extensions")["queues"], "queues")
	span := func(v any) time.Duration {
		var h, m, s int
		if _, err := fmt.Sscanf(fmt.Sprint(v), "%d:%d:%d", &h, &m, &s); err != nil {
			t.Fatalf("host.json time span %v: %v", v, err)
		}
		return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second
	}
	n, ok := q["maxDequeueCount"].(float64)
	if !ok {
		t.Fatalf("host.json extensions.queues.maxDequeueCount = %v", q["maxDequeueCount"])
	}
	return time.Duration(n) * (span(host["functionTimeout"]) + span(q["visibilityTimeout"]))
}

// TestSentinelContentConventions: the playbook carries the metadata Microsoft Sentinel's content
// hub shows and the hidden tags that tie a deployed playbook to its template (as in
// Azure/Azure-Sentinel's Block-AADUser).
func TestSentinelContentConventions(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, sentinelPath)
	md := mustObject(t, tmpl["metadata"], "metadata")
	for _, k := range []string{"title", "description"} {
		if s, _ := md[k].(string); s == "" {
			t.Errorf("metadata.%s is empty", k)
		}
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(md["lastUpdateTime"])); err != nil {
		t.Errorf("metadata.lastUpdateTime = %v: %v", md["lastUpdateTime"], err)
	}
	for _, k := range []string{"prerequisites", "postDeployment", "entities", "tags"} {
		list, ok := md[k].([]any)
		if !ok || len(list) == 0 {
			t.Errorf("metadata.%s = %v; want a non-empty list", k, md[k])
		}
		for _, v := range list {
			if s, _ := v.(string); s == "" {
				t.Errorf("metadata.%s has a non-string or empty entry %v", k, v)
			}
		}
	}
	// What to do before deploying and what after are separate lists.
	pre, _ := json.Marshal(md["prerequisites"])
	if strings.Contains(string(pre), "Sessions.Revoke app role") || strings.Contains(string(pre), "Responder") {
		t.Errorf("metadata.prerequisites holds post-deployment steps: %s", pre)
	}
	post, _ := json.Marshal(md["postDeployment"])
	for _, want := range []string{"Sessions.Revoke", "function key reader"} {
		if !strings.Contains(string(post), want) {
			t.Errorf("metadata.postDeployment %s does not mention %q", post, want)
		}
	}
	if tier := mustObject(t, md["support"], "support")["tier"]; tier != "community" {
		t.Errorf("metadata.support.tier = %v; want community", tier)
	}
	if name, _ := mustObject(t, md["author"], "author")["name"].(string); name == "" {
		t.Errorf("metadata.author.name is empty")
	}
	resource, _ := workflowOf(t, tmpl)
	tags := mustObject(t, resource["tags"], "workflow tags")
	if tags["hidden-SentinelTemplateName"] != "entra-revoke-incident" || tags["hidden-SentinelTemplateVersion"] == nil || tags["LogicAppsCategory"] != "security" {
		t.Errorf("workflow tags = %v; want LogicAppsCategory security and the hidden template name and version", tags)
	}
	// The version tag follows the newest release note.
	notes := mustSlice(t, md["releaseNotes"], "releaseNotes")
	latest := mustObject(t, notes[0], "release note")["version"]
	if v := fmt.Sprint(tags["hidden-SentinelTemplateVersion"]); !strings.HasPrefix(fmt.Sprint(latest), v+".") {
		t.Errorf("hidden-SentinelTemplateVersion %s does not match the newest release note %v", v, latest)
	}
}

// forEachAction visits every action, nested ones included.
func forEachAction(t *testing.T, actions map[string]any, fn func(name string, a map[string]any)) {
	t.Helper()
	for name, a := range actions {
		m := mustObject(t, a, name)
		fn(name, m)
		if inner, ok := m["actions"].(map[string]any); ok {
			forEachAction(t, inner, fn)
		}
		if e, ok := m["else"].(map[string]any); ok {
			if inner, ok := e["actions"].(map[string]any); ok {
				forEachAction(t, inner, fn)
			}
		}
	}
}

// sentinelAPI fakes the Microsoft Sentinel connector: "Entities - Get Accounts" turns the
// incident's related Account entities into the connector's Accounts (Name, UPNSuffix, AadUserId,
// …), and "Add comment to incident (V3)" records the comment.
type sentinelAPI struct {
	failEntities bool
	comments     []map[string]any
}

func (s *sentinelAPI) call(path, method string, body any) (int, any) {
	switch {
	case method == "post" && path == "/entities/account":
		if s.failEntities {
			return 500, map[string]any{"error": map[string]any{"code": "InternalServerError", "message": "entities service unavailable"}}
		}
		var accounts []any
		entities, _ := body.([]any)
		for _, e := range entities {
			e, _ := e.(map[string]any)
			if e["kind"] != "Account" {
				continue
			}
			p, _ := e["properties"].(map[string]any)
			a := map[string]any{"Type": "account"}
			for from, to := range map[string]string{"accountName": "Name", "upnSuffix": "UPNSuffix", "aadUserId": "AadUserId",
				"aadTenantId": "AadTenantId", "ntDomain": "NTDomain", "friendlyName": "friendlyName"} {
				if v, ok := p[from]; ok {
					a[to] = v
				}
			}
			accounts = append(accounts, a)
		}
		return 200, map[string]any{"Accounts": orEmpty(accounts)}
	case method == "post" && path == "/Incidents/Comment":
		s.comments = append(s.comments, body.(map[string]any))
		return 200, map[string]any{}
	}
	return 404, map[string]any{"error": "unexpected connector call " + method + " " + path}
}

// sentinelRun prepares a run of the playbook for the incident in testdata against h.
func sentinelRun(t *testing.T, h *handler, api *sentinelAPI) (*wfRun, map[string]any) {
	t.Helper()
	_, def := workflowOf(t, mustReadJSON(t, sentinelPath))
	incident := mustReadJSON(t, "testdata/sentinel-incident.json")
	return sentinelRunOf(t, def, h.URL, h.miToken, api, incident), incident
}

// runCounter numbers the emulated playbook runs, so that each has its own run name.
var runCounter atomic.Int64

// sentinelRunOf prepares a run of a playbook definition for incident against the webhook at url.
func sentinelRunOf(t *testing.T, def map[string]any, url string, token func(string) string, api *sentinelAPI, incident map[string]any) *wfRun {
	t.Helper()
	run := newWFRun(t, def, map[string]any{
		"$connections":       map[string]any{"azuresentinel": map[string]any{"connectionId": "/subscriptions/x/connections/azuresentinel"}},
		"RevokeUrl":          url,
		"FunctionKeysUrl":    strings.TrimSuffix(url, "/api/revoke") + fakeKeysPath + "?api-version=2024-04-01",
		"ManagementAudience": "https://management.azure.com/",
		"ApiAudience":        apiAudience,
	}, map[string]any{"headers": map[string]any{}, "body": incident})
	run.name = "entra-revoke-incident"
	run.runName = fmt.Sprintf("08584562340012345678901%010d", runCounter.Add(1)) // each run its own, as in Logic Apps
	run.token = token
	run.api = api.call
	return run
}

// incidentWith returns the testdata incident with its related entities replaced by accounts, each
// given as the entity's properties (accountName, upnSuffix, aadUserId, …).
func incidentWith(t *testing.T, accounts ...map[string]any) map[string]any {
	t.Helper()
	incident := mustReadJSON(t, "testdata/sentinel-incident.json")
	props := mustObject(t, mustObject(t, incident["object"], "object")["properties"], "properties")
	var entities []any
	for i, a := range accounts {
		entities = append(entities, map[string]any{
			"id":         fmt.Sprintf("/entities/%d", i),
			"name":       fmt.Sprintf("entity-%d", i),
			"type":       "Microsoft.SecurityInsights/Entities",
			"kind":       "Account",
			"properties": a,
		})
	}
	props["relatedEntities"] = orEmpty(entities)
	return incident
}

// upnAccount is an account entity for a UPN.
func upnAccount(upn string) map[string]any {
	name, suffix, _ := strings.Cut(upn, "@")
	return map[string]any{"accountName": name, "upnSuffix": suffix, "friendlyName": name}
}

// TestSentinelPlaybook runs the playbook on an incident with four account entities against the
// real handler.
func TestSentinelPlaybook(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	api := &sentinelAPI{}
	run, incident := sentinelRun(t, h, api)
	object := incident["object"].(map[string]any)
	incidentName := object["name"].(string)

	if st := run.run(); st != wfSucceeded {
		t.Fatalf("run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(run))
	}

	// One request for the incident's Entra ID users, in entity order: the AadUserId wins over
	// Name@UPNSuffix.
	wantUsers := []string{"3f1c2b4a-9d8e-4f7a-8b6c-5d4e3f2a1b0c", "bob@contoso.com", protectedUser}
	jobs := h.Engine.Jobs()
	var gotUsers []string
	for _, j := range jobs {
		gotUsers = append(gotUsers, j.Users...)
	}
	if !slices.Equal(gotUsers, wantUsers) || len(jobs) != 1 {
		t.Fatalf("users sent to entra-revoke = %q in %d requests; want %q in one", gotUsers, len(jobs), wantUsers)
	}
	for i, j := range jobs {
		want := revoke.Meta{Trigger: revoke.TriggerHTTP, Caller: "entra:" + miClientID,
			RequestID: "sentinel-" + incidentName + "-" + run.runName + "-" + strings.ToLower(wantUsers[i])}
		if j.Trigger != want.Trigger || j.Caller != want.Caller || j.RequestID != want.RequestID {
			t.Errorf("job %d meta = %+v; want trigger %s, caller %s, request id (Idempotency-Key) %s", i, j.Meta, want.Trigger, want.Caller, want.RequestID)
		}
		if j.Ticket != "Sentinel incident 4711" || j.Reason != "Microsoft Sentinel incident 4711: Impossible travel for <b>several</b> users" ||
			j.RequestedBy != "sentinel-playbook:entra-revoke-incident" {
			t.Errorf("job %d ticket/reason/requestedBy = %q / %q / %q", i, j.Ticket, j.Reason, j.RequestedBy)
		}
	}
	if len(h.Audit.rejected) > 0 {
		t.Errorf("the handler refused the playbook: %+v", h.Audit.rejected)
	}

	// One comment, with every account's result, HTML-escaped.
	if len(api.comments) != 1 {
		t.Fatalf("%d incident comments; want 1: %v", len(api.comments), api.comments)
	}
	c := api.comments[0]
	if c["incidentArmId"] != object["id"] {
		t.Errorf("comment incidentArmId = %v; want %v", c["incidentArmId"], object["id"])
	}
	msg := c["message"].(string)
	for _, want := range []string{
		"3f1c2b4a-9d8e-4f7a-8b6c-5d4e3f2a1b0c: revoked",
		"bob@contoso.com: revoked",
		"carol@contoso.com: NOT revoked: protected: the user is on PROTECTED_USERS",
		"&lt;img src=x onerror=alert(1)&gt;: skipped, not an Entra ID user",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("comment %q\ndoes not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "<img") {
		t.Errorf("comment carries an entity's HTML unescaped: %q", msg)
	}

	// The Logic Apps retries of one run (the same run name) get the first answers back, and the
	// comment says so: the users are not revoked twice.
	retry := sentinelRunOf(t, mustWorkflowDefinition(t), h.URL, h.miToken, api, incident)
	retry.runName = run.runName
	if st := retry.run(); st != wfSucceeded {
		t.Fatalf("retried run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(retry))
	}
	if n := len(h.Engine.Jobs()); n != len(jobs) {
		t.Errorf("engine ran %d jobs after a retry of the same run; want still %d (replayed)", n, len(jobs))
	}
	if len(api.comments) != 2 || !strings.Contains(api.comments[1]["message"].(string), "bob@contoso.com: revoked (replayed: the first answer of this run") {
		t.Errorf("retried run's comment = %v; want the first results, marked replayed", api.comments[1:])
	}

	// A deliberate re-run (another run of the playbook on the same incident) is a new request.
	rerun, _ := sentinelRun(t, h, api)
	if st := rerun.run(); st != wfSucceeded {
		t.Fatalf("second run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(rerun))
	}
	if n := len(h.Engine.Jobs()); n != 2*len(jobs) {
		t.Errorf("engine ran %d jobs after a re-run; want %d (a re-run asks again)", n, 2*len(jobs))
	}
	if len(api.comments) != 3 || strings.Contains(api.comments[2]["message"].(string), "replayed") {
		t.Errorf("re-run's comment = %v; want fresh results", api.comments[2:])
	}
}

// mustWorkflowDefinition is the Sentinel playbook's workflow definition.
func mustWorkflowDefinition(t *testing.T) map[string]any {
	t.Helper()
	_, def := workflowOf(t, mustReadJSON(t, sentinelPath))
	return def
}

// TestSentinelPlaybookFailure: when the playbook cannot do its work, it comments the error on the
// incident and the run fails, instead of failing silently.
func TestSentinelPlaybookFailure(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	api := &sentinelAPI{failEntities: true}
	run, _ := sentinelRun(t, h, api)
	if st := run.run(); st != wfFailed {
		t.Fatalf("run status = %s; want %s (actions: %s)", st, wfFailed, describeActions(run))
	}
	if len(h.Engine.Jobs()) != 0 {
		t.Errorf("users were revoked although the accounts could not be read: %+v", h.Engine.Jobs())
	}
	if len(api.comments) != 1 {
		t.Fatalf("%d incident comments; want 1 failure comment", len(api.comments))
	}
	msg := api.comments[0]["message"].(string)
	for _, want := range []string{"entra-revoke playbook FAILED", "Entities_-_Get_Accounts Failed", "entities service unavailable"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure comment %q\ndoes not contain %q", msg, want)
		}
	}
}

// TestSentinelPlaybookUnreachable: when entra-revoke does not answer (a request-level failure),
// each user's failure is in the one comment and the run fails.
func TestSentinelPlaybookUnreachable(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	h.URL = closed.URL + "/api/revoke"
	api := &sentinelAPI{}
	run, _ := sentinelRun(t, h, api)
	run.params["FunctionKeysUrl"] = h.KeysURL + "?api-version=2024-04-01" // Resource Manager still answers
	if st := run.run(); st != wfFailed {
		t.Fatalf("run status = %s; want %s: a request-level failure fails the run (actions: %s)", st, wfFailed, describeActions(run))
	}
	if len(api.comments) != 1 {
		t.Fatalf("%d incident comments; want 1", len(api.comments))
	}
	msg := api.comments[0]["message"].(string)
	want := "bob@contoso.com: NOT revoked: HTTP no answer error: the request did not complete"
	if !strings.Contains(msg, want) {
		t.Errorf("comment %q\ndoes not contain %q", msg, want)
	}
}

func describeActions(r *wfRun) string {
	var parts []string
	for _, name := range slices.Sorted(mapsKeys(r.actions)) {
		a := r.actions[name]
		s := name + "=" + a.Status
		if a.Error != nil {
			s += fmt.Sprintf("(%v)", a.Error["message"])
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestLogicAppWorkflow runs the minimal Logic App: its request trigger's body becomes a request
// request, sent with the managed identity, and the handler's answer goes back to the caller.
func TestLogicAppWorkflow(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	_, def := workflowOf(t, mustReadJSON(t, logicAppPath))

	tests := []struct {
		name        string
		headers     map[string]any
		body        map[string]any
		wantStatus  int
		wantRequest string // the Idempotency-Key the handler saw
		wantJob     revoke.Job
	}{
		{
			name:        "all fields, caller's idempotency key",
			headers:     map[string]any{"Idempotency-Key": "CHG0042"},
			body:        map[string]any{"upn": "alice@contoso.com", "ticket": "CHG0042", "reason": "Lost phone", "requestedBy": "helpdesk@contoso.com", "dryRun": true},
			wantStatus:  200,
			wantRequest: "CHG0042",
			wantJob:     revoke.Job{Users: []string{"alice@contoso.com"}, Ticket: "CHG0042", Reason: "Lost phone", RequestedBy: "helpdesk@contoso.com", DryRun: true},
		},
		{
			name:        "upn only, run id as idempotency key",
			headers:     map[string]any{},
			body:        map[string]any{"upn": "dave@contoso.com"},
			wantStatus:  200,
			wantRequest: "08584562340012345678901234567CU12",
			wantJob:     revoke.Job{Users: []string{"dave@contoso.com"}, RequestedBy: "logic-app:entra-revoke-flow"},
		},
		{
			name:        "protected user: the handler's 403 reaches the caller",
			headers:     map[string]any{"Idempotency-Key": "CHG0043"},
			body:        map[string]any{"upn": protectedUser},
			wantStatus:  403,
			wantRequest: "CHG0043",
			wantJob:     revoke.Job{Users: []string{protectedUser}, RequestedBy: "logic-app:entra-revoke-flow"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.Engine.Jobs())
			run := newWFRun(t, def, map[string]any{"RevokeUrl": h.URL, "FunctionKeysUrl": h.KeysURL + "?api-version=2024-04-01", "ManagementAudience": "https://management.azure.com/", "ApiAudience": apiAudience},
				map[string]any{"headers": tt.headers, "body": tt.body})
			run.name = "entra-revoke-flow"
			run.token = h.miToken
			run.run()
			if run.response == nil {
				t.Fatalf("no Response (actions: %s)", describeActions(run))
			}
			if run.response.Status != tt.wantStatus {
				t.Errorf("response status = %d; want %d (body %v)", run.response.Status, tt.wantStatus, run.response.Body)
			}
			jobs := h.Engine.Jobs()
			if len(jobs) != before+1 {
				t.Fatalf("engine ran %d jobs; want 1", len(jobs)-before)
			}
			j := jobs[len(jobs)-1]
			if j.RequestID != tt.wantRequest || j.Caller != "entra:"+miClientID {
				t.Errorf("request id, caller = %q, %q; want %q, %q", j.RequestID, j.Caller, tt.wantRequest, "entra:"+miClientID)
			}
			if !slices.Equal(j.Users, tt.wantJob.Users) || j.Ticket != tt.wantJob.Ticket || j.Reason != tt.wantJob.Reason ||
				j.RequestedBy != tt.wantJob.RequestedBy || j.DryRun != tt.wantJob.DryRun {
				t.Errorf("job = users %q ticket %q reason %q requestedBy %q dryRun %v; want %q %q %q %q %v",
					j.Users, j.Ticket, j.Reason, j.RequestedBy, j.DryRun,
					tt.wantJob.Users, tt.wantJob.Ticket, tt.wantJob.Reason, tt.wantJob.RequestedBy, tt.wantJob.DryRun)
			}
			if resp, ok := run.response.Body.(map[string]any); !ok || resp["id"] != tt.wantRequest {
				t.Errorf("response body = %v; want the handler's result for %s", run.response.Body, tt.wantRequest)
			}
		})
	}
}

// mustTool fails the test when a tool the recipes need is missing: a missing tool must not look
// like a passing test. A -short run (make unit: Go alone) skips instead and says why, as
// testenv.Node does.
func mustTool(t *testing.T, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if testing.Short() {
			t.Skipf("needs %s (%s), skipped in -short mode: the ticketing recipe is not checked", name, install)
		}
		t.Fatalf("%s is not installed (%s): the ticketing recipe cannot be checked", name, install)
	}
}

// runScript runs a script with env added to a minimal environment and stdin.
func runScript(t *testing.T, script string, env []string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}, env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run %s: %v", script, err)
	}
	return out.String(), errb.String(), code
}

// parseHeaders reads "name: value" lines.
func parseHeaders(t *testing.T, out string) http.Header {
	t.Helper()
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("output line %q is not a header", line)
		}
		h.Set(k, v)
	}
	return h
}

// postSigned sends body with headers to the handler and returns the status.
func postSigned(t *testing.T, url string, h http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestShellcheck(t *testing.T) {
	t.Parallel()
	mustTool(t, "shellcheck", "apt-get install shellcheck; make shellcheck")
	for _, s := range []string{signScript, sendScript, statusScript} {
		cmd := exec.Command("shellcheck", "--severity=style", s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
}

// TestSignScript: sign.sh's headers verify with our verifier, with the independent npm
// implementation, and with the real handler, which then accepts the request.
func TestSignScript(t *testing.T) {
	t.Parallel()
	mustTool(t, "openssl", "apt-get install openssl")
	// A 64-byte key: the longest Standard Webhooks allows, a whole SHA-256 block.
	long := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("ABCDEFGHIJKLMNOP"), 4))
	tests := []struct {
		name    string
		secrets []string // the handler's WEBHOOK_SECRETS; the script signs with the last one
		body    string
	}{
		{"fixture secret", []string{testSecret}, `{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`},
		{"non-ASCII and a trailing newline are signed byte for byte", []string{testSecret}, "{\"upn\":\"alice@contoso.com\",\"reason\":\"Téléphone perdu — ☎\"}\n"},
		{"longest key", []string{long}, `{"upn":"bob@contoso.com"}`},
		{"second secret during rotation", []string{"whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldy1zZWNyZXQ=", testSecret}, `{"upns":["a@contoso.com","b@contoso.com"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secret := tt.secrets[len(tt.secrets)-1]
			out, stderr, code := runScript(t, signScript, []string{"WEBHOOK_SECRET=" + secret}, []byte(tt.body))
			if code != 0 {
				t.Fatalf("sign.sh exit %d: %s", code, stderr)
			}
			if strings.Contains(out+stderr, strings.TrimPrefix(secret, "whsec_")) {
				t.Fatalf("sign.sh printed the secret")
			}
			h := parseHeaders(t, out)

			keys, err := webhook.ParseSecrets(tt.secrets)
			if err != nil {
				t.Fatal(err)
			}
			signed, err := keys.Verify(h, []byte(tt.body), time.Now(), 5*time.Minute, 5*time.Minute)
			if err != nil {
				t.Fatalf("Keys.Verify(headers %v, body %q) = %v; want nil", h, tt.body, err)
			}
			if signed.KeyIndex != len(tt.secrets)-1 {
				t.Errorf("verified with key %d; want %d", signed.KeyIndex, len(tt.secrets)-1)
			}
			if err := testenv.NodeVerify(t, secret, h, []byte(tt.body)); err != nil {
				t.Errorf("the standardwebhooks npm package refuses sign.sh's signature: %v", err)
			}

			srv := mustHandler(t, tt.secrets, false)
			if st := postSigned(t, srv.URL, h, []byte(tt.body)); st != http.StatusOK {
				t.Fatalf("handler answered %d to sign.sh's request; want 200 (rejections: %+v)", st, srv.Audit.rejected)
			}
			jobs := srv.Engine.Jobs()
			if len(jobs) != 1 || jobs[0].RequestID != h.Get("webhook-id") {
				t.Errorf("jobs = %+v; want one with request id %s", jobs, h.Get("webhook-id"))
			}
			// The same headers over another body must be refused: the handler really checks.
			if st := postSigned(t, srv.URL, h, []byte(`{"upn":"mallory@contoso.com"}`)); st != http.StatusUnauthorized {
				t.Errorf("handler answered %d to a tampered body; want 401", st)
			}
		})
	}
}

// TestSignScriptInputs: fixed id and timestamp are used as given, and bad input is refused
// without echoing the secret.
func TestSignScriptInputs(t *testing.T) {
	t.Parallel()
	mustTool(t, "openssl", "apt-get install openssl")
	out, stderr, code := runScript(t, signScript,
		[]string{"WEBHOOK_SECRET=" + testSecret, "WEBHOOK_ID=msg_fixed", "WEBHOOK_TIMESTAMP=1763769541"}, []byte(`{"upn":"alice@contoso.com"}`))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The value the handler's own signer gives for these inputs.
	keys, _ := webhook.ParseSecrets([]string{testSecret})
	want, err := keys.Headers("msg_fixed", time.Unix(1763769541, 0), []byte(`{"upn":"alice@contoso.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	got := parseHeaders(t, out)
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if got.Get(k) != want.Get(k) {
			t.Errorf("%s = %q; want %q", k, got.Get(k), want.Get(k))
		}
	}

	bad := []struct{ name, secret string }{
		{"missing", ""},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"not base64", "whsec_not*base64!"},
		{"empty key", "whsec_"},
	}
	for _, tt := range bad {
		_, stderr, code := runScript(t, signScript, []string{"WEBHOOK_SECRET=" + tt.secret}, []byte("{}"))
		if code != 2 {
			t.Errorf("%s: WEBHOOK_SECRET=%q: exit %d; want 2", tt.name, tt.secret, code)
		}
		if len(tt.secret) > 8 && strings.Contains(stderr, tt.secret) {
			t.Errorf("%s: the error echoes the secret: %q", tt.name, stderr)
		}
	}
}

// TestSendScript: send.sh, the complete curl recipe, gets a request accepted and prints the answer.
func TestSendScript(t *testing.T) {
	t.Parallel()
	mustTool(t, "openssl", "apt-get install openssl")
	mustTool(t, "curl", "apt-get install curl")
	var gotKey string
	srv := mustHandler(t, []string{testSecret}, false)
	// In Azure the Functions front end checks the function key before the handler sees the
	// request; check that it is sent as the header the front end reads.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey = r.Header.Get("x-functions-key")
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, srv.URL, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(front.Close)

	body := `{"upn":"alice@contoso.com","ticket":"INC0012345"}`
	env := []string{"WEBHOOK_SECRET=" + testSecret, "FUNCTION_KEY=" + functionKey, "WEBHOOK_ID=INC0012345-1"}
	out, stderr, code := runScript(t, sendScript, env, []byte(body), front.URL+"/api/revoke")
	if code != 0 {
		t.Fatalf("send.sh exit %d: %s %s", code, out, stderr)
	}
	if gotKey != functionKey {
		t.Errorf("x-functions-key = %q; want %q", gotKey, functionKey)
	}
	var answer map[string]any
	if err := json.Unmarshal([]byte(out), &answer); err != nil || answer["status"] != "revoked" || answer["id"] != "INC0012345-1" {
		t.Errorf("send.sh printed %q (%v); want the handler's revoked result for INC0012345-1", out, err)
	}

	// A refused request exits 1 and still prints the handler's error.
	out, _, code = runScript(t, sendScript, []string{"WEBHOOK_SECRET=whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", "FUNCTION_KEY=" + functionKey}, []byte(body), front.URL+"/api/revoke")
	if code != 1 || !strings.Contains(out, "unauthorized") {
		t.Errorf("wrong secret: exit %d, output %q; want exit 1 and the unauthorized error", code, out)
	}
}

// TestServiceNowScript runs the Script Include under node with ServiceNow's APIs provided by a
// harness, then sends the request it built to the handler.
func TestServiceNowScript(t *testing.T) {
	t.Parallel()
	mustTool(t, "node", "the Makefile's node-tools target needs it too")
	script, err := filepath.Abs(serviceNowPath)
	if err != nil {
		t.Fatal(err)
	}
	const endpoint = "https://func-entra-revoke.azurewebsites.net/api/revoke"
	props := map[string]string{
		"x_entra_revoke.endpoint":       endpoint,
		"x_entra_revoke.webhook_secret": testSecret,
		"x_entra_revoke.function_key":   functionKey,
	}
	tests := []struct {
		name       string
		args       []any // upn, ticket, reason, requestId
		wantReason string
		wantID     string
	}{
		{"new request", []any{"alice@contoso.com", "INC0012345", "Lost phone"}, "Lost phone", ""},
		{"retry keeps the id; non-ASCII is escaped", []any{"bob@contoso.com", "INC0012346", "Téléphone volé ☎", "msg_retry1"}, "Téléphone volé ☎", "msg_retry1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, _ := json.Marshal(map[string]any{"properties": props, "args": tt.args})
			out, stderr, code := runScript(t, "node", nil, in, "testdata/servicenow-harness.js", script)
			if code != 0 {
				t.Fatalf("node harness exit %d: %s", code, stderr)
			}
			var got struct {
				Request struct {
					Endpoint, Method string
					Headers          map[string]string
					Body             string
					TimeoutMs        int
				}
				Result struct{ RequestID string }
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("harness output %q: %v", out, err)
			}
			req := got.Request
			if req.Endpoint != endpoint || !strings.EqualFold(req.Method, "post") || req.Headers["x-functions-key"] != functionKey ||
				req.Headers["Content-Type"] != "application/json" {
				t.Errorf("request = %s %s headers %v; want post %s with the function key and JSON content type", req.Method, req.Endpoint, req.Headers, endpoint)
			}
			for _, r := range req.Body {
				if r > 0x7e {
					t.Errorf("body %q has a non-ASCII character: it must be \\u-escaped", req.Body)
					break
				}
			}
			if tt.wantID != "" && (req.Headers["webhook-id"] != tt.wantID || got.Result.RequestID != tt.wantID) {
				t.Errorf("webhook-id = %q, requestId = %q; want %q", req.Headers["webhook-id"], got.Result.RequestID, tt.wantID)
			}

			h := http.Header{}
			for k, v := range req.Headers {
				h.Set(k, v)
			}
			srv := mustHandler(t, []string{testSecret}, false)
			if st := postSigned(t, srv.URL, h, []byte(req.Body)); st != http.StatusOK {
				t.Fatalf("handler answered %d to the ServiceNow request; want 200 (rejections %+v)", st, srv.Audit.rejected)
			}
			j := srv.Engine.Jobs()[0]
			if j.Users[0] != tt.args[0] || j.Ticket != tt.args[1] || j.Reason != tt.wantReason || j.RequestedBy != "servicenow:itil.agent" ||
				j.RequestID != req.Headers["webhook-id"] {
				t.Errorf("job = users %q ticket %q reason %q requestedBy %q id %q; want %v, %q, servicenow:itil.agent, %q",
					j.Users, j.Ticket, j.Reason, j.RequestedBy, j.RequestID, tt.args[:2], tt.wantReason, req.Headers["webhook-id"])
			}
		})
	}
}

// TestSentinelTemplateRoles: the playbook template gives the playbook's identity Microsoft
// Sentinel Responder on the workspace and, when the Azure Security Insights principal is given,
// Sentinel the right to run the playbooks of the resource group. Each role assignment's name
// includes the principal, so that a playbook deleted and deployed again (a new identity) gets a
// new assignment instead of colliding with the old one's name.
func TestSentinelTemplateRoles(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, sentinelPath)
	var roles []map[string]any
	var given string
	var vars map[string]any
	for _, r := range mustSlice(t, tmpl["resources"], "resources") {
		r := mustObject(t, r, "resource")
		if r["type"] != "Microsoft.Resources/deployments" {
			continue
		}
		props := mustObject(t, r["properties"], "deployment properties")
		if mustObject(t, props["expressionEvaluationOptions"], "expressionEvaluationOptions")["scope"] != "Inner" {
			t.Errorf("the roles deployment is not evaluated in its own scope: its parameters would not be known when names are computed")
		}
		given = fmt.Sprint(props["parameters"])
		vars, _ = mustObject(t, props["template"], "template")["variables"].(map[string]any)
		for _, ra := range mustSlice(t, mustObject(t, props["template"], "template")["resources"], "nested resources") {
			roles = append(roles, mustObject(t, ra, "role assignment"))
		}
	}
	if !strings.Contains(given, "reference(resourceId('Microsoft.Logic/workflows', parameters('PlaybookName')), '2019-05-01', 'full').identity.principalId") {
		t.Errorf("the roles deployment's principalId is %s; want the playbook's identity", given)
	}
	want := map[string]string{
		"3e150937-b8fe-4cfb-8069-0eaf05ecd056": "principalId",           // Microsoft Sentinel Responder
		"f4c81013-99ee-4d62-a7ee-b3f1f648599a": "automationPrincipalId", // Microsoft Sentinel Automation Contributor
	}
	if len(roles) != len(want) {
		t.Fatalf("%d role assignments; want %d", len(roles), len(want))
	}
	for _, ra := range roles {
		p := mustObject(t, ra["properties"], "role assignment properties")
		def := fmt.Sprint(p["roleDefinitionId"])
		var role string
		for k, v := range vars {
			if strings.Contains(def, "variables('"+k+"')") {
				role = fmt.Sprint(v)
			}
		}
		param, ok := want[role]
		if !ok {
			t.Errorf("role assignment of %s (%s): not a role the playbook needs", def, role)
			continue
		}
		if name := fmt.Sprint(ra["name"]); !strings.Contains(name, "parameters('"+param+"')") {
			t.Errorf("role %s: name %s does not include the principal (%s)", role, name, param)
		}
		if p["principalId"] != "[parameters('"+param+"')]" || p["principalType"] != "ServicePrincipal" {
			t.Errorf("role %s: principal %v %v; want parameters('%s'), ServicePrincipal", role, p["principalId"], p["principalType"], param)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkflowsSurviveKeyRotation: the playbook and the Logic App read the revoke function's key
// at run time, so after a rotation the next run sends the new key and is not refused.
func TestWorkflowsSurviveKeyRotation(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	api := &sentinelAPI{}
	before, _ := sentinelRun(t, h, api)
	if st := before.run(); st != wfSucceeded {
		t.Fatalf("before the rotation: run status = %s (actions: %s)", st, describeActions(before))
	}
	h.rotateKey("rotated-function-key-not-a-secret")
	after, _ := sentinelRun(t, h, api)
	if st := after.run(); st != wfSucceeded {
		t.Fatalf("after the rotation: run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(after))
	}
	if msg := api.comments[1]["message"].(string); !strings.Contains(msg, "bob@contoso.com: revoked") || strings.Contains(msg, "HTTP 401") {
		t.Errorf("after the rotation the comment is %q; want the users revoked", msg)
	}
	in, _ := after.actions["Revoke_sessions"].Inputs.(map[string]any)
	headers, _ := in["headers"].(map[string]any)
	if got := headers["x-functions-key"]; got != "rotated-function-key-not-a-secret" {
		t.Errorf("the playbook sent x-functions-key %v; want the rotated key", got)
	}

	h.rotateKey("rotated-again-not-a-secret")
	run := newWFRun(t, definitionOf(t, logicAppPath),
		map[string]any{"RevokeUrl": h.URL, "FunctionKeysUrl": h.KeysURL + "?api-version=2024-04-01", "ManagementAudience": "https://management.azure.com/", "ApiAudience": apiAudience},
		map[string]any{"headers": map[string]any{"Idempotency-Key": "CHG-ROTATE"}, "body": map[string]any{"upn": "alice@contoso.com"}})
	run.token = h.miToken
	if st := run.run(); st != wfSucceeded || run.response == nil || run.response.Status != http.StatusOK {
		t.Errorf("Logic App after a rotation: status %s, response %+v; want 200 (actions: %s)", st, run.response, describeActions(run))
	}
}
