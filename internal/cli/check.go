package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// checkBudget bounds the token requests of `check`: DefaultAzureCredential may probe IMDS and run
// `az` before the credential that works answers.
const checkBudget = 60 * time.Second

const checkAbout = `Validates every setting as 'handler serve' would (a terminal needs no caller method), prints
what is configured (never a secret), gets a Microsoft Graph token with DefaultAzureCredential and
lists the Graph roles it holds, naming any that is missing. Nothing in the tenant is read or
changed. Exit 0 when the permissions suffice or the token does not list them (an opaque token),
1 when one is missing or no token can be had, 2 when a setting is invalid.

settings that drive it (all others are validated; docs/settings.md):
  GRAPH_BASE_URL                  the token's scope: its scheme and host with /.default
  VERIFY_REVOCATION, PROTECTED_USERS, ALLOWED_DOMAINS
                                  need User.Read.All besides User.RevokeSessions.All
  AZURE_CLIENT_ID                 a user-assigned managed identity
  AZURE_TENANT_ID, AZURE_CLIENT_SECRET, AZURE_TOKEN_CREDENTIALS, IDENTITY_ENDPOINT, ...
                                  read by DefaultAzureCredential (or sign in with az login)
`

// check validates the settings, gets a Graph token and reads the permissions it carries. It calls
// nothing but the credential's token endpoint: nothing in the tenant is read or changed.
func check(ctx context.Context, env Env, args []string) error {
	fs := newCommand(env, "check", "check", checkAbout)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check takes no arguments")
	}
	cfg, err := loadConfig(env, settings.Operator)
	if err != nil {
		return err
	}
	out := env.Stdout
	fmt.Fprintln(out, "settings: valid")
	printSettings(out, cfg)
	for _, w := range cfg.Warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
	if !cfg.WebhookEnabled() && !cfg.EntraEnabled() {
		fmt.Fprintln(out, "warning: no caller can authenticate, so `handler serve` would refuse to start: set WEBHOOK_SECRETS and/or ENTRA_TENANT_ID with ENTRA_AUDIENCE")
	}

	cred, err := defaultCredential()
	if err != nil {
		return err
	}
	scope, err := graph.Scope(cfg.GraphBaseURL.String())
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, checkBudget)
	defer cancel()
	roles, readable, err := graph.Roles(tctx, cred, scope)
	if err != nil {
		fmt.Fprintln(out, "graph token: FAILED")
		fmt.Fprintln(env.Stderr, "hint: on Azure, enable the Function App's managed identity (and set AZURE_CLIENT_ID for a user-assigned one); on a workstation, run `az login` (with --tenant for the right directory)")
		return fmt.Errorf("check failed: no Graph token: %w", err)
	}
	fmt.Fprintf(out, "graph token: ok (scope %s)\n", scope)

	// Who the token names comes from the same token, from the credential's cache. The token is
	// never printed; only its roles and who it names are.
	who, err := graph.SignedIn(tctx, cred, scope)
	if err != nil {
		return fmt.Errorf("check failed: no Graph token: %w", err)
	}
	return checkPermissions(out, cfg, who, roles, readable)
}

// printSettings prints what is configured, never a secret's value.
func printSettings(w io.Writer, cfg config) {
	row := func(name, format string, a ...any) {
		fmt.Fprintf(w, "  %-20s %s\n", name+":", fmt.Sprintf(format, a...))
	}
	row("graph endpoint", "%s", cfg.GraphBaseURL)
	if cfg.AzureClientID != "" {
		row("credential", "DefaultAzureCredential (managed identity: user-assigned %s)", cfg.AzureClientID)
	} else {
		row("credential", "DefaultAzureCredential (managed identity: system-assigned)")
	}
	if cfg.WebhookEnabled() {
		row("webhook callers", "%d secret(s), tolerance %s", cfg.Keys.Len(), cfg.WebhookTolerance)
	} else {
		row("webhook callers", "not configured")
	}
	if cfg.EntraEnabled() {
		clients := "any client"
		if n := len(cfg.EntraAllowedClients); n > 0 {
			clients = fmt.Sprintf("%d allowed client(s)", n)
		}
		row("entra callers", "tenant %s, audience %s, role %s, %s",
			cfg.EntraTenantID, strings.Join(cfg.EntraAudiences, " "), cfg.EntraRequiredRole, clients)
	} else {
		row("entra callers", "not configured")
	}
	row("protected users", "%d", len(cfg.ProtectedUsers))
	if len(cfg.AllowedDomains) > 0 {
		row("allowed domains", "%s", strings.Join(cfg.AllowedDomains, ", "))
	} else {
		row("allowed domains", "any")
	}
	row("dry run", "%t", cfg.DryRun)
	row("verify revocation", "%t", cfg.VerifyRevocation)
	row("graph concurrency", "%d", cfg.GraphConcurrency)
	if cfg.MaxRevocationsPerMinute == 0 {
		row("rate guard", "off")
	} else {
		row("rate guard", "%d revocations/minute", cfg.MaxRevocationsPerMinute)
	}
	if cfg.Storage.Configured() {
		auth := "key or SAS"
		if cfg.Storage.IdentityBased() {
			auth = "managed identity"
		}
		row("queue", "%s (storage configured, %s; last delivery %d)", cfg.RevokeQueue, auth, cfg.MaxDequeueCount)
	} else {
		row("queue", "no storage: throttled and failed users are not deferred")
	}
	if cfg.WatchEnabled() {
		row("sign-in watch", "after %s on queue %s", strings.Join(cfg.WatchAfterText, ", "), cfg.WatchQueue)
	} else {
		row("sign-in watch", "off")
	}
	if cfg.StateStore == settings.StateTable {
		row("state", "table %s (shared by all instances)", cfg.StateTable)
	} else {
		row("state", "memory (this instance only)")
	}
	if cfg.PublicBaseURL != nil {
		row("status links", "%s/api/revoke/status/…", cfg.PublicBaseURL)
	} else {
		row("status links", "on the request's host")
	}
	if cfg.Telemetry.Enabled() {
		host := cfg.Telemetry.IngestionEndpoint
		if u, err := url.Parse(host); err == nil && u.Host != "" {
			host = u.Host
		}
		auth := ""
		if cfg.Telemetry.AAD {
			auth = ", Entra ID auth"
		}
		redact := ""
		if cfg.TelemetryRedactUPN {
			redact = ", UPNs as upnHash"
		}
		row("telemetry", "Application Insights via %s%s%s", host, auth, redact)
	} else {
		row("telemetry", "stdout only")
	}
}

