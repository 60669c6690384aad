package graph

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	const scope = "https://graph.microsoft.com/.default"
	tests := []struct {
		name         string
		token        string
		wantRoles    []string
		wantReadable bool
	}{
		{"roles", graphtest.AppToken([]string{RoleRevoke, RoleRead}), []string{RoleRevoke, RoleRead}, true},
		{"app-only, granted nothing", graphtest.AppToken(nil), []string{}, true},
		{"empty roles claim", graphtest.AppToken([]string{}), []string{}, true},
		{"opaque", "graphtest-opaque-token", nil, false},
		{"three parts, not base64", "a.!!!.c", nil, false},
		{"payload not JSON", "a.bm90IGpzb24.c", nil, false},
		// A delegated token lists its permissions in scp, not roles.
		{"delegated", "e30." + "eyJzY3AiOiJVc2VyLlJlYWQiLCJpZHR5cCI6InVzZXIifQ" + ".c", nil, false},
		{"roles not strings", "e30." + "eyJyb2xlcyI6WzFdfQ" + ".c", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cred := graphtest.NewCredential(tt.token)
			roles, readable, err := Roles(mustContext(t, 5*time.Second), cred, scope)
			if err != nil {
				t.Fatalf("Roles(%q) error = %v", tt.token, err)
			}
			if !slices.Equal(roles, tt.wantRoles) || (roles == nil) != (tt.wantRoles == nil) || readable != tt.wantReadable {
				t.Errorf("Roles(%q) = %#v, %v; want %#v, %v", tt.token, roles, readable, tt.wantRoles, tt.wantReadable)
			}
			if got := cred.Scopes(); len(got) != 1 || !slices.Equal(got[0], []string{scope}) {
				t.Errorf("scopes asked = %v; want [[%s]]", got, scope)
			}
		})
	}
}

func TestRolesTokenFailure(t *testing.T) {
	t.Parallel()
	tok := graphtest.AppToken([]string{RoleRevoke})
	cred := graphtest.NewCredential(tok)
	cred.Fail(errors.New("ManagedIdentityCredential: no identity"))
	roles, readable, err := Roles(mustContext(t, 5*time.Second), cred, "https://graph.microsoft.com/.default")
	if !errors.Is(err, ErrToken) || roles != nil || readable {
		t.Errorf("Roles() = %v, %v, %v; want ErrToken, nothing readable", roles, readable, err)
	}
	if err != nil && strings.Contains(err.Error(), tok) {
		t.Errorf("error %q contains the token", err)
	}
}

// TestRolesFromManagedIdentity reads roles through azidentity from the identity endpoint fake,
// in each of the shapes it issues.
func TestRolesFromManagedIdentity(t *testing.T) {
	// Not parallel: azidentity reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the environment.
	id := graphtest.NewIdentity(t)
	id.SetEnv(t)
	cred, err := ManagedIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	scope, err := Scope("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		set          func()
		wantRoles    []string
		wantReadable bool
	}{
		{"opaque", id.SetOpaque, nil, false},
		{"roles", func() { id.SetRoles([]string{RoleRevoke}) }, []string{RoleRevoke}, true},
		{"no roles claim", func() { id.SetRoles(nil) }, []string{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.set()
			roles, readable, err := Roles(mustContext(t, 10*time.Second), cred, scope)
			if err != nil {
				t.Fatalf("Roles() error = %v", err)
			}
			if !slices.Equal(roles, tt.wantRoles) || readable != tt.wantReadable {
				t.Errorf("Roles() = %#v, %v; want %#v, %v", roles, readable, tt.wantRoles, tt.wantReadable)
			}
		})
	}
	reqs := id.Requests()
	if len(reqs) == 0 || reqs[0].Resource != "https://graph.microsoft.com" {
		t.Errorf("identity requests = %+v; want the Graph resource", reqs)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		roles       []string
		readable    bool
		lookups     bool
		want        Permission
		wantMissing []string
	}{
		{"unreadable", nil, false, true, PermissionUnknown, nil},
		{"revoke only, no lookups", []string{RoleRevoke}, true, false, PermissionOK, nil},
		{"revoke only, lookups", []string{RoleRevoke}, true, true, PermissionMissing, []string{RoleRead}},
		{"both, lookups", []string{RoleRead, RoleRevoke}, true, true, PermissionOK, nil},
		{"case-insensitive", []string{"user.revokesessions.all"}, true, false, PermissionOK, nil},
		{"nothing granted", []string{}, true, false, PermissionMissing, []string{RoleRevoke}},
		{"nothing granted, lookups", []string{}, true, true, PermissionMissing, []string{RoleRevoke, RoleRead}},
		{"read only", []string{RoleRead}, true, true, PermissionMissing, []string{RoleRevoke}},
		{"unrelated", []string{"Mail.Read"}, true, false, PermissionMissing, []string{RoleRevoke}},
		{"User.ReadWrite.All covers both", []string{"User.ReadWrite.All"}, true, true, PermissionOK, nil},
		{"Directory.ReadWrite.All covers both", []string{"Directory.ReadWrite.All"}, true, true, PermissionOK, nil},
		{"Directory.Read.All reads", []string{RoleRevoke, "Directory.Read.All"}, true, true, PermissionOK, nil},
		{"Directory.Read.All does not revoke", []string{"Directory.Read.All"}, true, true, PermissionMissing, []string{RoleRevoke}},
		{"User.ReadBasic.All is not enough to read", []string{RoleRevoke, "User.ReadBasic.All"}, true, true, PermissionMissing, []string{RoleRead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, missing := Permissions(tt.roles, tt.readable, tt.lookups)
			if got != tt.want || !slices.Equal(missing, tt.wantMissing) {
				t.Errorf("Permissions(%v, %v, %v) = %q, %v; want %q, %v", tt.roles, tt.readable, tt.lookups, got, missing, tt.want, tt.wantMissing)
			}
		})
	}
}

func TestScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		baseURL string
		want    string
		wantErr bool
	}{
		{"", "https://graph.microsoft.com/.default", false},
		{"https://graph.microsoft.us/v1.0/", "https://graph.microsoft.us/.default", false},
		{"http://127.0.0.1:8080/v1.0", "http://127.0.0.1:8080/.default", false},
		{"http://graph.microsoft.com/v1.0", "", true},
	}
	for _, tt := range tests {
		got, err := Scope(tt.baseURL)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Scope(%q) = %q, %v; want %q, error %v", tt.baseURL, got, err, tt.want, tt.wantErr)
		}
	}
}
