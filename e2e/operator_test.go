package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// What the handler tells an operator about its own deployment before it goes live: health's
// "graph" (the Graph permission its managed identity's token carries) and "queue" (whether
// deferral really works), `handler check` listing the roles held, and settings that are
// recognisably wrong (an unresolved Key Vault reference, a misspelt name).

const (
	roleRevoke = "User.RevokeSessions.All"
	roleRead   = "User.Read.All"
)

// operatorHealth is the part of GET /api/health these tests read.
type operatorHealth struct {
	Status string `json:"status"`
	Graph  string `json:"graph"`
	Queue  *bool  `json:"queue"`
}

// mustHealth reads GET /api/health; it must answer 200 at once, whatever the identity is doing.
func mustHealth(t *testing.T, p *proc) (operatorHealth, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(p.URL + "/api/health")
	if err != nil {
		t.Fatalf("GET /api/health: %v", err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/health = %d %s (%v); want 200 JSON", resp.StatusCode, raw, err)
	}
	var h operatorHealth
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("health %s: %v", raw, err)
	}
	return h, string(raw)
}

// healthGraphSettled waits until health's "graph" is no longer "unknown" (the background read
// finished) or the wait ends, and returns the last health read.
func healthGraphSettled(t *testing.T, p *proc, within time.Duration) (operatorHealth, string) {
	t.Helper()
	var h operatorHealth
	var raw string
	testenv.Eventually(within, func() bool {
		h, raw = mustHealth(t, p)
		return h.Graph != "unknown"
	})
	return h, raw
}

// Health's "graph" is the verdict on the roles of the token the identity issues: the revoke
// permission alone suffices without lookups; guard rails by UPN need User.Read.All as well.
// Health never lists permissions.
func TestOperatorHealthGraph(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		roles []string
		extra map[string]string
		want  string
	}{
		{"revoke permission", []string{roleRevoke}, nil, "ok"},
		{"granted nothing", nil, nil, "missing_permission"},
		{"another permission only", []string{roleRead}, nil, "missing_permission"},
		{"guard rails by UPN without User.Read.All", []string{roleRevoke}, map[string]string{"PROTECTED_USERS": breakGlassUPN}, "missing_permission"},
		{"guard rails by UPN with User.Read.All", []string{roleRevoke, roleRead}, map[string]string{"PROTECTED_USERS": breakGlassUPN}, "ok"},
		{"verification without User.Read.All", []string{roleRevoke}, map[string]string{"VERIFY_REVOCATION": "true"}, "missing_permission"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, g := tenant(t)
			id.SetRoles(tt.roles)
			env := handlerEnv(t, id, g)
			for k, v := range tt.extra {
				env[k] = v
			}
			p := startHandler(t, env)
			h, raw := healthGraphSettled(t, p, 20*time.Second)
			if h.Graph != tt.want || h.Status != "ok" {
				t.Errorf("roles %v, settings %v: health = %s; want graph %q, status ok", tt.roles, tt.extra, raw, tt.want)
			}
			for _, leak := range []string{"User.", "RevokeSessions", breakGlassUPN, strings.TrimPrefix(secret, "whsec_")} {
				if strings.Contains(raw, leak) {
					t.Errorf("health %s contains %q", raw, leak)
				}
			}
			base, err := url.Parse(g.URL())
			if err != nil {
				t.Fatal(err)
			}
			if got := id.Requests(); len(got) == 0 || got[0].Resource != base.Scheme+"://"+base.Host {
				t.Errorf("identity requests = %+v; want a token for Graph at %s://%s", got, base.Scheme, base.Host)
			}
		})
	}
}

// A token that does not list its roles (opaque) leaves "graph" unknown, and the log says why.
func TestOperatorHealthGraphOpaqueToken(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	id.SetOpaque()
	p := startHandler(t, handlerEnv(t, id, g))
	waitFor(t, 20*time.Second, "the log line of an opaque token", func() bool {
		return len(lines(p.Stdout.String(), `"graph permission unknown"`)) > 0
	})
	if h, raw := mustHealth(t, p); h.Graph != "unknown" || h.Status != "ok" {
		t.Errorf("opaque token: health = %s; want graph unknown, status ok", raw)
	}
	if strings.Contains(p.Stdout.String(), id.Token()) {
		t.Errorf("the handler logged its token")
	}
}

// gatedIdentity holds every token request until released, then passes it to the identity fake.
type gatedIdentity struct {
	srv     *httptest.Server
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGatedIdentity(t *testing.T, id *graphtest.Identity) *gatedIdentity {
	t.Helper()
	target, err := url.Parse(id.URL())
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &gatedIdentity{arrived: make(chan struct{}, 64), release: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case g.arrived <- struct{}{}:
		default:
		}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.open(); g.srv.Close() })
	return g
}

