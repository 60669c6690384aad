package integrations_test

// Tests of the emulator's rules and of the workflows under them. Each rule has a test that the
// workflows as they were before issue 17 (testdata/before-issue17) fail: that is what shows the
// rule is the service's and not our own reading.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

const (
	oldSentinelPath = "testdata/before-issue17/sentinel-azuredeploy.json"
	oldLogicAppPath = "testdata/before-issue17/logic-apps-azuredeploy.json"
	// sentinelCommentLimit is Sentinel's size limit for one incident comment
	// (learn.microsoft.com/azure/sentinel/sentinel-service-limits, "Number of characters per
	// comment: 30,000 characters").
	sentinelCommentLimit = 30000
)

// definitionOf reads a template and returns its workflow definition.
func definitionOf(t *testing.T, path string) map[string]any {
	t.Helper()
	_, def := workflowOf(t, mustReadJSON(t, path))
	return def
}

// withRetryPolicyInInputs moves every HTTP action's misplaced retryPolicy into its inputs: the
// one fix that lets the old workflows past the member check, so the run-status rule can be shown
// to catch them on its own.
func withRetryPolicyInInputs(t *testing.T, def map[string]any) map[string]any {
	t.Helper()
	forEachAction(t, mustObject(t, def["actions"], "actions"), func(_ string, a map[string]any) {
		if rp, ok := a["retryPolicy"]; ok {
			mustObject(t, a["inputs"], "inputs")["retryPolicy"] = rp
			delete(a, "retryPolicy")
		}
	})
	if problems := checkDefinition(def); len(problems) > 0 {
		t.Fatalf("the old workflow with retryPolicy moved still has problems: %v", problems)
	}
	return def
}

func TestCheckDefinitionWorkflows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want string // a problem checkDefinition must report; empty: none at all
	}{
		{sentinelPath, ""},
		{logicAppPath, ""},
		{oldSentinelPath, "action Revoke_sessions: retryPolicy sits beside inputs"},
		{oldLogicAppPath, "action Revoke_sessions: retryPolicy sits beside inputs"},
	}
	for _, tt := range tests {
		problems := checkDefinition(definitionOf(t, tt.path))
		if tt.want == "" {
			if len(problems) > 0 {
				t.Errorf("checkDefinition(%s) = %q; want no problems", tt.path, problems)
			}
			continue
		}
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
			t.Errorf("checkDefinition(%s) = %q; want a problem containing %q", tt.path, problems, tt.want)
		}
	}
}

