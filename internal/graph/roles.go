package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// The Microsoft Graph application permissions the handler needs, by their least-privileged names.
const (
	// RoleRevoke lets the identity call revokeSignInSessions: always needed.
	RoleRevoke = "User.RevokeSessions.All"
	// RoleRead lets the identity read users: needed when a guard rail must look a user up
	// (PROTECTED_USERS or ALLOWED_DOMAINS against the other form of reference) or with
	// VERIFY_REVOCATION.
	RoleRead = "User.Read.All"
)

// Permission is the handler's own view of its Graph permission, as health's "graph" reports it.
type Permission string

// The values of Permission.
const (
	PermissionOK      Permission = "ok"
	PermissionMissing Permission = "missing_permission"
	// PermissionUnknown: no token yet, or a token whose roles cannot be read (an opaque token).
	PermissionUnknown Permission = "unknown"
)

// Graph accepts broader permissions for the same calls (its per-API tables list them as
// "higher privileged"). An identity that holds one of them can do the job, so reporting it as
// missing a permission would be false; the least-privileged name is still the one asked for when
// none is held. Matching is case-insensitive, as Entra's permission names are.
var (
	revokeRoles = []string{RoleRevoke, "User.ReadWrite.All", "Directory.ReadWrite.All"}
	readRoles   = []string{RoleRead, "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)

// Scope is the token scope for Microsoft Graph at baseURL (GRAPH_BASE_URL, "" for the default):
// {scheme}://{host}/.default.
func Scope(baseURL string) (string, error) {
	u, err := parseBaseURL(baseURL)
	if err != nil {
		return "", err
	}
	return scopeOf(u), nil
}

// scopeOf is the token scope for a parsed Graph base URL: the one place that says what it is.
func scopeOf(base *url.URL) string { return base.Scheme + "://" + base.Host + "/.default" }

// Roles gets a token for scope from cred and returns the application permissions it carries,
// read from the token's roles claim without verifying it: it is our own token, fresh from our
// own identity, and nothing is granted on the strength of it. readable is false when the token
// does not say (an opaque token, or a delegated one, whose permissions are in scp instead).
// Neither the token nor its claims ever leave this function except the roles.
func Roles(ctx context.Context, cred azcore.TokenCredential, scope string) (roles []string, readable bool, err error) {
	ctx, cancel := withBudget(ctx)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, EnableCAE: true})
	if err != nil {
		return nil, false, fmt.Errorf("%w for %s: %w", ErrToken, scope, err)
	}
	roles, readable = tokenRoles(tok.Token)
	return roles, readable, nil
}

// tokenRoles reads the roles claim of a JWT's payload. An app-only token granted no application
// permission has no roles claim at all; it is told apart from a token that does not list its
// permissions by idtyp "app", which Entra puts in app-only tokens.
func tokenRoles(token string) ([]string, bool) {
	var claims struct {
		Roles  *[]string `json:"roles"`
		IDType string    `json:"idtyp"`
	}
	if !tokenClaims(token, &claims) {
		return nil, false
	}
	switch {
	case claims.Roles != nil:
		return *claims.Roles, true
	case claims.IDType == "app":
		return []string{}, true
	}
	return nil, false
}

// tokenClaims decodes a JWT's payload into claims without verifying it (see Roles); false for a
// token that is not a JWT with a JSON payload.
func tokenClaims(token string, claims any) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(payload, claims) == nil
}

// Permissions judges roles: PermissionOK when they allow revocation, and reading users too when
// lookups is set (guard rails that may need a lookup, or VERIFY_REVOCATION); PermissionMissing
// with the least-privileged names of what is missing; PermissionUnknown when roles were not
// readable (missing is then empty: nothing is known to be missing).
func Permissions(roles []string, readable, lookups bool) (Permission, []string) {
	if !readable {
		return PermissionUnknown, nil
	}
	holds := func(accepted []string) bool {
		return slices.ContainsFunc(roles, func(r string) bool {
			return slices.ContainsFunc(accepted, func(a string) bool { return strings.EqualFold(r, a) })
		})
	}
	var missing []string
	if !holds(revokeRoles) {
		missing = append(missing, RoleRevoke)
	}
	if lookups && !holds(readRoles) {
		missing = append(missing, RoleRead)
	}
	if len(missing) > 0 {
		return PermissionMissing, missing
	}
	return PermissionOK, nil
}
