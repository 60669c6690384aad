package cli_test

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	const (
		webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		accountKey    = "c2VjcmV0LXN0b3JhZ2Uta2V5LXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVk"
		ikey          = "0b3b1a5e-6f0e-4d6c-9a53-0c1f2e3d4a5b"
	)
	env := f.with(
		"WEBHOOK_SECRETS", webhookSecret,
		"AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="+accountKey+";EndpointSuffix=core.windows.net",
		"APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey="+ikey+";IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
		"PROTECTED_USERS", "breakglass@contoso.com",
	)

	r := mustRun(t, env, "", "check")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	for _, want := range []string{
		"settings: valid",
		"webhook callers:     1 secret(s)",
		"protected users:     1",
		"queue:               revoke-requests (storage configured, key or SAS; last delivery 5)",
		"state:               table revokestate (shared by all instances)",
		"telemetry:           Application Insights via westeurope-5.in.applicationinsights.azure.com",
		"graph token: ok (scope http://" + f.graph.Host() + "/.default)",
		"check passed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "no caller can authenticate") {
		t.Errorf("warned about callers although WEBHOOK_SECRETS is set\n%s", r)
	}
	out := r.stdout + r.stderr
	for name, secret := range map[string]string{
		"webhook secret": strings.TrimPrefix(webhookSecret, "whsec_"), "storage account key": accountKey,
		"instrumentation key": ikey, "Graph token": f.identity.Token(), "identity header": f.identity.Secret(),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains the %s\n%s", name, r)
		}
	}
	if calls := f.graphCalls(); len(calls) != 0 {
		t.Errorf("check called Graph: %v", calls)
	}
	if n := len(f.identity.Requests()); n == 0 {
		t.Errorf("check did not ask the identity endpoint for a token")
	}
}

func TestCheckWarnsWithoutCallers(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	r := mustRun(t, f.env, "", "check")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0 (an operator's terminal has no caller settings)\n%s", r.code, r)
	}
	if !strings.Contains(r.stdout, "warning: no caller can authenticate") {
		t.Errorf("stdout does not warn that serve would refuse to start\n%s", r)
	}
}

func TestCheckFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env        []string
		break_     func(f *fakes)
		wantCode   int
		wantStderr string
	}{
		{
			name: "identity refuses",
			break_: func(f *fakes) {
				f.identity.Fail(400, `{"statusCode":400,"message":"Unable to load the proper Managed Identity."}`)
			},
			wantCode: 1, wantStderr: "Unable to load the proper Managed Identity",
		},
		{
			name:     "identity header wrong",
			env:      []string{"IDENTITY_HEADER", "not-the-secret"},
			wantCode: 1, wantStderr: "no Graph token",
		},
		{
			name:     "invalid setting",
			env:      []string{"MAX_REVOCATIONS_PER_MINUTE", "-1"},
			wantCode: 2, wantStderr: "MAX_REVOCATIONS_PER_MINUTE",
		},
		{
			name:     "half an Entra configuration",
			env:      []string{"ENTRA_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"},
			wantCode: 2, wantStderr: "ENTRA_AUDIENCE",
		},
		{
			name:     "arguments",
			env:      nil,
			wantCode: 2, wantStderr: "check takes no arguments",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFakes(t)
			if tt.break_ != nil {
				tt.break_(f)
			}
			args := []string{"check"}
			if tt.name == "arguments" {
				args = append(args, "now")
			}
			r := mustRun(t, f.with(tt.env...), "", args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d; want %d\n%s", r.code, tt.wantCode, r)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr lacks %q\n%s", tt.wantStderr, r)
			}
			if tt.wantCode == 1 && strings.Contains(r.stdout, "check passed") {
				t.Errorf("stdout says check passed\n%s", r)
			}
			if calls := f.graphCalls(); len(calls) != 0 {
				t.Errorf("check called Graph: %v", calls)
			}
		})
	}
}

// check lists the Graph roles of the token the identity endpoint issues and names the missing
// ones, failing only when one is missing; an opaque token passes, reported as such.
func TestCheckRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		roles    []string // nil with opaque
		opaque   bool
		env      []string
		wantCode int
		want     []string
	}{
		{name: "revoke permission", roles: []string{"User.RevokeSessions.All"}, wantCode: 0,
			want: []string{"graph roles: User.RevokeSessions.All\n", "signed in as: application", "check passed"}},
		{name: "revoke and read with guard rails", roles: []string{"User.RevokeSessions.All", "User.Read.All"}, env: []string{"ALLOWED_DOMAINS", "contoso.com"}, wantCode: 0,
			want: []string{"graph roles: User.RevokeSessions.All, User.Read.All", "check passed"}},
		{name: "granted nothing", roles: nil, wantCode: 1,
			want: []string{"graph roles: none", "missing: User.RevokeSessions.All (to revoke sessions)"}},
		{name: "read only", roles: []string{"User.Read.All"}, wantCode: 1,
			want: []string{"graph roles: User.Read.All", "missing: User.RevokeSessions.All"}},
		{name: "guard rails without read", roles: []string{"User.RevokeSessions.All"}, env: []string{"PROTECTED_USERS", "breakglass@contoso.com"}, wantCode: 1,
			want: []string{"missing: User.Read.All (for PROTECTED_USERS lookups)"}},
		{name: "opaque token", opaque: true, env: []string{"VERIFY_REVOCATION", "true"}, wantCode: 0,
			want: []string{"graph roles: not readable (an opaque token)", "check passed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFakes(t)
			if !tt.opaque {
				f.identity.SetRoles(tt.roles)
			}
			r := mustRun(t, f.with(tt.env...), "", "check")
			if r.code != tt.wantCode {
				t.Fatalf("exit %d; want %d\n%s", r.code, tt.wantCode, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q\n%s", w, r)
				}
			}
			if tt.wantCode != 0 && (strings.Contains(r.stdout, "check passed") || !strings.Contains(r.stderr, "check failed")) {
				t.Errorf("a missing permission did not fail the check\n%s", r)
			}
			tok := f.identity.Token()
			if parts := strings.Split(tok, "."); strings.Contains(r.stdout+r.stderr, tok) || (len(parts) == 3 && strings.Contains(r.stdout+r.stderr, parts[1])) {
				t.Errorf("output contains the token\n%s", r)
			}
			if calls := f.graphCalls(); len(calls) != 0 {
				t.Errorf("check called Graph: %v", calls)
			}
		})
	}
}
