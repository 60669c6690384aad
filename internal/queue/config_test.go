package queue_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-revoke/entra-revoke/internal/queue"
)

// A syntactically valid account key; it opens nothing. Tests check that it never shows in errors.
const testKey = "dGVzdCBrZXkgdGhhdCBtdXN0IG5vdCBsZWFr"

// devStorage is Azurite's well-known development account (its key is public), as the settings
// parse "UseDevelopmentStorage=true".
func devStorage(name string) queue.Config {
	return queue.Config{
		ServiceURL:  "http://127.0.0.1:10001/devstoreaccount1",
		AccountName: "devstoreaccount1",
		AccountKey:  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
		Queue:       name,
	}
}

// Each way the settings can name an account builds a client, without a network call.
func TestNewAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  queue.Config
	}{
		{"shared key", queue.Config{ServiceURL: "https://contosorevoke.queue.core.windows.net", AccountName: "contosorevoke", AccountKey: testKey, Queue: "revoke-requests"}},
		{"development storage", devStorage("revoke-requests")},
		{"shared access signature", queue.Config{ServiceURL: "https://contoso.queue.core.windows.net/", SAS: "sv=2022-11-02&sig=abc", Queue: "revoke-requests"}},
		{"managed identity", queue.Config{ServiceURL: "https://contosorevoke.queue.core.usgovcloudapi.net", Credential: fakeCredential{}, Queue: "q-1"}},
	}
	for _, tt := range tests {
		if _, err := queue.New(tt.cfg); err != nil {
			t.Errorf("New(%s) = %v; want nil", tt.name, err)
		}
	}
}

// fakeCredential stands in for a managed identity; tests using it make no request.
type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("fake credential: no token")
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  queue.Config
	}{
		{"nothing", queue.Config{Queue: "revoke-requests"}},
		{"key and SAS", queue.Config{ServiceURL: "https://a.example.com", AccountName: "a", AccountKey: testKey, SAS: "sig=1", Queue: "revoke-requests"}},
		{"service URL without credential", queue.Config{ServiceURL: "https://a.example.com", Queue: "revoke-requests"}},
		{"service URL over http", queue.Config{ServiceURL: "http://a.example.com", Credential: fakeCredential{}, Queue: "revoke-requests"}},
		{"key without account", queue.Config{ServiceURL: "https://a.example.com", AccountKey: "not base64!", Queue: "revoke-requests"}},
		{"no queue", devStorage("")},
		{"bad queue", devStorage("Revoke_Requests")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if c, err := queue.New(tt.cfg); !errors.Is(err, queue.ErrConfig) {
				t.Errorf("New(%+v) = %v, %v; want ErrConfig", tt.cfg, c, err)
			}
		})
	}
}

func TestNewName(t *testing.T) {
	t.Parallel()
	c, err := queue.New(devStorage("revoke-requests"))
	if err != nil {
		t.Fatalf("New(UseDevelopmentStorage=true) = %v", err)
	}
	if c.Name() != "revoke-requests" {
		t.Errorf("Name() = %q; want revoke-requests", c.Name())
	}
}

// TestErrorsHideSAS checks that a failed call does not leak a SAS token from the connection
// string: transport errors name the URL, and the URL carries the signature.
func TestErrorsHideSAS(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: every call fails in transport
	const sig = "c2VjcmV0LXNhcy1zaWduYXR1cmU"
	c, err := queue.New(queue.Config{
		ServiceURL: "http://" + addr + "/devstoreaccount1", SAS: "sv=2022-11-02&sig=" + sig,
		Queue: "revoke-requests",
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Enqueue", func(ctx context.Context) error { return c.Enqueue(ctx, []byte("x")) }},
		{"Poison", func(ctx context.Context) error { return c.Poison(ctx, []byte("x")) }},
		{"EnsureQueues", c.EnsureQueues},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := tt.call(ctx)
			if err == nil {
				t.Fatalf("%s to a closed port = nil; want an error", tt.name)
			}
			if strings.Contains(err.Error(), sig) {
				t.Errorf("%s error shows the SAS signature: %v", tt.name, err)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("%s error %q does not name the endpoint %s; want it kept for diagnosis", tt.name, err, addr)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	c, err := queue.New(devStorage("revoke-requests"))
	if err != nil {
		t.Fatal(err)
	}
	// No Azurite is needed: the size is checked before any request.
	big := make([]byte, queue.MaxMessageBytes+1)
	if err := c.Enqueue(context.Background(), big); !errors.Is(err, queue.ErrTooLarge) {
		t.Errorf("Enqueue(%d bytes) = %v; want ErrTooLarge", len(big), err)
	}
	if err := c.Poison(context.Background(), big); !errors.Is(err, queue.ErrTooLarge) {
		t.Errorf("Poison(%d bytes) = %v; want ErrTooLarge", len(big), err)
	}
}
