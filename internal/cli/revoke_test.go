package cli_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

const (
	aliceID = "3f1c2a4e-8b7d-4c1e-9f0a-1b2c3d4e5f60"
	bobID   = "7a8b9c0d-1e2f-4a5b-8c7d-9e0f1a2b3c4d"
)

func addUsers(f *fakes) {
	f.graph.AddUser(
		graphtest.User{ID: aliceID, UPN: "alice@contoso.com"},
		graphtest.User{ID: bobID, UPN: "bob@contoso.com"},
	)
}

// mustResult decodes --json output strictly as the webhook's response body.
func mustResult(t *testing.T, r result) revoke.Result {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var res revoke.Result
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not a revoke.Result: %v\n%s", err, r)
	}
	return res
}

func statuses(res revoke.Result) []revoke.Status {
	var s []revoke.Status
	for _, u := range res.Results {
		s = append(s, u.Status)
	}
	return s
}

func TestRevokeJSON(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)

	r := mustRun(t, f.env, "", "revoke", "--json", "--ticket", "INC0012345", "--reason", "Lost phone", "alice@contoso.com", bobID)
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	res := mustResult(t, r)
	if got, want := statuses(res), []revoke.Status{revoke.StatusRevoked, revoke.StatusRevoked}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v; want %v\n%s", got, want, r)
	}
	if res.Status != revoke.StatusRevoked || res.DryRun || res.ID == "" {
		t.Errorf("result = {id %q, status %q, dryRun %v}; want a request id, revoked, false", res.ID, res.Status, res.DryRun)
	}
	if len(res.Results) == 2 && (res.Results[0].UPN != "alice@contoso.com" || res.Results[1].UPN != bobID) {
		t.Errorf("results out of input order: %+v", res.Results)
	}
	for _, u := range res.Results {
		if u.GraphRequestID == "" || u.RevokedAt.IsZero() {
			t.Errorf("result %+v lacks graphRequestId or revokedAt", u)
		}
	}
	for _, ref := range []string{"alice@contoso.com", "bob@contoso.com"} {
		if n := f.graph.Revocations(ref); n != 1 {
			t.Errorf("Graph revocations of %s = %d; want 1", ref, n)
		}
	}

	// DefaultAzureCredential reached the managed identity endpoint and asked for Graph's scope.
	reqs := f.identity.Requests()
	if len(reqs) == 0 {
		t.Fatalf("the identity endpoint got no request; DefaultAzureCredential did not reach managed identity\n%s", r)
	}
	wantResource := "http://" + f.graph.Host()
	for _, q := range reqs {
		if q.Resource != wantResource || !q.HeaderOK {
			t.Errorf("identity request resource %q, header ok %v; want %q, true", q.Resource, q.HeaderOK, wantResource)
		}
	}
	for _, g := range f.graph.Requests() {
		if g.Authorization != "Bearer "+f.identity.Token() {
			t.Errorf("Graph %s %s was not sent the identity's token", g.Method, g.RawPath)
		}
	}
	if strings.Contains(r.stdout+r.stderr, f.identity.Token()) || strings.Contains(r.stdout+r.stderr, f.identity.Secret()) {
		t.Errorf("output contains the token or the identity header secret\n%s", r)
	}
	// Outcome lines belong on stdout only for the server; here stdout is the JSON alone.
	if r.stderr != "" {
		t.Errorf("stderr = %q; want nothing without --verbose", r.stderr)
	}
}

