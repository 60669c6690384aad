package graphtest

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

func TestIdentityWireFormat(t *testing.T) {
	t.Parallel()
	id := NewIdentity(t)
	tests := []struct {
		name   string
		header string
		query  string
		want   int
	}{
		{"token", id.Secret(), "?api-version=2019-08-01&resource=https://graph.microsoft.com", http.StatusOK},
		{"wrong header", "nope", "?api-version=2019-08-01&resource=https://graph.microsoft.com", http.StatusUnauthorized},
		{"no resource", id.Secret(), "?api-version=2019-08-01", http.StatusBadRequest},
		{"old api", id.Secret(), "?api-version=2017-09-01&resource=https://graph.microsoft.com", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, id.URL()+tt.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-IDENTITY-HEADER", tt.header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s = %d %s; want %d", tt.query, resp.StatusCode, body, tt.want)
			}
			if tt.want != http.StatusOK {
				return
			}
			var tok map[string]any
			if err := json.Unmarshal(body, &tok); err != nil {
				t.Fatalf("token body %s: %v", body, err)
			}
			if tok["access_token"] != id.Token() || tok["resource"] != "https://graph.microsoft.com" {
				t.Errorf("token body = %s; want access_token %q, resource echoed", body, id.Token())
			}
			if _, ok := tok["expires_on"].(string); !ok {
				t.Errorf("expires_on = %#v; want a string of Unix seconds as App Service sends", tok["expires_on"])
			}
		})
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw       string
		user, act string
		ok        bool
	}{
		{"/v1.0/users/alice%40contoso.com", "alice@contoso.com", "", true},
		{"/v1.0/users/jane_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com/revokeSignInSessions", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "revokeSignInSessions", true},
		{"/v1.0/users/a%2Fb/revokeSignInSessions", "a/b", "revokeSignInSessions", true},
		{"/v1.0/users/a/b", "a", "", false},
		{"/v1.0/users/", "", "", false},
		{"/v1.0/me/revokeSignInSessions", "", "", false},
		{"/beta/users/alice", "", "", false},
	}
	for _, tt := range tests {
		user, act, ok := route(tt.raw)
		if user != tt.user || act != tt.act || ok != tt.ok {
			t.Errorf("route(%q) = %q, %q, %v; want %q, %q, %v", tt.raw, user, act, ok, tt.user, tt.act, tt.ok)
		}
	}
}
