package graphtest

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Credential is an azcore.TokenCredential that hands out a fixed token and records the scopes
// and claims asked for. Tests that do not exercise the identity endpoint use it instead of
// NewIdentity so that they need no environment variables and can run in parallel.
type Credential struct {
	token string

	mu          sync.Mutex
	scopes      [][]string
	claims      []string
	err         error
	failNext    int    // calls left to fail with failErr
	failErr     error  // FailFirst's error
	claimsToken string // AfterClaims's token; "" for none
	challenged  bool   // a call has asked for claims
}

// NewCredential returns a Credential that issues token.
func NewCredential(token string) *Credential { return &Credential{token: token} }

// GetToken implements azcore.TokenCredential.
func (c *Credential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = append(c.scopes, append([]string(nil), opts.Scopes...))
	c.claims = append(c.claims, opts.Claims)
	c.challenged = c.challenged || opts.Claims != ""
	if c.failNext > 0 {
		c.failNext--
		return azcore.AccessToken{}, c.failErr
	}
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	tok := c.token
	if c.claimsToken != "" && c.challenged {
		tok = c.claimsToken
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// FailFirst makes the next n GetToken calls return err, as an identity endpoint that is briefly
// unavailable; later calls succeed again.
func (c *Credential) FailFirst(n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext, c.failErr = n, err
}

// AfterClaims makes GetToken hand out token instead, from the first call that asks for claims on:
// a credential once a continuous access evaluation (CAE) event revoked the token it had.
func (c *Credential) AfterClaims(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claimsToken = token
}

// Claims returns the claims of every GetToken call so far, "" for a call without.
func (c *Credential) Claims() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.claims...)
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
