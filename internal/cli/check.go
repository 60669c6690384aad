package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// checkBudget bounds the token requests of `check`: DefaultAzureCredential may probe IMDS and run
// `az` before the credential that works answers.
const checkBudget = 60 * time.Second

// Graph permissions that allow revokeSignInSessions and reading users, least privileged first
// (Microsoft Graph permissions reference). Delegated tokens also work with
// Directory.AccessAsUser.All, within the signed-in administrator's own directory role.
var (
	revokePermissions = []string{"User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
	readPermissions   = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	delegatedAll      = "Directory.AccessAsUser.All"
)

// check validates the settings, gets a Graph token and reads the permissions it carries. It calls
// nothing but the credential's token endpoint: nothing in the tenant is read or changed.
func check(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "check", "check")
	if err := parseFlags(fs, args); err != nil {
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
	logger := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gc, err := graph.New(graph.Config{
		BaseURL: cfg.GraphBaseURL.String(), Credential: cred, Concurrency: cfg.GraphConcurrency, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	scope := graphScope(cfg.GraphBaseURL)
	tctx, cancel := context.WithTimeout(ctx, checkBudget)
	defer cancel()
	if err := gc.CheckToken(tctx); err != nil {
		fmt.Fprintln(out, "graph token: FAILED")
		fmt.Fprintln(env.Stderr, "hint: on Azure, enable the Function App's managed identity (and set AZURE_CLIENT_ID for a user-assigned one); on a workstation, run `az login` (with --tenant for the right directory)")
		return fmt.Errorf("check failed: no Graph token: %w", err)
	}
	fmt.Fprintf(out, "graph token: ok (scope %s)\n", scope)

	// CheckToken never hands the token out; getting it once more (from the credential's cache)
	// lets us read its claims here. It is never printed.
	tok, err := cred.GetToken(tctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return fmt.Errorf("check failed: no Graph token: %w", err)
	}
	return checkPermissions(out, cfg, tok)
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
	if cfg.Storage {
		row("queue", "%s (storage configured)", cfg.Queue.Queue)
	} else {
		row("queue", "no storage: throttled and failed users are not deferred")
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
		row("telemetry", "Application Insights via %s%s", host, auth)
	} else {
		row("telemetry", "stdout only")
	}
}

// graphScope is the token scope the Graph client asks for: {scheme}://{host}/.default (request contract).
func graphScope(base *url.URL) string {
	return base.Scheme + "://" + base.Host + "/.default"
}

// tokenClaims are the access-token claims that say who signed in and with which permissions.
type tokenClaims struct {
	Roles    []string `json:"roles"` // application permissions
	Scp      string   `json:"scp"`   // delegated permissions, space-separated
	AppID    string   `json:"appid"` // v1 tokens
	AZP      string   `json:"azp"`   // v2 tokens
	TenantID string   `json:"tid"`
	UPN      string   `json:"upn"`
	IDType   string   `json:"idtyp"`
}

// readClaims decodes a JWT's payload without verifying it: the token came from our own credential
// over TLS, and only Graph needs to trust it. ok is false for tokens that are not JWTs.
func readClaims(token string) (c tokenClaims, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenClaims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return tokenClaims{}, false
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return tokenClaims{}, false
	}
	return c, true
}

// checkPermissions fails when the token cannot revoke sessions, or cannot read users while
// VERIFY_REVOCATION needs it; it warns when guard-rail lookups may be refused.
func checkPermissions(w io.Writer, cfg config, tok azcore.AccessToken) error {
	c, ok := readClaims(tok.Token)
	var kind string
	var granted []string
	switch {
	case !ok:
	case c.Roles != nil:
		kind, granted = "application", c.Roles
	case c.Scp != "":
		kind, granted = "delegated", strings.Fields(c.Scp)
	case c.IDType == "app":
		// Entra leaves roles out of an app-only token that was granted nothing.
		kind = "application"
	}
	if kind == "" {
		fmt.Fprintln(w, "permissions: not checked (the token does not list its permissions)")
		fmt.Fprintln(w, "check passed")
		return nil
	}
	who := c.AZP
	if who == "" {
		who = c.AppID
	}
	if kind == "delegated" && c.UPN != "" {
		fmt.Fprintf(w, "signed in as: user %s via app %s (tenant %s)\n", clean(c.UPN), clean(who), clean(c.TenantID))
	} else {
		fmt.Fprintf(w, "signed in as: application %s (tenant %s)\n", clean(who), clean(c.TenantID))
	}
	has := func(accepted []string) string {
		for _, p := range accepted {
			if slices.ContainsFunc(granted, func(g string) bool { return strings.EqualFold(g, p) }) {
				return p
			}
		}
		if kind == "delegated" && slices.ContainsFunc(granted, func(g string) bool { return strings.EqualFold(g, delegatedAll) }) {
			return delegatedAll
		}
		return ""
	}
	revokeBy, readBy := has(revokePermissions), has(readPermissions)
	summary := func() string {
		if len(granted) == 0 {
			return "none"
		}
		return clean(strings.Join(granted, ", "))
	}

	var problems []string
	if revokeBy == "" {
		problems = append(problems, fmt.Sprintf("the %s permission User.RevokeSessions.All is missing (granted: %s)", kind, summary()))
	} else {
		fmt.Fprintf(w, "permissions: can revoke sessions (%s, %s)\n", revokeBy, kind)
	}
	switch {
	case readBy != "":
		fmt.Fprintf(w, "permissions: can read users (%s, %s)\n", readBy, kind)
	case cfg.VerifyRevocation:
		problems = append(problems, "VERIFY_REVOCATION is set but the permission User.Read.All is missing")
	case len(cfg.ProtectedUsers) > 0 || len(cfg.AllowedDomains) > 0:
		fmt.Fprintln(w, "warning: User.Read.All is missing: when a guard rail needs to look a user up (an object ID against PROTECTED_USERS or ALLOWED_DOMAINS, or a UPN against a protected object ID) the outcome will be denied")
	}
	if len(problems) > 0 {
		fmt.Fprintln(w, "permissions: INSUFFICIENT")
		return fmt.Errorf("check failed: %s; grant it to the identity with admin consent (application permissions of Microsoft Graph)", strings.Join(problems, "; "))
	}
	fmt.Fprintln(w, "check passed")
	return nil
}
