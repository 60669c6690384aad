package cli_test

import (
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// handler revoke records its outcomes in Application Insights like the server, with trigger
// "cli" and the identity that signed in as the caller, flushed before it exits.
func TestRevokeAuditsToApplicationInsights(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	f.identity.SetRoles([]string{"User.RevokeSessions.All"}) // a managed identity's token: oid names it
	in := testenv.NewIngestion(t)

	r := mustRun(t, f.with("APPLICATIONINSIGHTS_CONNECTION_STRING", in.ConnectionString()), "", "revoke", "--ticket", "INC7", "alice@contoso.com", bobID)
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	var events []map[string]string
	for _, e := range in.Events("SessionRevocation") {
		events = append(events, e.Properties)
	}
	if len(events) != 2 {
		t.Fatalf("SessionRevocation events = %d; want 2, flushed before exit: %v\n%s", len(events), events, r)
	}
	const caller = "cli:00000000-0000-0000-0000-0000000000a2" // the token's oid
	for _, e := range events {
		if e["trigger"] != "cli" || e["caller"] != caller || e["status"] != "revoked" || e["ticket"] != "INC7" {
			t.Errorf("event %v; want trigger cli, caller %s, status revoked, ticket INC7", e, caller)
		}
	}
	tok := f.identity.Token()
	if strings.Contains(r.stdout+r.stderr, strings.Split(tok, ".")[1]) {
		t.Errorf("output contains the token\n%s", r)
	}
}