func TestRevokeTable(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	f.graph.Script("bob@contoso.com", graphtest.Forbidden())

	r := mustRun(t, f.env, "", "revoke", "alice@contoso.com", "bob@contoso.com", "nobody@contoso.com")
	if r.code != 1 {
		t.Fatalf("exit %d; want 1 (not every user was revoked)\n%s", r.code, r)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 4 {
		t.Fatalf("stdout has %d lines; want a header and 3 rows\n%s", len(lines), r)
	}
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"USER", "STATUS", "DETAIL"}) {
		t.Errorf("header = %q; want USER STATUS DETAIL", lines[0])
	}
	tests := []struct {
		user, status, detail string
	}{
		{"alice@contoso.com", "revoked", "-"},
		{"bob@contoso.com", "denied", "Authorization_RequestDenied"},
		{"nobody@contoso.com", "not_found", "Request_ResourceNotFound"},
	}
	for i, tt := range tests {
		row := strings.Fields(lines[i+1])
		if len(row) < 3 || row[0] != tt.user || row[1] != tt.status || !strings.HasPrefix(row[2], tt.detail) {
			t.Errorf("row %d = %q; want %s %s %s…", i+1, lines[i+1], tt.user, tt.status, tt.detail)
		}
	}
	if !strings.Contains(r.stdout, "3 user(s): 1 revoked, 1 denied, 1 not_found") {
		t.Errorf("stdout lacks the summary line\n%s", r)
	}
}

func TestRevokeDryRunCallsNoGraph(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{name: "--dry-run", args: []string{"revoke", "--json", "--dry-run", "alice@contoso.com", bobID}},
		{name: "DRY_RUN=true", env: []string{"DRY_RUN", "true"}, args: []string{"revoke", "--json", "alice@contoso.com", bobID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFakes(t)
			addUsers(f)
			r := mustRun(t, f.with(tt.env...), "", tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d; want 0\n%s", r.code, r)
			}
			res := mustResult(t, r)
			if got, want := statuses(res), []revoke.Status{revoke.StatusDryRun, revoke.StatusDryRun}; !slices.Equal(got, want) || !res.DryRun {
				t.Errorf("statuses = %v, dryRun %v; want %v, true", got, res.DryRun, want)
			}
			if calls := f.graphCalls(); len(calls) != 0 {
				t.Errorf("a dry run called Graph: %v", calls)
			}
		})
	}
}

func TestRevokeGuardRails(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	env := f.with("PROTECTED_USERS", "alice@contoso.com", "ALLOWED_DOMAINS", "contoso.com")

	r := mustRun(t, env, "", "revoke", "--json", "alice@contoso.com", "eve@fabrikam.com", "bob@contoso.com")
	if r.code != 1 {
		t.Fatalf("exit %d; want 1\n%s", r.code, r)
	}
	res := mustResult(t, r)
	want := []revoke.Status{revoke.StatusProtected, revoke.StatusOutOfScope, revoke.StatusRevoked}
	if got := statuses(res); !slices.Equal(got, want) || res.Status != revoke.StatusPartial {
		t.Errorf("statuses = %v (overall %s); want %v (partial)", got, res.Status, want)
	}
	if n := f.graph.Revocations("alice@contoso.com"); n != 0 {
		t.Errorf("the protected user was revoked %d times", n)
	}
}

func TestRevokeUsageErrors(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	tests := []struct {
		name    string
		env     []string
		args    []string
		wantErr string
	}{
		{name: "no users", args: []string{"revoke"}, wantErr: "at least one user"},
		{name: "space in UPN", args: []string{"revoke", "alice smith@contoso.com"}, wantErr: "not a user principal name"},
		{name: "path in UPN", args: []string{"revoke", "alice@contoso.com/../../me"}, wantErr: "not a user principal name"},
		{name: "query in UPN", args: []string{"revoke", "alice@contoso.com?$select=id"}, wantErr: "not a user principal name"},
		{name: "JSON array", args: []string{"revoke", `["alice@contoso.com"]`}, wantErr: "not a user principal name"},
		{name: "one bad among good", args: []string{"revoke", "alice@contoso.com", "bob@", "bob@contoso.com"}, wantErr: `"bob@"`},
		{name: "duplicate", args: []string{"revoke", "alice@contoso.com", "ALICE@contoso.com"}, wantErr: "named twice"},
		{name: "ticket with control character", args: []string{"revoke", "--ticket", "INC\x1b[31m", "alice@contoso.com"}, wantErr: "--ticket"},
		{name: "reason too long", args: []string{"revoke", "--reason", strings.Repeat("x", 1025), "alice@contoso.com"}, wantErr: "--reason"},
		{name: "unknown flag", args: []string{"revoke", "--force", "alice@contoso.com"}, wantErr: "flag provided but not defined"},
		{name: "bad setting", env: []string{"GRAPH_CONCURRENCY", "many"}, args: []string{"revoke", "alice@contoso.com"}, wantErr: "GRAPH_CONCURRENCY"},
		{name: "plain http Graph", env: []string{"GRAPH_BASE_URL", "http://graph.example.com/v1.0"}, args: []string{"revoke", "alice@contoso.com"}, wantErr: "GRAPH_BASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustRun(t, f.with(tt.env...), "", tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d; want 2\n%s", r.code, r)
			}
			if !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q\n%s", tt.wantErr, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q; want nothing on a usage error", r.stdout)
			}
		})
	}
	// Checked once all subtests are done: a usage error stops before any sign-in or Graph call.
	t.Cleanup(func() {
		if calls := f.graphCalls(); len(calls) != 0 {
			t.Errorf("usage errors called Graph: %v", calls)
		}
		if n := len(f.identity.Requests()); n != 0 {
			t.Errorf("usage errors asked the identity endpoint for %d tokens", n)
		}
	})
}