func (g *gatedIdentity) open() { g.once.Do(func() { close(g.release) }) }

// The permission is read in the background: while the identity endpoint has not answered, the
// handler is ready and health answers at once with "unknown"; once it answers, "ok".
func TestOperatorHealthGraphDoesNotDelayReadiness(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	id.SetRoles([]string{roleRevoke})
	gate := newGatedIdentity(t, id)
	env := handlerEnv(t, id, g)
	env["IDENTITY_ENDPOINT"] = gate.srv.URL + "/msi/token"
	p := startHandler(t, env)
	select {
	case <-gate.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler asked the identity for no token")
	}
	if h, raw := mustHealth(t, p); h.Graph != "unknown" || h.Status != "ok" {
		t.Errorf("health while the token request is held = %s; want graph unknown, status ok", raw)
	}
	gate.open()
	if h, raw := healthGraphSettled(t, p, 20*time.Second); h.Graph != "ok" {
		t.Errorf("health once the identity answered = %s; want graph ok", raw)
	}
}

// An identity endpoint that fails at start (the identity not yet assigned) is asked again: the
// verdict comes once it issues tokens, without a restart.
func TestOperatorHealthGraphRetriesATokenError(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	id.Fail(http.StatusBadRequest, `{"statusCode":400,"message":"Unable to load the proper Managed Identity."}`)
	p := startHandler(t, handlerEnv(t, id, g))
	waitFor(t, 20*time.Second, "a warning that the permission could not be read", func() bool {
		return len(lines(p.Stdout.String(), `"could not read the graph permission"`)) > 0
	})
	if h, raw := mustHealth(t, p); h.Graph != "unknown" {
		t.Errorf("health while the identity fails = %s; want graph unknown", raw)
	}
	id.SetRoles(nil)
	id.Fail(0, "")
	if h, raw := healthGraphSettled(t, p, 30*time.Second); h.Graph != "missing_permission" {
		t.Errorf("health once the identity issues tokens without roles = %s; want graph missing_permission", raw)
	}
}

// Health's "queue" is true only when deferral really works: storage to queue in and a webhook
// secret to sign the queued message with. An Entra-only app with storage cannot sign, so it says
// false, and a request that asks for an asynchronous answer is run at once instead of queued.
func TestOperatorHealthQueue(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	iss := entratest.NewIssuer(t, entraTenant)
	tests := []struct {
		name    string
		storage bool
		webhook bool
		want    bool
	}{
		{"entra only, with storage", true, false, false},
		{"storage and a webhook secret", true, true, true},
		{"webhook secret, no storage", false, true, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, g := tenant(t)
			id.SetRoles([]string{roleRevoke})
			env := handlerEnv(t, id, g)
			delete(env, "WEBHOOK_SECRETS")
			queue := "operator-queue-" + string(rune('a'+i))
			if tt.webhook {
				env["WEBHOOK_SECRETS"] = secret
			} else {
				env["ENTRA_TENANT_ID"] = entraTenant
				env["ENTRA_AUDIENCE"] = entraAPI
				env["ENTRA_OPENID_CONFIG_URL"] = iss.ConfigURL()
			}
			if tt.storage {
				storageEnv(t, env, az, queue)
				env["STATE_STORE"] = "memory"
			}
			p := startHandler(t, env)
			h, raw := mustHealth(t, p)
			if h.Queue == nil || *h.Queue != tt.want {
				t.Fatalf("storage %t, webhook secret %t: health = %s; want queue %t", tt.storage, tt.webhook, raw, tt.want)
			}
			if tt.webhook || !tt.storage {
				return
			}
			// Nothing to sign a queued message with: the request asking to be queued runs now.
			status, _, b := tokenPost(t, p, iss, logicAppA, "CHG-OPERATOR", revokeBody("alice@contoso.com"), true)
			if status != http.StatusOK || decode(t, b).Status != "revoked" {
				t.Errorf("Prefer: respond-async to an app that cannot defer = %d %s; want 200 revoked, run at once", status, b)
			}
			if msgs := drainQueue(t, az.ConnectionString, queue); len(msgs) != 0 {
				t.Errorf("queue %s holds %d messages; want none", queue, len(msgs))
			}
		})
	}
}

