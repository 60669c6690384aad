package infra_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// deploy.sh runs against a recording fake of az and curl (testdata/fakeaz, built here) that keeps
// a fake subscription and tenant in a JSON file, as Azure would between two Cloud Shell sessions.

// fakeState is the part of the fake's state the tests read.
type fakeState struct {
	Groups      map[string]string          `json:"groups"`
	Apps        []json.RawMessage          `json:"apps"`
	SPs         []json.RawMessage          `json:"sps"`
	Deployments map[string]json.RawMessage `json:"deployments"`
	Deploys     int                        `json:"deploys"`
	Secrets     map[string]string          `json:"secrets"`
	SecretWrite int                        `json:"secretWrites"`
	Deleted     [][2]string                `json:"deleted"`
	Assignments []struct {
		ID, PrincipalID, ResourceID, AppRoleID string
	} `json:"assignments"`
	Version     string      `json:"version"`
	ZipVersion  string      `json:"zipVersion"`
	ZipDeploys  int         `json:"zipDeploys"`
	Restarts    int         `json:"restarts"`
	Requests    []string    `json:"requests"`
	RoleAssigns [][3]string `json:"roleAssigns"`
}

// deployRig is one fake subscription: the fake tools, their state and a release to deploy.
type deployRig struct {
	bin, state, release string
}

func newDeployRig(t *testing.T, initial string) *deployRig {
	t.Helper()
	dir := t.TempDir()
	r := &deployRig{bin: filepath.Join(dir, "bin"), state: filepath.Join(dir, "state.json"), release: filepath.Join(dir, "release")}
	for _, d := range []string{r.bin, r.release} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(r.bin, "az"), "./testdata/fakeaz")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the fake az: %v\n%s", err, out)
	}
	if err := os.Link(filepath.Join(r.bin, "az"), filepath.Join(r.bin, "curl")); err != nil {
		t.Fatal(err)
	}
	zip := []byte("PK\x05\x06 a release zip for the tests")
	sum := sha256.Sum256(zip)
	files := map[string][]byte{
		filepath.Join(r.release, "entra-revoke.zip"): zip,
		filepath.Join(r.release, "SHA256SUMS"):       []byte(hex.EncodeToString(sum[:]) + "  entra-revoke.zip\n0000  handler-linux-amd64\n"),
		r.state:                                      []byte(initial),
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// deployedParam is a parameter's value in the fake's record of the deployment of rg-test.
func deployedParam(t *testing.T, s fakeState, name string) any {
	t.Helper()
	var props struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(s.Deployments["rg-test"], &props); err != nil {
		t.Fatal(err)
	}
	return props.Parameters[name].Value
}

// deployRun is one run of deploy.sh: its output and the calls it made, in order.
type deployRun struct {
	stdout, stderr string
	code           int
	calls          []azCall // each prefixed by the tool: "az" or "curl"
}

func (r *deployRig) run(t *testing.T, args ...string) deployRun {
	t.Helper()
	log := filepath.Join(t.TempDir(), "calls.log")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./deploy.sh", args...)
	cmd.Env = []string{"PATH=" + r.bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"FAKE_STATE=" + r.state, "FAKE_LOG=" + log, "DEPLOY_POLL_SECONDS=0", "LC_ALL=C"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	run := deployRun{}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("deploy.sh: %v", err)
		}
		run.code = exit.ExitCode()
	}
	run.stdout, run.stderr = out.String(), errb.String()
	raw, _ := os.ReadFile(log)
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if line != "" {
			run.calls = append(run.calls, azCall(strings.Split(line, "\x1f")))
		}
	}
	if strings.Contains(run.stderr, "unexpected call") {
		t.Fatalf("deploy.sh %q made a call the fake does not know:\n%s", args, run.stderr)
	}
	return run
}

func (r *deployRig) load(t *testing.T) fakeState {
	t.Helper()
	var s fakeState
	b, err := os.ReadFile(r.state)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// index returns the position of the first call that starts with prefix, or -1.
func (d deployRun) index(prefix ...string) int {
	return slices.IndexFunc(d.calls, func(c azCall) bool { return len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) })
}

func (d deployRun) count(prefix ...string) int {
	n := 0
	for _, c := range d.calls {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			n++
		}
	}
	return n
}

