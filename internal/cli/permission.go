package cli

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
)

// How often the permission is read. The credential serves its cached token until renewal is due,
// so a grant (or its removal) shows once the identity's token is renewed, not at the next read;
// reading again costs nothing but a cache lookup.
const (
	// permissionRetry is the wait after a first token error while nothing is known; it doubles
	// with each error up to permissionRetryMax, so a start before the identity is ready is
	// reported soon and a broken identity is not hammered.
	permissionRetry    = 2 * time.Second
	permissionRetryMax = 5 * time.Minute
	// permissionRefresh is the wait between reads once a token was had.
	permissionRefresh = 45 * time.Minute
	// permissionBudget bounds one token request.
	permissionBudget = 30 * time.Second
)

// permissionWatch is the handler's own view of its Microsoft Graph permission, for health's
// "graph": the verdict on the roles claim of the app-only token its managed identity obtains,
// read in the background. It holds one value, the verdict on this process's own token: nothing
// is shared between instances or kept across a restart, and each instance reads its own.
type permissionWatch struct {
	cred    azcore.TokenCredential
	scope   string
	lookups bool // the settings need User.Read.All as well (Settings.NeedsUserLookups)
	// auditLogs: the sign-in watch is on and needs AuditLog.Read.All (and User.Read.All) too.
	auditLogs bool
	logger    *slog.Logger
	// noPlatformIdentity: the platform offers no identity endpoint (IDENTITY_ENDPOINT unset, as
	// on a laptop running make run), so token errors are expected and not worth repeating.
	noPlatformIdentity bool

	verdict  atomic.Pointer[graph.Permission] // nil until a token was had
	failures int                              // token errors in a row; only read touches it

	// audit, when set, records each reading (event GraphPermission), so alerts see it.
	audit interface {
		Permission(context.Context, telemetry.Permission)
	}
}

var _ server.PermissionReporter = (*permissionWatch)(nil)

func newPermissionWatch(cred azcore.TokenCredential, scope string, lookups bool, logger *slog.Logger) *permissionWatch {
	return &permissionWatch{cred: cred, scope: scope, lookups: lookups, logger: logger}
}

// Graph reports the last verdict: "ok", "missing_permission", or "unknown" until a token was had
// or when the token does not list its roles.
func (w *permissionWatch) Graph() string {
	if v := w.verdict.Load(); v != nil {
		return string(*v)
	}
	return string(graph.PermissionUnknown)
}

// watch reads the permission at once and then again, until ctx ends.
func (w *permissionWatch) watch(ctx context.Context) {
	for {
		t := time.NewTimer(w.read(ctx))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// read reads the token's roles once, keeps the verdict and returns how long to wait before the
// next read. A token error after a verdict keeps it: the permission granted has not changed
// because the identity endpoint failed once, and the Graph calls report that failure themselves.
func (w *permissionWatch) read(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, permissionBudget)
	defer cancel()
	roles, readable, err := graph.Roles(ctx, w.cred, w.scope)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return permissionRetry // shutting down; watch returns
		}
		if w.verdict.Load() != nil {
			w.logger.Warn("could not read the graph permission", "error", err, "graph", w.Graph())
			return permissionRefresh
		}
		wait := min(permissionRetry<<min(w.failures, 16), permissionRetryMax)
		w.failures++
		switch {
		case !w.noPlatformIdentity:
			w.logger.Warn("could not read the graph permission", "error", firstLine(err), "graph", w.Graph(), "retry_in", wait.String())
		case w.failures == 1:
			// No managed identity at all (make run on a laptop): said once, in one line — the
			// SDK's error runs over many — then retried quietly until a token comes.
			w.logger.Warn("graph: unknown, no managed identity here", "graph", w.Graph(), "error", firstLine(err))
		default:
			w.logger.Debug("could not read the graph permission", "error", firstLine(err), "retry_in", wait.String())
		}
		return wait
	}
	w.failures = 0
	verdict, missing := graph.PermissionsFor(roles, readable, w.lookups, w.auditLogs)
	if w.audit != nil {
		w.audit.Permission(ctx, telemetry.Permission{Graph: string(verdict), Missing: missing, UserLookups: w.lookups})
	}
	if prev := w.verdict.Swap(&verdict); prev == nil || *prev != verdict {
		// Logs, unlike anonymous health, may say what is missing.
		switch verdict {
		case graph.PermissionMissing:
			w.logger.Warn("graph permission missing", "graph", verdict, "missing", missing, "user_lookups", w.lookups)
		case graph.PermissionUnknown:
			w.logger.Info("graph permission unknown", "graph", verdict, "reason", "the token does not list its roles")
		default:
			w.logger.Info("graph permission", "graph", verdict)
		}
	}
	return permissionRefresh
}

// firstLine is the first line of err's text: azidentity's errors append pages of troubleshooting.
func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSpace(line)
}
