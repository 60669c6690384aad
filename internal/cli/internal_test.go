package cli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

func TestCheckPermissions(t *testing.T) {
	t.Parallel()
	app := graph.Identity{Name: "00000000-0000-0000-0000-0000000000a2", AppID: "11111111-2222-3333-4444-555555555555", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"}
	user := func(scopes ...string) graph.Identity {
		return graph.Identity{Name: "admin@contoso.com", AppID: "04b07795-8ddb-461a-bbee-02f9e1bf7b46", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", Delegated: true, Scopes: scopes}
	}
	tests := []struct {
		name      string
		who       graph.Identity
		roles     []string
		readable  bool
		cfg       config
		wantErr   string // "" = passes
		wantOut   []string
		wantNoOut string
	}{
		{name: "least privilege", who: app, roles: []string{"User.RevokeSessions.All"}, readable: true,
			wantOut: []string{"graph roles: User.RevokeSessions.All\n", "application 11111111-2222-3333-4444-555555555555, object 00000000-0000-0000-0000-0000000000a2", "check passed"}},
		{name: "broader permission", who: app, roles: []string{"User.ReadWrite.All"}, readable: true, cfg: withVerify(),
			wantOut: []string{"graph roles: User.ReadWrite.All", "check passed"}},
		{name: "missing revoke permission", who: app, roles: []string{"User.Read.All", "Mail.Send"}, readable: true,
			wantErr: "graph roles missing User.RevokeSessions.All", wantOut: []string{"graph roles: User.Read.All, Mail.Send", "missing: User.RevokeSessions.All (to revoke sessions)"}, wantNoOut: "check passed"},
		{name: "no roles at all", who: app, roles: []string{}, readable: true,
			wantErr: "missing User.RevokeSessions.All", wantOut: []string{"graph roles: none"}},
		{name: "verify without read", who: app, roles: []string{"User.RevokeSessions.All"}, readable: true, cfg: withVerify(),
			wantErr: "missing User.Read.All", wantOut: []string{"missing: User.Read.All (for VERIFY_REVOCATION)"}},
		{name: "guard rails without read", who: app, roles: []string{"User.RevokeSessions.All"}, readable: true, cfg: withProtected(),
			wantErr: "missing User.Read.All", wantOut: []string{"missing: User.Read.All (for PROTECTED_USERS lookups)"}},
		{name: "both missing", who: app, roles: []string{"Mail.Send"}, readable: true, cfg: withVerify(),
			wantErr: "missing User.RevokeSessions.All and User.Read.All"},
		{name: "verify with read", who: app, roles: []string{"User.RevokeSessions.All", "User.Read.All"}, readable: true, cfg: withVerify(),
			wantOut: []string{"check passed"}},
		{name: "delegated admin", who: user("Directory.AccessAsUser.All", "User.Read"), cfg: withVerify(),
			wantOut: []string{"user admin@contoso.com via app 04b07795-8ddb-461a-bbee-02f9e1bf7b46", "delegated permissions: Directory.AccessAsUser.All, User.Read", "check passed"}},
		{name: "delegated without permission", who: user("User.Read", "openid"),
			wantErr: "delegated permissions missing User.RevokeSessions.All"},
		{name: "opaque token", who: graph.Identity{},
			wantOut: []string{"graph roles: not readable (an opaque token)", "check passed"}, wantNoOut: "signed in as"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := checkPermissions(&out, tt.cfg, tt.who, tt.roles, tt.readable)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkPermissions(%+v, %q) = %v; want nil\n%s", tt.who, tt.roles, err, out.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkPermissions(%+v, %q) = %v; want an error containing %q", tt.who, tt.roles, err, tt.wantErr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("checkPermissions(%+v, %q) printed\n%s\nwant it to contain %q", tt.who, tt.roles, out.String(), w)
				}
			}
			if tt.wantNoOut != "" && strings.Contains(out.String(), tt.wantNoOut) {
				t.Errorf("checkPermissions(%+v, %q) printed %q", tt.who, tt.roles, tt.wantNoOut)
			}
		})
	}
}

