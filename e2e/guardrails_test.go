package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
)

const (
	breakGlassID  = "0bad0bad-0000-4000-8000-00000000b1a5"
	breakGlassUPN = "breakglass@contoso.com"
	bobID         = "4b0b4b0b-0000-4000-8000-000000000b0b"
)

// guardedTenant is a directory with members, a guest, a break-glass account and a user of
// another domain, and a handler with the guard rails on.
func guardedTenant(t *testing.T, extra map[string]string) (*graphtest.Graph, *proc) {
	t.Helper()
	id, g := tenant(t)
	g.AddUser(
		graphtest.User{ID: breakGlassID, UPN: breakGlassUPN, UserType: "Member"},
		graphtest.User{ID: bobID, UPN: "bob@fabrikam.com", UserType: "Member"},
	)
	env := handlerEnv(t, id, g)
	for k, v := range extra {
		env[k] = v
	}
	return g, startHandler(t, env)
}

type userResult struct {
	UPN               string `json:"upn"`
	Status            string `json:"status"`
	UserID            string `json:"userId"`
	Verified          *bool  `json:"verified"`
	SessionsValidFrom string `json:"sessionsValidFrom"`
	Warning           string `json:"warning"`
	Error             *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func revokeUsers(t *testing.T, p *proc, id string, users ...string) (int, string, []userResult) {
	t.Helper()
	q, _ := json.Marshal(users)
	body := []byte(fmt.Sprintf(`{"upns":%s}`, q))
	if len(users) == 1 {
		body = []byte(fmt.Sprintf(`{"upn":%q}`, users[0]))
	}
	status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, id, body), body)
	var r struct {
		Status  string       `json:"status"`
		Results []userResult `json:"results"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return status, r.Status, r.Results
}

func TestProtectedUsersNeverRevokedByAnySpelling(t *testing.T) {
	t.Parallel()
	// The list names the account by object ID; requests spell it as UPN in any case, and by ID.
	g, p := guardedTenant(t, map[string]string{"PROTECTED_USERS": breakGlassID + ", alice@contoso.com"})
	spellings := []string{breakGlassUPN, "BreakGlass@Contoso.COM", breakGlassID, strings.ToUpper(breakGlassID), aliceID, "ALICE@contoso.com"}
	for i, s := range spellings {
		status, _, rs := revokeUsers(t, p, fmt.Sprintf("msg_prot_%d", i), s)
		if status != http.StatusForbidden || rs[0].Status != "protected" {
			t.Errorf("revoke %q = %d %s; want 403 protected", s, status, rs[0].Status)
		}
	}
	if n := g.Revocations(breakGlassUPN) + g.Revocations("alice@contoso.com"); n != 0 {
		t.Fatalf("protected accounts revoked %d times; want never", n)
	}

	// A refused lookup fails closed.
	g.RefuseLookups(true)
	status, _, rs := revokeUsers(t, p, "msg_prot_refused", breakGlassUPN)
	if status != http.StatusForbidden || rs[0].Status != "denied" {
		t.Errorf("refused lookup = %d %s; want 403 denied", status, rs[0].Status)
	}
	status, _, rs = revokeUsers(t, p, "msg_prot_refused_other", "o'brien@contoso.com")
	if status != http.StatusForbidden || rs[0].Status != "denied" || g.Revocations("o'brien@contoso.com") != 0 {
		t.Errorf("another user while lookups are refused = %d %s; want denied, no revocation", status, rs[0].Status)
	}
	if n := g.Revocations(breakGlassUPN); n != 0 {
		t.Fatalf("break-glass revoked %d times after a refused lookup", n)
	}
}

func TestAllowedDomains(t *testing.T) {
	t.Parallel()
	g, p := guardedTenant(t, map[string]string{"ALLOWED_DOMAINS": "contoso.com,contoso.onmicrosoft.com"})
	tests := []struct {
		user string
		want string
	}{
		{"alice@CONTOSO.com", "revoked"},
		{"bob@fabrikam.com", "out_of_scope"},
		{"mallory@evil.contoso.com", "out_of_scope"},
		{bobID, "out_of_scope"}, // object ID of a fabrikam.com user: looked up, refused
		{aliceID, "revoked"},    // object ID of a contoso.com user
		{guest, "revoked"},      // a guest lives in the host tenant's domain
	}
	for i, tt := range tests {
		_, _, rs := revokeUsers(t, p, fmt.Sprintf("msg_dom_%d", i), tt.user)
		if rs[0].Status != tt.want {
			t.Errorf("revoke %q = %s; want %s", tt.user, rs[0].Status, tt.want)
		}
	}
	if n := g.Revocations("bob@fabrikam.com"); n != 0 {
		t.Errorf("out-of-scope user revoked %d times", n)
	}
}

func TestBulkMixedResultsInOrder(t *testing.T) {
	t.Parallel()
	g, p := guardedTenant(t, map[string]string{"PROTECTED_USERS": breakGlassUPN})
	g.Script("o'brien@contoso.com", graphtest.Forbidden())
	users := []string{"alice@contoso.com", "ghost@contoso.com", breakGlassUPN, "o'brien@contoso.com", guest}
	status, top, rs := revokeUsers(t, p, "msg_bulk_mixed", users...)
	want := []string{"revoked", "not_found", "protected", "denied", "revoked"}
	if status != http.StatusMultiStatus || top != "partial" || len(rs) != len(users) {
		t.Fatalf("bulk = %d %s with %d results; want 207 partial with %d", status, top, len(rs), len(users))
	}
	for i := range users {
		if rs[i].UPN != users[i] || rs[i].Status != want[i] {
			t.Errorf("result %d = %s %s; want %s %s", i, rs[i].UPN, rs[i].Status, users[i], want[i])
		}
	}
}

func TestVerificationOfMembersAndGuests(t *testing.T) {
	t.Parallel()
	g, p := guardedTenant(t, map[string]string{"VERIFY_REVOCATION": "true"})
	_, _, rs := revokeUsers(t, p, "msg_verify", "alice@contoso.com", guest)
	for _, r := range rs {
		if r.Status != "revoked" || r.Verified == nil || !*r.Verified || r.SessionsValidFrom == "" || r.UserID == "" {
			t.Errorf("verified result = %+v; want revoked, verified true, userId and sessionsValidFrom", r)
		}
	}
	if !strings.Contains(rs[1].Warning, "home tenant") || rs[0].Warning != "" {
		t.Errorf("warnings = %q / %q; want one for the guest only", rs[0].Warning, rs[1].Warning)
	}
	// Without User.Read.All the read is refused: still revoked, verified left out, a warning.
	g.RefuseLookups(true)
	_, _, rs = revokeUsers(t, p, "msg_verify_refused", "o'brien@contoso.com")
	if rs[0].Status != "revoked" || rs[0].Verified != nil || rs[0].Warning == "" {
		t.Errorf("refused read = %+v; want revoked, no verified, a warning", rs[0])
	}
}

// A 100-user request against a Graph that takes 200 ms per call finishes in under 4 s (issue 6):
// with GRAPH_CONCURRENCY 8 the Graph time alone is about 2.6 s.
func TestHundredUsersAgainstSlowGraph(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("user%03d@contoso.com", i)
		g.AddUser(graphtest.User{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), UPN: users[i]})
	}
	g.SetLatency(200 * time.Millisecond)
	p := startHandler(t, handlerEnv(t, id, g))
	start := time.Now()
	status, top, rs := revokeUsers(t, p, "msg_hundred", users...)
	took := time.Since(start)
	if status != http.StatusOK || top != "revoked" || len(rs) != 100 || rs[99].UPN != users[99] {
		t.Fatalf("100 users = %d %s (%d results); want 200 revoked in order", status, top, len(rs))
	}
	if took >= 4*time.Second {
		t.Errorf("100 users against a 200 ms Graph took %s; want under 4 s", took)
	}
}