// TestCheckDefinitionRules: each rule of the member check on a minimal definition.
func TestCheckDefinitionRules(t *testing.T) {
	t.Parallel()
	base := func(action string) string {
		return `{"$schema":"x","contentVersion":"1.0.0.0","parameters":{},
			"triggers":{"manual":{"type":"Request","kind":"Http","inputs":{"schema":{}}}},
			"actions":{"A":` + action + `},"outputs":{}}`
	}
	const httpOK = `{"type":"Http","runAfter":{},"inputs":{"method":"GET","uri":"https://x",
		"retryPolicy":{"type":"exponential","count":4,"interval":"PT15S"}},"limit":{"timeout":"PT1H"}}`
	tests := []struct {
		name string
		def  string
		want string // empty: valid
	}{
		{"valid", base(httpOK), ""},
		{"retryPolicy beside inputs", base(`{"type":"Http","inputs":{"method":"GET","uri":"https://x"},"retryPolicy":{"type":"none"}}`), "retryPolicy sits beside inputs"},
		{"unknown action member", base(`{"type":"Compose","inputs":1,"timeout":"PT1M"}`), `member "timeout" is not defined`},
		{"limit on a Compose", base(`{"type":"Compose","inputs":1,"limit":{"timeout":"PT1M"}}`), `member "limit" is not defined`},
		{"unknown HTTP input", base(`{"type":"Http","inputs":{"method":"GET","uri":"https://x","timeout":"PT1M"}}`), `action A inputs: member "timeout"`},
		{"retry count out of range", base(`{"type":"Http","inputs":{"method":"GET","uri":"https://x","retryPolicy":{"type":"fixed","count":91,"interval":"PT10S"}}}`), "count 91"},
		{"retry interval too short", base(`{"type":"Http","inputs":{"method":"GET","uri":"https://x","retryPolicy":{"type":"fixed","count":2,"interval":"PT1S"}}}`), "interval PT1S"},
		{"retry on a Compose", base(`{"type":"Compose","inputs":{"retryPolicy":{"type":"none"}}}`), "a Compose action has no retry policy"},
		{"bad runAfter status", `{"triggers":{"manual":{"type":"Request","kind":"Http"}},"actions":{"A":{"type":"Compose","inputs":1},"B":{"type":"Compose","inputs":1,"runAfter":{"A":["Completed"]}}}}`, `status Completed`},
		{"runAfter outside the container", `{"triggers":{"manual":{"type":"Request","kind":"Http"}},"actions":{"S":{"type":"Scope","actions":{"B":{"type":"Compose","inputs":1,"runAfter":{"A":["Succeeded"]}}}},"A":{"type":"Compose","inputs":1}}}`, "not in the same container"},
		{"unknown operation option", base(`{"type":"Http","inputs":{"method":"GET","uri":"https://x"},"operationOptions":"Sequential"}`), `operation option "Sequential"`},
		{"bad async timeout", base(`{"type":"Http","inputs":{"method":"GET","uri":"https://x"},"limit":{"timeout":"1 hour"}}`), "limit.timeout 1 hour"},
		{"unknown trigger member", `{"triggers":{"manual":{"type":"Request","kind":"Http","retryPolicy":{}}},"actions":{}}`, `trigger manual: member "retryPolicy"`},
		{"unknown definition member", `{"triggers":{"manual":{"type":"Request","kind":"Http"}},"actions":{},"variables":{}}`, `definition: member "variables"`},
		{"bad parameter type", `{"parameters":{"P":{"type":"Secret"}},"triggers":{"manual":{"type":"Request","kind":"Http"}},"actions":{}}`, `type "Secret"`},
		{"concurrency repetitions outside a Foreach", base(`{"type":"Compose","inputs":1,"runtimeConfiguration":{"concurrency":{"repetitions":1}}}`), `member "repetitions"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var def map[string]any
			if err := json.Unmarshal([]byte(tt.def), &def); err != nil {
				t.Fatalf("test definition: %v", err)
			}
			problems := checkDefinition(def)
			switch {
			case tt.want == "" && len(problems) > 0:
				t.Errorf("checkDefinition(%s) = %q; want none", tt.def, problems)
			case tt.want != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }):
				t.Errorf("checkDefinition(%s) = %q; want one containing %q", tt.def, problems, tt.want)
			}
		})
	}
}

// TestContainerStatus: the documented rule for runs and scopes whose branches end in skipped
// actions.
func TestContainerStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		actions string            // the container: action name -> runAfter
		status  map[string]string // what each action ended with
		want    string
	}{
		{"all succeeded", `{"A":{},"B":{"A":["Succeeded"]}}`, map[string]string{"A": wfSucceeded, "B": wfSucceeded}, wfSucceeded},
		{"unhandled failure", `{"A":{},"B":{"A":["Succeeded"]}}`, map[string]string{"A": wfFailed, "B": wfSkipped}, wfFailed},
		{"handled failure, the other branch ends skipped (the old playbook)",
			`{"A":{},"Ok":{"A":["Succeeded"]},"Err":{"A":["Failed","TimedOut"]}}`,
			map[string]string{"A": wfFailed, "Ok": wfSkipped, "Err": wfSucceeded}, wfFailed},
		{"one step after every outcome", `{"A":{},"Rec":{"A":["Succeeded","Failed","Skipped","TimedOut"]}}`,
			map[string]string{"A": wfFailed, "Rec": wfSucceeded}, wfSucceeded},
		{"failure branch skipped after success", `{"A":{},"Ok":{"A":["Succeeded"]},"Err":{"A":["Failed"]}}`,
			map[string]string{"A": wfSucceeded, "Ok": wfSucceeded, "Err": wfSkipped}, wfSucceeded},
		{"skips chain back to a failure", `{"A":{},"B":{"A":["Succeeded"]},"C":{"B":["Succeeded"]}}`,
			map[string]string{"A": wfFailed, "B": wfSkipped, "C": wfSkipped}, wfFailed},
		{"timed out and unhandled", `{"A":{}}`, map[string]string{"A": wfTimedOut}, wfFailed},
		{"skipped with two predecessors takes the worst", `{"A":{},"B":{},"C":{"A":["Succeeded"],"B":["Succeeded"]}}`,
			map[string]string{"A": wfSucceeded, "B": wfFailed, "C": wfSkipped}, wfFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var after map[string]map[string]any
			if err := json.Unmarshal([]byte(tt.actions), &after); err != nil {
				t.Fatal(err)
			}
			actions := map[string]any{}
			for name, ra := range after {
				actions[name] = map[string]any{"type": "Compose", "runAfter": ra}
			}
			if got := containerStatus(t, actions, tt.status); got != tt.want {
				t.Errorf("containerStatus(%s, %v) = %s; want %s", tt.actions, tt.status, got, tt.want)
			}
		})
	}
}

// TestSentinelPlaybookRefusedUsers: one account revoked, one protected (403), one not found
// (404), against the real handler. The playbook ends Succeeded with one comment listing all
// three; the old shape (retryPolicy fixed, parallel Record_result/Record_failure) fails the run
// and comments "FAILED" instead, which is what the documented status rule says Azure does.
func TestSentinelPlaybookRefusedUsers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		def        func(t *testing.T) map[string]any
		wantStatus string
		wantLines  []string
		wantNot    string
	}{
		{
			name:       "current playbook",
			def:        func(t *testing.T) map[string]any { return definitionOf(t, sentinelPath) },
			wantStatus: wfSucceeded,
			wantLines: []string{
				"alice@contoso.com: revoked",
				protectedUser + ": NOT revoked: protected: the user is on PROTECTED_USERS",
				notFoundUser + ": NOT revoked: not_found: Resource '" + notFoundUser + "' does not exist",
			},
			wantNot: "FAILED",
		},
		{
			name:       "before issue 17",
			def:        func(t *testing.T) map[string]any { return withRetryPolicyInInputs(t, definitionOf(t, oldSentinelPath)) },
			wantStatus: wfFailed,
			wantLines:  []string{"entra-revoke playbook FAILED"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := mustHandler(t, []string{testSecret}, true)
			api := &sentinelAPI{}
			incident := incidentWith(t, upnAccount("alice@contoso.com"), upnAccount(protectedUser), upnAccount(notFoundUser))
			run := sentinelRunOf(t, tt.def(t), h.URL, h.miToken, api, incident)
			if st := run.run(); st != tt.wantStatus {
				t.Errorf("run status = %s; want %s (actions: %s)", st, tt.wantStatus, describeActions(run))
			}
			if len(api.comments) != 1 {
				t.Fatalf("%d incident comments; want 1: %v", len(api.comments), api.comments)
			}
			msg := api.comments[0]["message"].(string)
			for _, want := range tt.wantLines {
				if !strings.Contains(msg, want) {
					t.Errorf("comment %q\ndoes not contain %q", msg, want)
				}
			}
			if tt.wantNot != "" && strings.Contains(msg, tt.wantNot) {
				t.Errorf("comment %q contains %q", msg, tt.wantNot)
			}
		})
	}
}

// TestSentinelFailureCommentAfterSkippedStep: when the playbook breaks and the step that lists
// the failing actions itself fails, the step after it is skipped; the failure comment must still
// run (it runs after its predecessor's every outcome). The old shape stays silent.
func TestSentinelFailureCommentAfterSkippedStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		def          func(t *testing.T) map[string]any
		wantComments int
	}{
		{"current playbook", func(t *testing.T) map[string]any { return definitionOf(t, sentinelPath) }, 1},
		{"before issue 17", func(t *testing.T) map[string]any { return withRetryPolicyInInputs(t, definitionOf(t, oldSentinelPath)) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			def := tt.def(t)
			// Break the listing of failed actions: selecting a property of a string fails.
			failed := mustObject(t, mustObject(t, def["actions"], "actions")["Failed_actions"], "Failed_actions")
			mustObject(t, failed["inputs"], "inputs")["where"] = "@equals(item()?['name']?['first'], 'x')"
			h := mustHandler(t, []string{testSecret}, true)
			api := &sentinelAPI{failEntities: true}
			run := sentinelRunOf(t, def, h.URL, h.miToken, api, mustReadJSON(t, "testdata/sentinel-incident.json"))
			if st := run.run(); st != wfFailed {
				t.Errorf("run status = %s; want %s (actions: %s)", st, wfFailed, describeActions(run))
			}
			if got := run.actions["Failure_details"]; got == nil || got.Status != wfSkipped {
				t.Fatalf("Failure_details = %+v; want Skipped (the premise of this test)", got)
			}
			if len(api.comments) != tt.wantComments {
				t.Fatalf("%d incident comments; want %d: %v", len(api.comments), tt.wantComments, api.comments)
			}
			if tt.wantComments == 1 {
				msg := api.comments[0]["message"].(string)
				for _, want := range []string{"entra-revoke playbook FAILED", "the failing steps could not be listed"} {
					if !strings.Contains(msg, want) {
						t.Errorf("failure comment %q\ndoes not contain %q", msg, want)
					}
				}
			}
		})
	}
}

// TestSentinelPlaybookLargeIncident: an incident with more accounts than one comment can list
// gets one comment within Sentinel's limit, cut at a line boundary, saying where the rest is.
func TestSentinelPlaybookLargeIncident(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	api := &sentinelAPI{}
	accounts := []map[string]any{upnAccount("alice@contoso.com"), upnAccount(protectedUser)}
	// Hostile on-premises names: HTML to escape (each & becomes five characters) and characters
	// outside the BMP, which count twice in .NET strings.
	for i := range 300 {
		name := fmt.Sprintf("svc-%03d-%s", i, strings.Repeat("R&D <ops> 😀 ", 12))
		accounts = append(accounts, map[string]any{"accountName": name, "ntDomain": "CORP"})
	}
	run := sentinelRunOf(t, definitionOf(t, sentinelPath), h.URL, h.miToken, api, incidentWith(t, accounts...))
	if st := run.run(); st != wfSucceeded {
		t.Fatalf("run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(run))
	}
	if len(api.comments) != 1 {
		t.Fatalf("%d incident comments; want 1", len(api.comments))
	}
	msg := api.comments[0]["message"].(string)
	if n := len(utf16.Encode([]rune(msg))); n > sentinelCommentLimit {
		t.Errorf("comment is %d characters; Sentinel accepts at most %d", n, sentinelCommentLimit)
	}
	for _, want := range []string{"alice@contoso.com: revoked", protectedUser + ": NOT revoked: protected",
		"every result is in the playbook run history"} {
		if !strings.Contains(msg, want) {
			t.Errorf("comment does not contain %q", want)
		}
	}
	// Cut between lines: every listed line is whole, and the escaping was not cut mid-entity.
	body := msg[strings.Index(msg, "</p><p>")+len("</p><p>"):]
	lines := strings.Split(strings.TrimSuffix(body, "</p>"), "<br>")
	for _, line := range lines[:len(lines)-1] {
		if !strings.HasPrefix(line, "alice") && !strings.HasPrefix(line, protectedUser) &&
			!strings.HasSuffix(line, ": skipped, not an Entra ID user (no AadUserId or UPNSuffix)") {
			t.Errorf("comment line %q is not a whole result", line)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "… the list is cut here") {
		t.Errorf("last line = %q; want the note that the list is cut", lines[len(lines)-1])
	}
}

// asyncServer speaks entra-revoke's status protocol: every POST /api/revoke is queued (202 with
// Location, Retry-After and statusUrl); GET on the link answers 202 with the body as it stands
// until pollsBeforeFinal polls have been made, then the final status and body.
type asyncServer struct {
	*httptest.Server
	asyncScript

	mu          sync.Mutex
	posts       []*http.Request
	pollHeaders []http.Header     // the headers of every GET on a status link
	upns        map[string]string // handle -> upn
	polls       map[string]int    // handle -> polls so far
}

// asyncScript is what an asyncServer answers.
type asyncScript struct {
	retryAfter       []string // Retry-After of successive 202s (the last repeats)
	pollsBeforeFinal int      // 202s on the link before the final answer; -1: never final
	finalStatus      int
	final            func(upn string) map[string]any
}

func newAsyncServer(t *testing.T, script asyncScript) *asyncServer {
	t.Helper()
	s := &asyncServer{asyncScript: script, upns: map[string]string{}, polls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/revoke", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			UPN  string
			UPNs []string
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		if body.UPN == "" && len(body.UPNs) == 1 {
			body.UPN = body.UPNs[0] // the Sentinel playbook sends one request per incident
		}
		if err != nil || body.UPN == "" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		handle := fmt.Sprintf("h%032d", len(s.upns)+1)
		s.upns[handle] = body.UPN
		s.posts = append(s.posts, r)
		s.mu.Unlock()
		s.queued(w, r, handle, body.UPN, 0)
	})
	mux.HandleFunc("GET /api/revoke/status/{handle}", func(w http.ResponseWriter, r *http.Request) {
		handle := r.PathValue("handle")
		s.mu.Lock()
		upn, ok := s.upns[handle]
		s.polls[handle]++
		n := s.polls[handle]
		s.pollHeaders = append(s.pollHeaders, r.Header.Clone())
		s.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			writeJSONTest(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": "not_found", "message": "no such status"}})
			return
		}
		if s.pollsBeforeFinal < 0 || n <= s.pollsBeforeFinal {
			s.queued(w, r, handle, upn, n)
			return
		}
		writeJSONTest(w, s.finalStatus, s.final(upn))
	})
	s.Server = httptest.NewServer(withFunctionsFront(mux, func() any { return functionKey }))
	t.Cleanup(s.Close)
	return s
}

// queued answers 202 for the n-th exchange about handle.
func (s *asyncServer) queued(w http.ResponseWriter, r *http.Request, handle, upn string, n int) {
	link := "http://" + r.Host + "/api/revoke/status/" + handle
	w.Header().Set("Location", link)
	w.Header().Set("Retry-After", s.retryAfter[min(n, len(s.retryAfter)-1)])
	writeJSONTest(w, http.StatusAccepted, map[string]any{
		"id": "req-" + handle, "status": "queued", "dryRun": false, "statusUrl": link,
		"results": []any{map[string]any{"upn": upn, "status": "queued"}},
	})
}

func writeJSONTest(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func revokedBody(upn string) map[string]any {
	return map[string]any{"id": "x", "status": "revoked", "dryRun": false,
		"results": []any{map[string]any{"upn": upn, "status": "revoked", "revokedAt": "2026-12-03T10:00:00Z"}}}
}

func failedBody(upn string) map[string]any {
	return map[string]any{"id": "x", "status": "failed", "dryRun": false,
		"results": []any{map[string]any{"upn": upn, "status": "failed",
			"error": map[string]any{"code": "serviceUnavailable", "message": "Graph kept failing"}}}}
}

// TestSentinelPlaybookFollowsStatusLink: a deferred revocation is followed to its final outcome
// through the status link, honouring Retry-After, and the comment gives that outcome.
func TestSentinelPlaybookFollowsStatusLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		server    asyncScript
		wantLine  string
		wantWaits []time.Duration
	}{
		{
			name:      "queued, then revoked",
			server:    asyncScript{retryAfter: []string{"3", "7"}, pollsBeforeFinal: 2, finalStatus: http.StatusOK, final: revokedBody},
			wantLine:  "bob@contoso.com: revoked",
			wantWaits: []time.Duration{3 * time.Second, 7 * time.Second, 7 * time.Second},
		},
		{
			name:      "queued, then failed for good",
			server:    asyncScript{retryAfter: []string{"5"}, pollsBeforeFinal: 1, finalStatus: http.StatusServiceUnavailable, final: failedBody},
			wantLine:  "bob@contoso.com: NOT revoked: failed: Graph kept failing",
			wantWaits: []time.Duration{5 * time.Second, 5 * time.Second},
		},
		{
			name:      "still queued when the playbook stops waiting",
			server:    asyncScript{retryAfter: []string{"900"}, pollsBeforeFinal: -1},
			wantLine:  "bob@contoso.com: NOT revoked yet: still queued when the playbook stopped waiting; entra-revoke request sentinel-5e8d7c6b-1a2b-4c3d-9e8f-0a1b2c3d4e5f-{run}-bob@contoso.com",
			wantWaits: []time.Duration{900 * time.Second, 900 * time.Second, 900 * time.Second, 900 * time.Second, 900 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAsyncServer(t, tt.server)
			issuer := mustHandler(t, []string{testSecret}, true) // only for its managed-identity tokens
			api := &sentinelAPI{}
			run := sentinelRunOf(t, definitionOf(t, sentinelPath), srv.URL+"/api/revoke", issuer.miToken, api,
				incidentWith(t, upnAccount("bob@contoso.com")))
			if st := run.run(); st != wfSucceeded {
				t.Fatalf("run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(run))
			}
			if len(srv.posts) != 1 {
				t.Errorf("%d POSTs; want 1 (polls are GETs on the link)", len(srv.posts))
			}
			if !slices.Equal(run.waits, tt.wantWaits) {
				t.Errorf("waits between polls = %v; want %v (the Retry-After of each 202)", run.waits, tt.wantWaits)
			}
			if len(api.comments) != 1 {
				t.Fatalf("%d incident comments; want 1", len(api.comments))
			}
			if want := strings.ReplaceAll(tt.wantLine, "{run}", run.runName); !strings.Contains(api.comments[0]["message"].(string), want) {
				t.Errorf("comment %q\ndoes not contain %q", api.comments[0]["message"], want)
			}
		})
	}
}

// TestLogicAppFollowsStatusLink: the Logic App returns the final outcome of a deferred
// revocation, asynchronously (its caller polls the Logic App in turn).
func TestLogicAppFollowsStatusLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		server     asyncScript
		wantStatus int
		wantBody   string // a fragment of the JSON body returned
	}{
		{"queued, then revoked", asyncScript{retryAfter: []string{"2"}, pollsBeforeFinal: 3, finalStatus: http.StatusOK, final: revokedBody},
			http.StatusOK, `"status":"revoked"`},
		{"queued, then failed", asyncScript{retryAfter: []string{"2"}, pollsBeforeFinal: 0, finalStatus: http.StatusServiceUnavailable, final: failedBody},
			http.StatusServiceUnavailable, `"status":"failed"`},
		{"no final answer within the hour", asyncScript{retryAfter: []string{"1800"}, pollsBeforeFinal: -1},
			http.StatusGatewayTimeout, `"code":"gateway_timeout"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAsyncServer(t, tt.server)
			issuer := mustHandler(t, []string{testSecret}, true)
			run := newWFRun(t, definitionOf(t, logicAppPath),
				map[string]any{"RevokeUrl": srv.URL + "/api/revoke", "FunctionKeysUrl": srv.URL + fakeKeysPath + "?api-version=2024-04-01", "ManagementAudience": "https://management.azure.com/", "ApiAudience": apiAudience},
				map[string]any{"headers": map[string]any{"Idempotency-Key": "CHG0099"}, "body": map[string]any{"upn": "dave@contoso.com"}})
			run.token = issuer.miToken
			if st := run.run(); st != wfSucceeded {
				t.Fatalf("run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(run))
			}
			if run.response == nil || !run.response.Async {
				t.Fatalf("response = %+v; want an asynchronous Response (its caller polls for the final answer)", run.response)
			}
			body, _ := json.Marshal(run.response.Body)
			if run.response.Status != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("response = %d %s; want %d with %s", run.response.Status, body, tt.wantStatus, tt.wantBody)
			}
			if tt.server.pollsBeforeFinal >= 0 {
				if n := len(run.polls); n != tt.server.pollsBeforeFinal+1 {
					t.Errorf("%d polls; want %d", n, tt.server.pollsBeforeFinal+1)
				}
			}
		})
	}
}