// mutations are the calls that change something in Azure or Entra ID.
func (d deployRun) mutations() []string {
	var out []string
	for _, c := range d.calls {
		s := c.String()
		for _, m := range []string{"az group create", "az ad app create", "az ad app update", "az ad sp create", "az ad sp update",
			"az rest --method POST", "az keyvault recover", "az functionapp deployment", "az functionapp restart"} {
			if strings.HasPrefix(s, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

func TestDeployScript(t *testing.T) {
	t.Parallel()
	rig := newDeployRig(t, `{"zipVersion":"v9.9.9"}`)
	release := "file://" + rig.release

	// The first run: from an empty subscription to a dry run.
	first := rig.run(t, "deploy", "-g", "rg-test", "-l", "westeurope", "--callers", "webhook+entra",
		"--protected-users", "breakglass@contoso.com", "--tag", "v9.9.9", "--release-url", release)
	if first.code != 0 {
		t.Fatalf("first run exit %d\nstderr:\n%s", first.code, first.stderr)
	}
	s1 := rig.load(t)
	if s1.Groups["rg-test"] != "westeurope" || len(s1.Apps) != 1 || len(s1.SPs) != 1 || s1.Deploys != 1 {
		t.Errorf("after the first run: groups %v, %d apps, %d service principals, %d deployments; want the group, one API registration, its service principal, one deployment",
			s1.Groups, len(s1.Apps), len(s1.SPs), s1.Deploys)
	}
	for _, name := range []string{"kv-fake/webhook-secrets", "kv-fake/queue-secrets"} {
		if !strings.HasPrefix(s1.Secrets[name], "whsec_") || len(s1.Secrets[name]) < len("whsec_")+32 {
			t.Errorf("secret %s = %q; want a new whsec_ secret", name, s1.Secrets[name])
		}
	}
	if len(s1.Assignments) != 2 {
		t.Errorf("Graph app role assignments = %+v; want User.RevokeSessions.All and User.Read.All (protected users need lookups)", s1.Assignments)
	}
	if s1.Version != "v9.9.9" || s1.ZipDeploys != 1 {
		t.Errorf("version %q after %d zip deployments; want v9.9.9 after one", s1.Version, s1.ZipDeploys)
	}
	if len(s1.Requests) != 1 || !strings.Contains(s1.Requests[0], `"dryRun":true`) {
		t.Errorf("requests sent = %q; want one signed dry run", s1.Requests)
	}
	grant, zip := first.index("az", "rest", "--method", "POST"), first.index("az", "functionapp", "deployment")
	if grant < 0 || zip < 0 || grant > zip {
		t.Errorf("the Graph grant is call %d, the zip deployment call %d; want the grant first, before the code runs", grant, zip)
	}
	if deploy := first.index("az", "deployment", "group", "create"); deploy < 0 || deploy > grant {
		t.Errorf("the template deployment is call %d; want it before the grant (which needs the identity)", deploy)
	}
	if !strings.Contains(first.stderr, "test request for admin@contoso.com: dry_run") {
		t.Errorf("first run did not report the dry run:\n%s", first.stderr)
	}
	for _, secret := range []string{s1.Secrets["kv-fake/webhook-secrets"], s1.Secrets["kv-fake/queue-secrets"]} {
		if strings.Contains(first.stdout+first.stderr, strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("the output shows a secret")
		}
	}

	// The second run, by someone else tomorrow: only the resource group. Nothing changes.
	second := rig.run(t, "deploy", "-g", "rg-test")
	if second.code != 0 {
		t.Fatalf("second run exit %d\nstderr:\n%s", second.code, second.stderr)
	}
	s2 := rig.load(t)
	if m := second.mutations(); len(m) != 0 {
		t.Errorf("the second run changed %q; want no change", m)
	}
	if s2.SecretWrite != s1.SecretWrite || s2.Secrets["kv-fake/webhook-secrets"] != s1.Secrets["kv-fake/webhook-secrets"] || s2.Secrets["kv-fake/queue-secrets"] != s1.Secrets["kv-fake/queue-secrets"] {
		t.Errorf("the second run wrote a secret (%d writes, then %d): callers would be locked out", s1.SecretWrite, s2.SecretWrite)
	}
	if len(s2.Apps) != 1 || len(s2.SPs) != 1 || len(s2.Assignments) != 2 || s2.ZipDeploys != 1 || s2.Restarts != 0 {
		t.Errorf("after the second run: %d apps, %d service principals, %d assignments, %d zip deployments, %d restarts; want 1, 1, 2, 1, 0",
			len(s2.Apps), len(s2.SPs), len(s2.Assignments), s2.ZipDeploys, s2.Restarts)
	}
	if string(s2.Deployments["rg-test"]) != string(s1.Deployments["rg-test"]) {
		t.Errorf("the second deployment's parameters differ from the first:\n%s\n%s", s1.Deployments["rg-test"], s2.Deployments["rg-test"])
	}

	// A token caller (a Sentinel playbook's identity) gets the app role once, however often asked.
	const playbook = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
	for i := range 2 {
		if r := rig.run(t, "allow-caller", "-g", "rg-test", "--principal-id", playbook); r.code != 0 {
			t.Fatalf("allow-caller #%d exit %d\n%s", i+1, r.code, r.stderr)
		}
	}
	if n := len(rig.load(t).Assignments); n != 3 {
		t.Errorf("app role assignments after allow-caller twice = %d; want 3 (the caller's once)", n)
	}
	if ra := rig.load(t).RoleAssigns; len(ra) != 1 || ra[0][0] != playbook || !strings.HasSuffix(ra[0][2], "/providers/Microsoft.Web/sites/entra-revoke-fake") {
		t.Errorf("Azure role assignments after allow-caller twice = %q; want the function key reader for the caller on the app, once", ra)
	}

	// Going live revokes the test user; a later plain run stays live.
	live := rig.run(t, "deploy", "-g", "rg-test", "--go-live", "--test-user", "test.user@contoso.com")
	if live.code != 0 {
		t.Fatalf("go-live exit %d\n%s", live.code, live.stderr)
	}
	s3 := rig.load(t)
	if got := s3.Requests[len(s3.Requests)-1]; strings.Contains(got, "dryRun") || !strings.Contains(got, "test.user@contoso.com") {
		t.Errorf("go-live request = %s; want a live revocation of the test user", got)
	}
	if !strings.Contains(live.stderr, "test request for test.user@contoso.com: revoked") || s3.SecretWrite != s1.SecretWrite {
		t.Errorf("go-live: secret writes %d (want %d); stderr:\n%s", s3.SecretWrite, s1.SecretWrite, live.stderr)
	}
	if deployedParam(t, s3, "dryRun") != false {
		t.Errorf("after go-live the deployment says %s; want dryRun false", s3.Deployments["rg-test"])
	}
	again := rig.run(t, "deploy", "-g", "rg-test")
	if again.code != 0 || deployedParam(t, rig.load(t), "dryRun") != false {
		t.Errorf("a plain run after going live: exit %d, deployment %s; want it to stay live", again.code, rig.load(t).Deployments["rg-test"])
	}

	// An upgrade deploys the new release and keeps every secret.
	if err := os.WriteFile(rig.state, bytes.Replace(mustRead(t, rig.state), []byte(`"zipVersion": "v9.9.9"`), []byte(`"zipVersion": "v9.10.0"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	up := rig.run(t, "upgrade", "-g", "rg-test", "--tag", "v9.10.0", "--release-url", release)
	s4 := rig.load(t)
	if up.code != 0 || s4.Version != "v9.10.0" || s4.SecretWrite != s1.SecretWrite || len(s4.Apps) != 1 {
		t.Errorf("upgrade: exit %d, version %q, secret writes %d (want %d), apps %d\n%s", up.code, s4.Version, s4.SecretWrite, s1.SecretWrite, len(s4.Apps), up.stderr)
	}
}

// TestDeployScriptRecoversSoftDeletedVault: a resource group deleted and created again finds its
// vault soft-deleted (purge protection keeps it 90 days under the same name). The script recovers
// it, and with it the secrets callers hold, instead of generating new ones.
func TestDeployScriptRecoversSoftDeletedVault(t *testing.T) {
	t.Parallel()
	rig := newDeployRig(t, `{"zipVersion":"v9.9.9","deleted":[["kv-fake","/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/RG-Test/providers/Microsoft.KeyVault/vaults/kv-fake"]],
		"secrets":{"kv-fake/webhook-secrets":"whsec_b2xkLXNlY3JldC1vZi10aGUtZGVsZXRlZC12YXVsdA==","kv-fake/queue-secrets":"whsec_b2xkLXF1ZXVlLXNlY3JldC1vZi10aGUtdmF1bHQ="}}`)
	r := rig.run(t, "deploy", "-g", "rg-test", "-l", "westeurope", "--tag", "v9.9.9", "--release-url", "file://"+rig.release)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	s := rig.load(t)
	if r.count("az", "keyvault", "recover") != 1 || len(s.Deleted) != 0 {
		t.Errorf("recover calls %d, still deleted %v; want the vault recovered once", r.count("az", "keyvault", "recover"), s.Deleted)
	}
	if s.SecretWrite != 0 || s.Secrets["kv-fake/webhook-secrets"] != "whsec_b2xkLXNlY3JldC1vZi10aGUtZGVsZXRlZC12YXVsdA==" {
		t.Errorf("secret writes %d, webhook secret %q; want the recovered secret kept", s.SecretWrite, s.Secrets["kv-fake/webhook-secrets"])
	}
	if recover, deploy := r.index("az", "keyvault", "recover"), r.index("az", "deployment", "group", "create"); recover > deploy {
		t.Errorf("recover is call %d, the deployment %d; want the vault back first", recover, deploy)
	}
}

// TestDeployScriptUpgradeNeedsADeployment: upgrade never creates anything from nothing.
func TestDeployScriptUpgradeNeedsADeployment(t *testing.T) {
	t.Parallel()
	rig := newDeployRig(t, `{"groups":{"rg-test":"westeurope"}}`)
	r := rig.run(t, "upgrade", "-g", "rg-test", "--tag", "v9.9.9")
	if r.code == 0 || len(r.mutations()) != 0 || !strings.Contains(r.stderr, "use deploy") {
		t.Errorf("upgrade of an empty group: exit %d, changes %q, stderr %s; want a refusal that changes nothing", r.code, r.mutations(), r.stderr)
	}
}

// TestDeployScriptSentinel: one command deploys the playbook's template into the workspace's
// group with the values of the entra-revoke deployment, the test user for its disabled test rules,
// and Sentinel's identity for the playbook permissions; then gives the playbook's identity its app
// role and key reader role. The rules themselves come from the template (no REST calls), and a
// second run changes nothing.
func TestDeployScriptSentinel(t *testing.T) {
	t.Parallel()
	rig := newDeployRig(t, `{"zipVersion":"v9.9.9"}`)
	if r := rig.run(t, "deploy", "-g", "rg-test", "-l", "westeurope", "--callers", "webhook+entra", "--tag", "v9.9.9", "--release-url", "file://"+rig.release); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	if r := rig.run(t, "deploy", "-g", "rg-test"); !strings.Contains(r.stderr, "deploy.sh sentinel -g rg-test --workspace") {
		t.Errorf("deploy with token callers does not name the sentinel command:\n%s", r.stderr)
	}
	before := rig.load(t)
	args := []string{"sentinel", "-g", "rg-test", "--workspace", "ws-soc", "--sentinel-group", "rg-sentinel", "--test-user", "test.user@contoso.com"}
	first := rig.run(t, args...)
	if first.code != 0 {
		t.Fatalf("exit %d\n%s", first.code, first.stderr)
	}
	s := rig.load(t)
	raw, ok := s.Deployments["rg-sentinel/entra-revoke-playbook"]
	if !ok {
		t.Fatalf("deployments = %v; want entra-revoke-playbook in rg-sentinel", slices.Collect(mapKeys(s.Deployments)))
	}
	var props struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(raw, &props); err != nil {
		t.Fatal(err)
	}
	var apiApp struct{ AppID string }
	if err := json.Unmarshal(s.Apps[0], &apiApp); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"PlaybookName": "entra-revoke-incident", "FunctionAppName": "entra-revoke-fake", "FunctionAppResourceGroup": "rg-test",
		"ApiAudience": "api://" + apiApp.AppID, "WorkspaceName": "ws-soc", "SentinelAutomationPrincipalId": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
		"TestUserUpn": "test.user@contoso.com"}
	for name, v := range want {
		if got := props.Parameters[name].Value; got != v {
			t.Errorf("playbook deployment parameter %s = %v; want %v", name, got, v)
		}
	}
	const playbook = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b" // the fake's playbook identity
	if n := len(s.Assignments) - len(before.Assignments); n != 1 || s.Assignments[len(s.Assignments)-1].PrincipalID != playbook {
		t.Errorf("new app role assignments: %d, last %+v; want the playbook's Sessions.Revoke", n, s.Assignments[len(s.Assignments)-1])
	}
	if ra := s.RoleAssigns; len(ra) != 1 || ra[0][0] != playbook || !strings.HasSuffix(ra[0][2], "/providers/Microsoft.Web/sites/entra-revoke-fake") {
		t.Errorf("Azure role assignments = %q; want the function key reader for the playbook on the app", ra)
	}
	if n := first.count("az", "rest", "--method", "PUT"); n != 0 || first.index("az", "rest", "--method", "POST") < first.index("az", "deployment", "group", "create") {
		t.Errorf("%d REST PUTs, the app role after the deployment: want the rules from the template and the role for its identity", n)
	}
	if !strings.Contains(first.stderr, "disabled") || !strings.Contains(first.stderr, "test.user@contoso.com") {
		t.Errorf("the output does not say the test rules are disabled:\n%s", first.stderr)
	}

	second := rig.run(t, args...)
	s2 := rig.load(t)
	if second.code != 0 || len(second.mutations()) != 0 || len(s2.Assignments) != len(s.Assignments) || len(s2.RoleAssigns) != 1 ||
		string(s2.Deployments["rg-sentinel/entra-revoke-playbook"]) != string(raw) {
		t.Errorf("second run: exit %d, changes %q, %d app role and %d Azure role assignments, deployment %s; want no change\n%s",
			second.code, second.mutations(), len(s2.Assignments), len(s2.RoleAssigns), s2.Deployments["rg-sentinel/entra-revoke-playbook"], second.stderr)
	}

	// Without a test user the deployment leaves the rules' parameter at its default (no rules),
	// so rules someone enabled are left as they are.
	plain := rig.run(t, "sentinel", "-g", "rg-test", "--workspace", "ws-soc", "--sentinel-group", "rg-sentinel")
	if err := json.Unmarshal(rig.load(t).Deployments["rg-sentinel/entra-revoke-playbook"], &props); err != nil {
		t.Fatal(err)
	}
	if plain.code != 0 || props.Parameters["TestUserUpn"].Value != "" {
		t.Errorf("without --test-user: exit %d, TestUserUpn %v; want the default (no rules)\n%s", plain.code, props.Parameters["TestUserUpn"].Value, plain.stderr)
	}
}

// TestDeployScriptSentinelNeedsTokenCallers: a deployment for webhook callers alone has no API for
// the playbook to call; the command says so and changes nothing.
func TestDeployScriptSentinelNeedsTokenCallers(t *testing.T) {
	t.Parallel()
	rig := newDeployRig(t, `{"zipVersion":"v9.9.9"}`)
	if r := rig.run(t, "deploy", "-g", "rg-test", "-l", "westeurope", "--tag", "v9.9.9", "--release-url", "file://"+rig.release); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	r := rig.run(t, "sentinel", "-g", "rg-test", "--workspace", "ws-soc")
	if r.code == 0 || r.count("az", "deployment", "group", "create") != 0 || !strings.Contains(r.stderr, "--callers webhook+entra") {
		t.Errorf("sentinel without token callers: exit %d, %d deployments; want a refusal naming --callers\n%s", r.code, r.count("az", "deployment", "group", "create"), r.stderr)
	}
}

// TestDeployScriptAfterAFailedFirstDeployment: a first deployment that failed after the vault and
// its secrets were made left no outputs; the next run finds the vault in the group and keeps the
// secrets instead of generating new ones.
func TestDeployScriptAfterAFailedFirstDeployment(t *testing.T) {
	t.Parallel()
	rig := newDeployRig(t, `{"zipVersion":"v9.9.9","groups":{"rg-test":"westeurope"},
		"secrets":{"kv-fake/webhook-secrets":"whsec_ZmlsZWQtYnktYS1mYWlsZWQtZmlyc3QtcnVuLTAxMjM=","kv-fake/queue-secrets":"whsec_cXVldWUtZmlsZWQtYnktYS1mYWlsZWQtZmlyc3QtcnVu"}}`)
	r := rig.run(t, "deploy", "-g", "rg-test", "--tag", "v9.9.9", "--release-url", "file://"+rig.release)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if s := rig.load(t); s.SecretWrite != 0 || s.Secrets["kv-fake/webhook-secrets"] != "whsec_ZmlsZWQtYnktYS1mYWlsZWQtZmlyc3QtcnVuLTAxMjM=" {
		t.Errorf("secret writes %d, webhook secret %q; want the existing secrets kept", s.SecretWrite, s.Secrets["kv-fake/webhook-secrets"])
	}
}
