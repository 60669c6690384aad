package graph

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
)

// jwtWith returns an unsigned JWT-shaped token carrying claims.
func jwtWith(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(b) + "." + enc([]byte("sig"))
}

func TestSignedIn(t *testing.T) {
	t.Parallel()
	const tid, oid, app = "72f988bf-86f1-41af-91ab-2d7cd011db47", "3f1c2a4e-8b7d-4c1e-9f0a-1b2c3d4e5f60", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	tests := []struct {
		name  string
		token string
		want  Identity
	}{
		{"managed identity", graphtest.AppToken([]string{RoleRevoke}),
			Identity{Name: "00000000-0000-0000-0000-0000000000a2", AppID: "00000000-0000-0000-0000-0000000000a1", TenantID: "00000000-0000-0000-0000-0000000000f1"}},
		{"az login (v1 user token)", jwtWith(t, map[string]any{"upn": "admin@contoso.com", "unique_name": "admin@contoso.com", "oid": oid, "appid": app, "tid": tid, "scp": "Directory.AccessAsUser.All User.Read"}),
			Identity{Name: "admin@contoso.com", AppID: app, TenantID: tid, Delegated: true, Scopes: []string{"Directory.AccessAsUser.All", "User.Read"}}},
		{"guest without upn", jwtWith(t, map[string]any{"unique_name": "live.com#jane@fabrikam.com", "oid": oid, "azp": app, "tid": tid, "scp": "User.Read", "idtyp": "user"}),
			Identity{Name: "live.com#jane@fabrikam.com", AppID: app, TenantID: tid, Delegated: true, Scopes: []string{"User.Read"}}},
		{"user token with only oid", jwtWith(t, map[string]any{"oid": oid, "idtyp": "user"}), Identity{Name: oid, Delegated: true}},
		{"hostile claims", jwtWith(t, map[string]any{"upn": "evil\n{\"forged\":1}\x1b[2J@contoso.com " + strings.Repeat("x", 400), "scp": "a"}),
			Identity{Name: "evil{\"forged\":1}[2J@contoso.com" + strings.Repeat("x", 256-len("evil{\"forged\":1}[2J@contoso.com")), Delegated: true, Scopes: []string{"a"}}},
		{"opaque", "graphtest-opaque-token", Identity{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SignedIn(mustContext(t, 5*time.Second), graphtest.NewCredential(tt.token), "https://graph.microsoft.com/.default")
			if err != nil {
				t.Fatalf("SignedIn(%q) error = %v", tt.token, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SignedIn(%q) = %+v; want %+v", tt.token, got, tt.want)
			}
		})
	}
}

func TestSignedInTokenFailure(t *testing.T) {
	t.Parallel()
	cred := graphtest.NewCredential("x")
	cred.Fail(errors.New("AzureCLICredential: please run az login"))
	if _, err := SignedIn(mustContext(t, 5*time.Second), cred, "https://graph.microsoft.com/.default"); !errors.Is(err, ErrToken) {
		t.Errorf("SignedIn() error = %v; want ErrToken", err)
	}
}
