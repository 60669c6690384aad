package graph

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Identity is who a Graph token was issued to, read from its claims the way Roles reads its
// permissions: for the audit trail of the operator CLI and for `handler check`, never to grant
// anything. The token itself never leaves SignedIn.
type Identity struct {
	// Name is the user's UPN (upn, else unique_name) or, for an application or a managed
	// identity, the object ID (oid); "" when the token does not say (an opaque token).
	Name      string
	AppID     string   // the client the token was issued to (azp, else appid)
	TenantID  string   // tid
	Delegated bool     // a user's token: its permissions are Scopes, not roles
	Scopes    []string // delegated permissions (scp)
}

// SignedIn gets a token for scope from cred and returns the identity it names. Claims are
// cleaned to printable characters and bounded, since they end up in logs and telemetry.
func SignedIn(ctx context.Context, cred azcore.TokenCredential, scope string) (Identity, error) {
	ctx, cancel := withBudget(ctx)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, EnableCAE: true})
	if err != nil {
		return Identity{}, fmt.Errorf("%w for %s: %w", ErrToken, scope, err)
	}
	return tokenIdentity(tok.Token), nil
}

func tokenIdentity(token string) Identity {
	var c struct {
		UPN        string `json:"upn"`
		UniqueName string `json:"unique_name"`
		OID        string `json:"oid"`
		AZP        string `json:"azp"`
		AppID      string `json:"appid"`
		TenantID   string `json:"tid"`
		Scp        string `json:"scp"`
		IDType     string `json:"idtyp"`
	}
	if !tokenClaims(token, &c) {
		return Identity{}
	}
	id := Identity{AppID: claim(first(c.AZP, c.AppID)), TenantID: claim(c.TenantID)}
	id.Delegated = c.Scp != "" || c.IDType == "user"
	if id.Delegated {
		id.Name = claim(first(c.UPN, c.UniqueName, c.OID))
		for _, s := range strings.Fields(c.Scp) {
			id.Scopes = append(id.Scopes, claim(s))
		}
	} else {
		id.Name = claim(c.OID)
	}
	return id
}

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// maxClaim bounds a claim copied into a log line.
const maxClaim = 256

// claim keeps a claim's printable characters, at most maxClaim bytes of them.
func claim(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxClaim {
		s = strings.ToValidUTF8(s[:maxClaim], "")
	}
	return s
}
