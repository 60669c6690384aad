package graph

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	khttp "github.com/microsoft/kiota-http-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
)

func TestTokenFailureReachesTheTracker(t *testing.T) {
	t.Parallel()
	cred := graphtest.NewCredential(testToken)
	cred.Fail(errors.New("identity endpoint down"))
	c := &trackedCredential{cred: cred}
	tr := &tracker{}
	if _, err := c.GetToken(withTracker(t.Context(), tr), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}); err == nil || tr.tokenErr == nil {
		t.Fatalf("GetToken: err %v, tracker %v; want both set", err, tr.tokenErr)
	}
}

func TestMiddlewares(t *testing.T) {
	t.Parallel()
	var got []string
	for _, m := range middlewares() {
		switch m.(type) {
		case *core.GraphTelemetryHandler:
			got = append(got, "telemetry")
		case *khttp.ParametersNameDecodingHandler:
			got = append(got, "parameters")
		case *khttp.UserAgentHandler:
			got = append(got, "user-agent")
		default:
			t.Errorf("unexpected middleware %T", m)
		}
	}
	if len(got) != 3 {
		t.Errorf("middlewares %v; want the Graph telemetry, parameter name decoding and user agent handlers", got)
	}
}

// TestClaimsChallenge: when Graph answers a CAE claims challenge, the SDK asks the credential
// for a token satisfying the claims and sends the call once more with it; later calls use the
// new token. Nothing of ours sits between the SDK and the credential's cache to keep the old one.
func TestClaimsChallenge(t *testing.T) {
	t.Parallel()
	const claims = `{"access_token":{"nbf":{"essential":true,"value":"1767225600"}}}`
	g := graphtest.NewGraph(t)
	g.AddUser(alice)
	g.Script(alice.UPN, graphtest.ClaimsChallenge(claims))
	cred := graphtest.NewCredential("old")
	cred.AfterClaims("new") // as a credential once a CAE event revoked the old token
	c := mustClient(t, Config{BaseURL: g.URL(), Credential: cred})

	res, err := c.RevokeSignInSessions(mustContext(t, 10*time.Second), alice.UPN)
	if err != nil {
		t.Fatalf("RevokeSignInSessions after a claims challenge = %v; want success", err)
	}
	if _, err := c.RevokeSignInSessions(mustContext(t, 10*time.Second), alice.UPN); err != nil {
		t.Fatalf("second RevokeSignInSessions = %v", err)
	}
	var auths []string
	for _, r := range g.Requests() {
		auths = append(auths, r.Authorization)
	}
	if want := []string{"Bearer old", "Bearer new", "Bearer new"}; !slices.Equal(auths, want) {
		t.Errorf("Authorization of the Graph requests = %v; want %v", auths, want)
	}
	if got := cred.Claims(); len(got) < 2 || got[0] != "" || got[1] != claims {
		t.Errorf("claims asked of the credential = %q; want \"\" then %q", got, claims)
	}
	if res.Attempts != 2 || g.Revocations(alice.UPN) != 2 {
		t.Errorf("attempts = %d, revocations = %d; want 2 attempts for the challenged call, 2 revocations", res.Attempts, g.Revocations(alice.UPN))
	}
}
