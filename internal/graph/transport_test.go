package graph

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	khttp "github.com/microsoft/kiota-http-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
)

// countingCredential hands out numbered tokens with the lifetime the test sets.
type countingCredential struct {
	mu        sync.Mutex
	calls     int
	claims    []string
	expiresIn time.Duration
	refreshIn time.Duration // RefreshOn, when refresh is set
	refresh   bool
	err       error
}

func (c *countingCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.claims = append(c.claims, opts.Claims)
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	tok := azcore.AccessToken{Token: "t" + string(rune('0'+c.calls)), ExpiresOn: time.Now().Add(c.expiresIn)}
	if c.refresh {
		tok.RefreshOn = time.Now().Add(c.refreshIn)
	}
	return tok, nil
}

func (c *countingCredential) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func TestTokenMemo(t *testing.T) {
	graphScope := policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}, EnableCAE: true}
	ctx := t.Context()
	get := func(t *testing.T, c *trackedCredential, opts policy.TokenRequestOptions) string {
		t.Helper()
		tok, err := c.GetToken(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}

	t.Run("a live token is reused", func(t *testing.T) {
		cred := &countingCredential{expiresIn: time.Hour}
		c := &trackedCredential{cred: cred}
		for range 100 {
			if got := get(t, c, graphScope); got != "t1" {
				t.Fatalf("token %q; want t1", got)
			}
		}
		if cred.count() != 1 {
			t.Fatalf("credential asked %d times; want 1", cred.count())
		}
	})

	t.Run("near expiry or past RefreshOn, azidentity decides", func(t *testing.T) {
		for _, cred := range []*countingCredential{
			{expiresIn: tokenRefreshMargin - time.Second},
			{expiresIn: time.Hour, refresh: true, refreshIn: -time.Second},
		} {
			c := &trackedCredential{cred: cred}
			get(t, c, graphScope)
			get(t, c, graphScope)
			if cred.count() != 2 {
				t.Fatalf("credential asked %d times; want 2 (no memo)", cred.count())
			}
		}
	})

	t.Run("other scopes, tenants or CAE are not served from the memo", func(t *testing.T) {
		cred := &countingCredential{expiresIn: time.Hour}
		c := &trackedCredential{cred: cred}
		get(t, c, graphScope)
		other := []policy.TokenRequestOptions{
			{Scopes: []string{"https://graph.microsoft.us/.default"}, EnableCAE: true},
			{Scopes: graphScope.Scopes, EnableCAE: false},
			{Scopes: graphScope.Scopes, EnableCAE: true, TenantID: "other"},
		}
		for i, o := range other {
			get(t, c, o)
			if cred.count() != i+2 {
				t.Fatalf("%+v served from the memo", o)
			}
		}
	})

	t.Run("a claims challenge bypasses and clears the memo", func(t *testing.T) {
		cred := &countingCredential{expiresIn: time.Hour}
		c := &trackedCredential{cred: cred}
		get(t, c, graphScope)
		challenge := graphScope
		challenge.Claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
		if got := get(t, c, challenge); got != "t2" {
			t.Fatalf("claims call got %q; want a fresh token", got)
		}
		if got := get(t, c, graphScope); got == "t1" {
			t.Fatal("the revoked token was handed out again after a claims challenge")
		}
		if cred.count() != 3 {
			t.Fatalf("credential asked %d times; want 3", cred.count())
		}
	})

	t.Run("failures are not memoized and reach the tracker", func(t *testing.T) {
		cred := &countingCredential{err: errors.New("identity endpoint down")}
		c := &trackedCredential{cred: cred}
		tr := &tracker{}
		if _, err := c.GetToken(withTracker(ctx, tr), graphScope); err == nil || tr.tokenErr == nil {
			t.Fatalf("err %v, tracker %v; want both", err, tr.tokenErr)
		}
		cred.err = nil
		get(t, c, graphScope)
		if cred.count() != 2 {
			t.Fatalf("credential asked %d times; want 2", cred.count())
		}
	})
}

func TestMiddlewares(t *testing.T) {
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

// blockingCredential hands out "old" until the claims challenge has been answered with "new",
// and lets the test hold a fetch in flight across the challenge.
type blockingCredential struct {
	mu      sync.Mutex
	calls   int
	revoked bool
	hold    chan struct{} // a fetch without claims waits here when set
	started chan struct{}
}

func (c *blockingCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	c.calls++
	hold := c.hold
	tok := "old"
	if c.revoked || opts.Claims != "" {
		tok = "new"
	}
	if opts.Claims != "" {
		c.revoked = true
	}
	c.mu.Unlock()
	if opts.Claims == "" && hold != nil {
		c.started <- struct{}{}
		<-hold
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestTokenMemoDropsAFetchThatOverlappedAClaimsChallenge(t *testing.T) {
	graphScope := policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}
	cred := &blockingCredential{hold: make(chan struct{}), started: make(chan struct{})}
	c := &trackedCredential{cred: cred}
	done := make(chan string)
	go func() {
		tok, _ := c.GetToken(t.Context(), graphScope) // fetches "old", held in flight
		done <- tok.Token
	}()
	<-cred.started
	challenge := graphScope
	challenge.Claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	if tok, err := c.GetToken(t.Context(), challenge); err != nil || tok.Token != "new" {
		t.Fatalf("claims call = %q, %v; want new", tok.Token, err)
	}
	cred.mu.Lock()
	hold := cred.hold
	cred.hold = nil // later fetches go straight through
	cred.mu.Unlock()
	close(hold) // the fetch that started before the challenge now returns "old"
	if got := <-done; got != "old" {
		t.Fatalf("the held fetch got %q; want old", got)
	}
	if tok, _ := c.GetToken(t.Context(), graphScope); tok.Token != "new" {
		t.Fatalf("after the challenge the memo handed out %q; want a fresh token", tok.Token)
	}
}