func TestRevokeFlagsAfterUsers(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	r := mustRun(t, f.env, "", "revoke", "alice@contoso.com", "--dry-run", bobID, "--json")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	res := mustResult(t, r)
	if got, want := statuses(res), []revoke.Status{revoke.StatusDryRun, revoke.StatusDryRun}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v; want %v", got, want)
	}
}

func TestRevokeBrokenIdentity(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	f.identity.Fail(400, `{"statusCode":400,"message":"Unable to load the proper Managed Identity."}`)
	r := mustRun(t, f.env, "", "revoke", "alice@contoso.com")
	if r.code != 1 {
		t.Fatalf("exit %d; want 1\n%s", r.code, r)
	}
	if !strings.Contains(r.stderr, "sign-in failed") || !strings.Contains(r.stderr, "Unable to load the proper Managed Identity") {
		t.Errorf("stderr does not explain the sign-in failure\n%s", r)
	}
	if strings.Contains(r.stderr, f.identity.Secret()) {
		t.Errorf("stderr contains the identity header secret\n%s", r)
	}
	if calls := f.graphCalls(); len(calls) != 0 {
		t.Errorf("Graph was called without a token: %v", calls)
	}
}

func TestRevokeVerboseOutcomeLines(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	r := mustRun(t, f.env, "", "revoke", "--json", "--verbose", "--ticket", "INC1", "alice@contoso.com")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	mustResult(t, r) // stdout is still the JSON alone
	var found bool
	for _, line := range strings.Split(r.stderr, "\n") {
		var o map[string]any
		if json.Unmarshal([]byte(line), &o) != nil {
			continue
		}
		if o["trigger"] == "cli" && o["status"] == "revoked" && o["ticket"] == "INC1" {
			found = true
			if c, _ := o["caller"].(string); !strings.HasPrefix(c, "cli:") {
				t.Errorf("outcome caller = %q; want cli:<user>", c)
			}
		}
	}
	if !found {
		t.Errorf("stderr has no outcome line with trigger cli, status revoked, ticket INC1\n%s", r)
	}
}

func TestRevokeHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"revoke", "sign", "check", "version", "serve"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			r := mustRun(t, map[string]string{}, "", cmd, "--help")
			if r.code != 0 || !strings.Contains(r.stdout, "usage: handler "+cmd) {
				t.Errorf("want exit 0 and usage on stdout\n%s", r)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := mustRun(t, map[string]string{}, "", "version")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	// go build without -ldflags: no version or commit stamped, the Go version from build info.
	if !strings.HasPrefix(r.stdout, "handler dev (commit ") || !strings.Contains(r.stdout, ", go1.") {
		t.Errorf("stdout = %q; want handler dev (commit …, go1.…)", r.stdout)
	}
}

// progressSink is not a terminal, so no progress may appear in a piped run.
func TestRevokeNoProgressWhenPiped(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	r := mustRun(t, f.with("GRAPH_CONCURRENCY", "1"), "", "revoke", "--dry-run", "alice@contoso.com", "bob@contoso.com")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	if bytes.Contains([]byte(r.stderr), []byte("done")) {
		t.Errorf("progress written to a pipe\n%s", r)
	}
}