// delegatedAll lets a user's token act within the signed-in user's own directory role.
const delegatedAll = "Directory.AccessAsUser.All"

// checkPermissions prints the Graph permissions the token holds and fails naming those missing:
// User.RevokeSessions.All always, User.Read.All when the settings need user lookups. A token
// whose permissions cannot be read (opaque) is reported as such and passes.
func checkPermissions(w io.Writer, cfg config, who graph.Identity, roles []string, readable bool) error {
	switch {
	case who.Delegated:
		fmt.Fprintf(w, "signed in as: user %s via app %s (tenant %s)\n", orUnknown(who.Name), orUnknown(who.AppID), orUnknown(who.TenantID))
	case who.Name != "":
		fmt.Fprintf(w, "signed in as: application %s, object %s (tenant %s)\n", orUnknown(who.AppID), who.Name, orUnknown(who.TenantID))
	}
	lookups := cfg.NeedsUserLookups()
	kind, held := "graph roles", roles
	if who.Delegated && !readable {
		// A user's token lists its permissions in scp; Directory.AccessAsUser.All covers all of
		// them within the user's directory role.
		kind, held, readable = "delegated permissions", who.Scopes, true
		if slices.ContainsFunc(held, func(s string) bool { return strings.EqualFold(s, delegatedAll) }) {
			held = append(slices.Clone(held), graph.RoleRevoke, graph.RoleRead)
		}
	}
	if !readable {
		fmt.Fprintln(w, "graph roles: not readable (an opaque token): permissions not checked")
		fmt.Fprintln(w, "check passed")
		return nil
	}
	shown := roles
	if who.Delegated && kind != "graph roles" {
		shown = who.Scopes
	}
	list := "none"
	if len(shown) > 0 {
		list = strings.Join(shown, ", ")
	}
	fmt.Fprintf(w, "%s: %s\n", kind, clean(list))
	verdict, missing := graph.PermissionsFor(held, true, lookups, cfg.WatchEnabled())
	if verdict == graph.PermissionOK {
		fmt.Fprintln(w, "check passed")
		return nil
	}
	var why []string
	for _, m := range missing {
		switch m {
		case graph.RoleRevoke:
			why = append(why, m+" (to revoke sessions)")
		case graph.RoleRead:
			why = append(why, m+" (for "+lookupReasons(cfg)+")")
		case graph.RoleAuditLogs:
			why = append(why, m+" (for WATCH_AFTER: reading sign-in logs)")
		default:
			why = append(why, m)
		}
	}
	fmt.Fprintf(w, "missing: %s\n", strings.Join(why, ", "))
	return fmt.Errorf("check failed: %s missing %s; grant it to the identity with admin consent (application permissions of Microsoft Graph)", kind, strings.Join(missing, " and "))
}

// lookupReasons names the settings that make the handler read users.
func lookupReasons(cfg config) string {
	var r []string
	if cfg.VerifyRevocation {
		r = append(r, "VERIFY_REVOCATION")
	}
	if len(cfg.ProtectedUsers) > 0 {
		r = append(r, "PROTECTED_USERS lookups")
	}
	if len(cfg.AllowedDomains) > 0 {
		r = append(r, "ALLOWED_DOMAINS lookups")
	}
	if cfg.WatchEnabled() {
		r = append(r, "WATCH_AFTER: the user's object ID")
	}
	return strings.Join(r, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return clean(s)
}