// TestPlaybooksFollowRealStatusLink: against the real handler (server.NewServer with its state
// store), a deferred user's 202 carries a status link; the playbook and the Logic App poll the
// handler's own status route until the queue's work is done (finishDeferred, after the first
// poll), and report the final outcome.
func TestPlaybooksFollowRealStatusLink(t *testing.T) {
	t.Parallel()
	t.Run("sentinel playbook", func(t *testing.T) {
		t.Parallel()
		h := mustHandler(t, []string{testSecret}, true)
		api := &sentinelAPI{}
		run := sentinelRunOf(t, definitionOf(t, sentinelPath), h.URL, h.miToken, api,
			incidentWith(t, upnAccount(deferredUser), upnAccount(protectedUser)))
		run.beforePoll = func(_ string, n int) {
			if n == 2 {
				h.finishDeferred(t)
			}
		}
		if st := run.run(); st != wfSucceeded {
			t.Fatalf("run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(run))
		}
		checkPolls(t, run, h, 2)
		if len(api.comments) != 1 {
			t.Fatalf("%d incident comments; want 1", len(api.comments))
		}
		msg := api.comments[0]["message"].(string)
		for _, want := range []string{deferredUser + ": revoked", protectedUser + ": NOT revoked: protected"} {
			if !strings.Contains(msg, want) {
				t.Errorf("comment %q\ndoes not contain %q", msg, want)
			}
		}
	})
	t.Run("logic app", func(t *testing.T) {
		t.Parallel()
		h := mustHandler(t, []string{testSecret}, true)
		run := newWFRun(t, definitionOf(t, logicAppPath),
			map[string]any{"RevokeUrl": h.URL, "FunctionKeysUrl": h.KeysURL + "?api-version=2024-04-01", "ManagementAudience": "https://management.azure.com/", "ApiAudience": apiAudience},
			map[string]any{"headers": map[string]any{"Idempotency-Key": "CHG0100"}, "body": map[string]any{"upn": deferredUser}})
		run.token = h.miToken
		run.beforePoll = func(_ string, n int) {
			if n == 3 {
				h.finishDeferred(t)
			}
		}
		if st := run.run(); st != wfSucceeded {
			t.Fatalf("run status = %s; want %s (actions: %s)", st, wfSucceeded, describeActions(run))
		}
		checkPolls(t, run, h, 3)
		body, _ := json.Marshal(run.response.Body)
		if run.response.Status != http.StatusOK || !run.response.Async || !strings.Contains(string(body), `"status":"revoked"`) {
			t.Errorf("response = %+v %s; want an asynchronous 200 with the user revoked", run.response, body)
		}
	})
}

// checkPolls: the run polled the handler's status route want times, waiting its Retry-After.
func checkPolls(t *testing.T, run *wfRun, h *handler, want int) {
	t.Helper()
	if len(run.polls) != want {
		t.Errorf("%d polls; want %d", len(run.polls), want)
	}
	base := strings.TrimSuffix(h.URL, "/api/revoke") + "/api/revoke/status/"
	for _, p := range run.polls {
		if !strings.HasPrefix(p.URL.String(), base) {
			t.Errorf("polled %s; want the handler's status route %s…", p.URL, base)
		}
	}
	for _, w := range run.waits {
		if w <= 0 {
			t.Errorf("waits = %v; want the handler's Retry-After before every poll", run.waits)
		}
	}
}

// TestSentinelPlaybookOneRequestPerIncident: an incident's accounts go to entra-revoke in one
// request (100 users at most per request, so 250 accounts make three), each request followed on
// its own; the one comment names every user's outcome, and a mixed answer is a successful run.
func TestSentinelPlaybookOneRequestPerIncident(t *testing.T) {
	t.Parallel()
	h := mustHandler(t, []string{testSecret}, true)
	api := &sentinelAPI{}
	accounts := []map[string]any{upnAccount(protectedUser)}
	var want []string
	for i := range 249 {
		u := fmt.Sprintf("user%03d@contoso.com", i)
		accounts = append(accounts, upnAccount(u))
		want = append(want, u)
	}
	accounts = append(accounts, upnAccount(strings.ToUpper(want[0]))) // the same user twice: sent once
	run := sentinelRunOf(t, definitionOf(t, sentinelPath), h.URL, h.miToken, api, incidentWith(t, accounts...))
	if st := run.run(); st != wfSucceeded {
		t.Fatalf("run status = %s; want %s: a mixed answer is not a failure (actions: %s)", st, wfSucceeded, describeActions(run))
	}
	jobs := h.Engine.Jobs()
	var sizes []int
	var sent []string
	for _, j := range jobs {
		sizes = append(sizes, len(j.Users))
		sent = append(sent, j.Users...)
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("requests carried %v users; want [100 100 50]: one request per 100 accounts", sizes)
	}
	if wantSent := append([]string{protectedUser}, want...); !slices.Equal(sent, wantSent) {
		t.Errorf("users sent = %d %q…; want each account once, in entity order", len(sent), sent[:min(3, len(sent))])
	}
	if len(api.comments) != 1 {
		t.Fatalf("%d incident comments; want 1", len(api.comments))
	}
	msg := api.comments[0]["message"].(string)
	for _, line := range []string{protectedUser + ": NOT revoked: protected", want[0] + ": revoked", want[248] + ": revoked"} {
		if !strings.Contains(msg, line) {
			t.Errorf("comment does not contain %q", line)
		}
	}
	if n := strings.Count(msg, ": revoked"); n != 249 {
		t.Errorf("comment has %d revoked lines; want 249", n)
	}
}
