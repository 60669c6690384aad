package graphtest

import (
	"errors"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestCredentialScript(t *testing.T) {
	t.Parallel()
	c := NewCredential("old")
	down := errors.New("identity endpoint unavailable")
	c.FailFirst(1, down)
	c.AfterClaims("new")
	const claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	calls := []struct {
		claims  string
		want    string
		wantErr error
	}{
		{"", "", down},
		{"", "old", nil},
		{claims, "new", nil},
		{"", "new", nil}, // the challenged token stays replaced
	}
	for i, call := range calls {
		tok, err := c.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"s"}, Claims: call.claims})
		if !errors.Is(err, call.wantErr) || tok.Token != call.want {
			t.Errorf("call %d GetToken(claims %q) = %q, %v; want %q, %v", i, call.claims, tok.Token, err, call.want, call.wantErr)
		}
	}
	if got, want := c.Claims(), []string{"", "", claims, ""}; !slices.Equal(got, want) {
		t.Errorf("Claims() = %q; want %q", got, want)
	}
	if got := len(c.Scopes()); got != len(calls) {
		t.Errorf("Scopes() has %d calls; want %d", got, len(calls))
	}
}
