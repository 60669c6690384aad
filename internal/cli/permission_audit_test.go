package cli

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
)

// permissionAudit records what the watch reports to telemetry.
type permissionAudit struct {
	mu   sync.Mutex
	seen []telemetry.Permission
}

func (a *permissionAudit) Permission(_ context.Context, p telemetry.Permission) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, p)
}

// Every reading of the token, changed or not, is recorded (the alert on a missing permission
// reads each instance's latest event); a token error records nothing, as it says nothing new.
func TestPermissionWatchRecordsEachReading(t *testing.T) {
	t.Parallel()
	src := &tokenSource{token: graphtest.AppToken([]string{graph.RoleRevoke})}
	audit := &permissionAudit{}
	w := newPermissionWatch(src, "https://graph.microsoft.com/.default", true, slog.New(slog.DiscardHandler))
	w.audit = audit
	w.read(context.Background())
	w.read(context.Background())
	src.set("", errors.New("ManagedIdentityCredential: unavailable"))
	w.read(context.Background())
	src.set(graphtest.AppToken([]string{graph.RoleRevoke, "User.Read.All"}), nil)
	w.read(context.Background())

	missing := telemetry.Permission{Graph: "missing_permission", Missing: []string{"User.Read.All"}, UserLookups: true}
	want := []telemetry.Permission{missing, missing, {Graph: "ok", UserLookups: true}}
	eq := func(a, b telemetry.Permission) bool {
		return a.Graph == b.Graph && a.UserLookups == b.UserLookups && slices.Equal(a.Missing, b.Missing)
	}
	if !slices.EqualFunc(audit.seen, want, eq) {
		t.Errorf("recorded %+v; want %+v", audit.seen, want)
	}
}
