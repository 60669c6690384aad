package graphtest

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Credential is an azcore.TokenCredential that hands out a fixed token and records the scopes
// asked for. Tests that do not exercise the identity endpoint use it instead of NewIdentity so
// that they need no environment variables and can run in parallel.
type Credential struct {
	token string

	mu     sync.Mutex
	scopes [][]string
	err    error
}

// NewCredential returns a Credential that issues token.
func NewCredential(token string) *Credential { return &Credential{token: token} }

// GetToken implements azcore.TokenCredential.
func (c *Credential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = append(c.scopes, append([]string(nil), opts.Scopes...))
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Fail makes GetToken return err (nil restores it).
func (c *Credential) Fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// Scopes returns the scopes of every GetToken call so far.
func (c *Credential) Scopes() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.scopes...)
}

var _ azcore.TokenCredential = (*Credential)(nil)