// `handler check`, run as an operator runs it against the app's identity, lists the roles its
// token holds and names what is missing, exiting 1; an opaque token is reported and passes.
func TestOperatorCheckRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		roles    []string
		opaque   bool
		extra    map[string]string
		wantCode int
		wantOut  []string
		wantNot  []string
	}{
		{name: "revoke permission", roles: []string{roleRevoke}, wantCode: 0,
			wantOut: []string{"graph roles: " + roleRevoke + "\n", "check passed"}, wantNot: []string{"missing:"}},
		{name: "granted nothing", roles: nil, wantCode: 1,
			wantOut: []string{"graph roles: none", "missing: " + roleRevoke}, wantNot: []string{"check passed"}},
		{name: "guard rails by UPN need User.Read.All", roles: []string{roleRevoke}, extra: map[string]string{"PROTECTED_USERS": breakGlassUPN}, wantCode: 1,
			wantOut: []string{"graph roles: " + roleRevoke + "\n", "missing: " + roleRead + " (for PROTECTED_USERS lookups)"}, wantNot: []string{"check passed", "missing: " + roleRevoke}},
		{name: "guard rails by UPN with both", roles: []string{roleRevoke, roleRead}, extra: map[string]string{"PROTECTED_USERS": breakGlassUPN}, wantCode: 0,
			wantOut: []string{"graph roles: " + roleRevoke + ", " + roleRead, "check passed"}},
		{name: "opaque token", opaque: true, wantCode: 0,
			wantOut: []string{"graph roles: not readable (an opaque token)", "check passed"}, wantNot: []string{"missing:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, g := tenant(t)
			if tt.opaque {
				id.SetOpaque()
			} else {
				id.SetRoles(tt.roles)
			}
			env := handlerEnv(t, id, g)
			for k, v := range tt.extra {
				env[k] = v
			}
			p := run(t, env, "check")
			code := p.exitCode(t, 60*time.Second)
			out := p.Stdout.String()
			if code != tt.wantCode {
				t.Errorf("check with roles %v (opaque %t), settings %v: exit %d; want %d\nstdout:\n%s\nstderr:\n%s", tt.roles, tt.opaque, tt.extra, code, tt.wantCode, out, p.Stderr)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("check stdout lacks %q:\n%s", want, out)
				}
			}
			for _, not := range tt.wantNot {
				if strings.Contains(out, not) {
					t.Errorf("check stdout has %q:\n%s", not, out)
				}
			}
			if tok := id.Token(); strings.Contains(out+p.Stderr.String(), tok) {
				t.Errorf("check printed its token")
			}
			if tt.wantCode != 0 && !strings.Contains(p.Stderr.String(), "missing") {
				t.Errorf("check stderr = %q; want the error naming what is missing", p.Stderr)
			}
		})
	}
}

// A setting whose value is still a Key Vault reference (the platform could not resolve it) stops
// the start with exit 2 and one line naming it, not a complaint about the reference's format.
func TestOperatorUnresolvedKeyVaultReference(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["WEBHOOK_SECRETS"] = "@Microsoft.KeyVault(SecretUri=https://kv-revoke.vault.azure.net/secrets/webhook-secret/)"
	env[testenv.PortVariable] = freePort(t)
	p := run(t, env)
	if code := p.exitCode(t, 15*time.Second); code != 2 {
		t.Fatalf("exit code = %d; want 2\nstderr: %s", code, p.Stderr)
	}
	stderr := strings.TrimSpace(p.Stderr.String())
	if !strings.Contains(stderr, "WEBHOOK_SECRETS: is still a Key Vault reference") || strings.Count(stderr, "\n") != 0 ||
		strings.Contains(stderr, "whsec_") {
		t.Errorf("stderr = %q; want one line naming WEBHOOK_SECRETS as an unresolved Key Vault reference", stderr)
	}
}

// A misspelt setting is named in a start-up warning with the setting it probably meant, and the
// handler starts without it.
func TestOperatorMisspeltSettingWarning(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["DRYRUN"] = "true"
	p := startHandler(t, env)
	var found bool
	for _, l := range lines(p.Stdout.String(), `"level":"WARN"`, "DRYRUN") {
		var entry struct{ Problem string }
		if json.Unmarshal([]byte(l), &entry) == nil && strings.Contains(entry.Problem, "DRYRUN") && strings.Contains(entry.Problem, "DRY_RUN") {
			found = true
		}
	}
	if !found {
		t.Errorf("start-up log has no warning naming DRYRUN and DRY_RUN:\n%s", p.Stdout)
	}
	if h, raw := mustHealth(t, p); h.Status != "ok" {
		t.Errorf("health = %s; want ok", raw)
	}
}