func withVerify() config {
	var c config
	c.VerifyRevocation = true
	return c
}

func withProtected() config {
	var c config
	c.ProtectedUsers = []string{"breakglass@contoso.com"}
	return c
}

// fakeRunner records the jobs it runs and answers each user with status.
type fakeRunner struct {
	mu     sync.Mutex
	jobs   []revoke.Job
	status revoke.Status
	err    error
	after  func(n int) // called after the n-th job, e.g. to cancel the context
}

var _ jobRunner = (*fakeRunner)(nil)

func (f *fakeRunner) Run(ctx context.Context, job revoke.Job) (revoke.Result, error) {
	f.mu.Lock()
	f.jobs = append(f.jobs, job)
	n := len(f.jobs)
	f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return revoke.Result{}, errors.New("job without a deadline")
	}
	if f.err != nil {
		return revoke.Result{}, f.err
	}
	res := revoke.Result{ID: job.RequestID, DryRun: job.DryRun, Status: f.status}
	for _, u := range job.Users {
		res.Results = append(res.Results, revoke.UserResult{UPN: u, Status: f.status})
	}
	if f.after != nil {
		f.after(n)
	}
	return res, nil
}

func TestRunInChunks(t *testing.T) {
	t.Parallel()
	users := []string{"a@contoso.com", "b@contoso.com", "c@contoso.com", "d@contoso.com", "e@contoso.com"}
	job := revoke.Job{Meta: revoke.Meta{RequestID: "req-1", Trigger: revoke.TriggerCLI}, Users: users, Final: true}

	f := &fakeRunner{status: revoke.StatusRevoked}
	var progress [][2]int
	res, err := runInChunks(context.Background(), f, job, 2, func(done, total int) { progress = append(progress, [2]int{done, total}) })
	if err != nil {
		t.Fatalf("runInChunks: %v", err)
	}
	var chunks [][]string
	for _, j := range f.jobs {
		chunks = append(chunks, j.Users)
		if j.RequestID != "req-1" || !j.Final || j.Trigger != revoke.TriggerCLI {
			t.Errorf("chunk job meta = %+v, final %v; want the job's own", j.Meta, j.Final)
		}
	}
	if want := [][]string{users[0:2], users[2:4], users[4:5]}; !slices.EqualFunc(chunks, want, slices.Equal) {
		t.Errorf("chunks = %v; want %v", chunks, want)
	}
	if want := [][2]int{{2, 5}, {4, 5}, {5, 5}}; !slices.Equal(progress, want) {
		t.Errorf("progress = %v; want %v", progress, want)
	}
	var got []string
	for _, r := range res.Results {
		got = append(got, r.UPN)
	}
	if !slices.Equal(got, users) || res.Status != revoke.StatusRevoked || res.ID != "req-1" {
		t.Errorf("result = %+v; want all users in order, revoked, id req-1", res)
	}
}

func TestRunInChunksOneChunkShowsNoProgress(t *testing.T) {
	t.Parallel()
	f := &fakeRunner{status: revoke.StatusDryRun}
	called := false
	_, err := runInChunks(context.Background(), f, revoke.Job{Users: []string{"a@contoso.com"}}, 8, func(int, int) { called = true })
	if err != nil || called {
		t.Errorf("runInChunks(1 user, size 8): err %v, progress called %v; want nil, false", err, called)
	}
}

func TestRunInChunksInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeRunner{status: revoke.StatusRevoked, after: func(n int) {
		if n == 1 {
			cancel() // Ctrl-C during the first chunk
		}
	}}
	users := []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"}
	res, err := runInChunks(ctx, f, revoke.Job{Users: users}, 1, nil)
	if err != nil {
		t.Fatalf("runInChunks: %v", err)
	}
	if len(f.jobs) != 1 {
		t.Errorf("ran %d chunks after the interruption; want only the first", len(f.jobs))
	}
	want := []revoke.Status{revoke.StatusRevoked, revoke.StatusFailed, revoke.StatusFailed}
	var got []revoke.Status
	for _, r := range res.Results {
		got = append(got, r.Status)
	}
	if !slices.Equal(got, want) || res.Status != revoke.StatusPartial {
		t.Errorf("statuses = %v (overall %s); want %v (partial)", got, res.Status, want)
	}
	if e := res.Results[2].Error; e == nil || e.Code != "interrupted" {
		t.Errorf("unattempted user error = %+v; want code interrupted", e)
	}
}

func TestRunInChunksError(t *testing.T) {
	t.Parallel()
	f := &fakeRunner{err: &revoke.RateLimitedError{}}
	_, err := runInChunks(context.Background(), f, revoke.Job{Users: []string{"a@contoso.com"}}, 1, nil)
	var rl *revoke.RateLimitedError
	if !errors.As(err, &rl) {
		t.Errorf("runInChunks error = %v; want the engine's *RateLimitedError wrapped", err)
	}
}

func TestProgressPrinter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		verbose bool
		want    string
	}{
		{verbose: false, want: "\r1/3 done\r2/3 done\r3/3 done\n"},
		{verbose: true, want: "1/3 done\n2/3 done\n3/3 done\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		p := progressPrinter(&b, tt.verbose)
		for i := 1; i <= 3; i++ {
			p(i, 3)
		}
		if b.String() != tt.want {
			t.Errorf("progressPrinter(verbose %v) wrote %q; want %q", tt.verbose, b.String(), tt.want)
		}
	}
}

func TestPrintTableCleansGraphText(t *testing.T) {
	t.Parallel()
	res := revoke.Result{ID: "r", Status: revoke.StatusFailed, Results: []revoke.UserResult{{
		UPN: "a@contoso.com", Status: revoke.StatusFailed,
		Error: &revoke.ErrorInfo{Code: "X", Message: "line1\nforged\trow\x1b[2J\u202eevil"},
	}}}
	var b bytes.Buffer
	if err := printTable(&b, res); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	// header, one row, blank line, summary
	if len(lines) != 4 {
		t.Fatalf("printTable wrote %d lines; want 4:\n%q", len(lines), b.String())
	}
	for _, bad := range []string{"\x1b", "\u202e", "\t"} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("printTable output contains %q:\n%q", bad, b.String())
		}
	}
}

// The operator commands load every setting as the server does, except that no caller needs to be
// able to authenticate: nobody calls a terminal.
func TestLoadConfigOperatorMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		env         map[string]string
		wantCallers bool
		wantErr     string
	}{
		{name: "operator terminal", env: map[string]string{}, wantCallers: false},
		{name: "webhook configured", env: map[string]string{"WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, wantCallers: true},
		{name: "bad secret still reported", env: map[string]string{"WEBHOOK_SECRETS": "nope"}, wantErr: "WEBHOOK_SECRETS"},
		{name: "audience without tenant", env: map[string]string{"ENTRA_AUDIENCE": "api://x"}, wantErr: "ENTRA_TENANT_ID"},
		{name: "other settings still checked", env: map[string]string{"DRY_RUN": "maybe"}, wantErr: "DRY_RUN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(Env{Getenv: func(k string) string { return tt.env[k] }}, settings.Operator)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("loadConfig(%v, Operator) error = %v; want one naming %s", tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig(%v, Operator) = %v", tt.env, err)
			}
			if callers := cfg.WebhookEnabled() || cfg.EntraEnabled(); callers != tt.wantCallers {
				t.Errorf("loadConfig(%v, Operator): some caller enabled = %v; want %v", tt.env, callers, tt.wantCallers)
			}
		})
	}
}
