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

func TestFromEnv(t *testing.T) {
	t.Parallel()
	full := "DefaultEndpointsProtocol=https;AccountName=contosorevoke;AccountKey=" + testKey + ";EndpointSuffix=core.windows.net"
	tests := []struct {
		name       string
		env        map[string]string
		queue      string
		configured bool
		want       queue.Config
		wantErr    bool
	}{
		{name: "nothing set", env: nil, queue: "revoke-requests", configured: false},
		{name: "blank values count as unset", env: map[string]string{queue.EnvConnection: "  "}, queue: "revoke-requests"},
		{name: "full connection string", env: map[string]string{queue.EnvConnection: full}, queue: "revoke-requests",
			configured: true, want: queue.Config{ConnectionString: full, Queue: "revoke-requests"}},
		{name: "development storage", env: map[string]string{queue.EnvConnection: "UseDevelopmentStorage=true"}, queue: "revoke-requests",
			configured: true, want: queue.Config{ConnectionString: queue.DevelopmentStorage, Queue: "revoke-requests"}},
		{name: "development storage, other case and a semicolon", env: map[string]string{queue.EnvConnection: " usedevelopmentstorage=TRUE; "}, queue: "q-1",
			configured: true, want: queue.Config{ConnectionString: queue.DevelopmentStorage, Queue: "q-1"}},
		{name: "shared access signature", env: map[string]string{queue.EnvConnection: "QueueEndpoint=https://contoso.queue.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abc"},
			queue: "revoke-requests", configured: true,
			want: queue.Config{ConnectionString: "QueueEndpoint=https://contoso.queue.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abc", Queue: "revoke-requests"}},
		{name: "queue service URI", env: map[string]string{queue.EnvQueueServiceURI: "https://contosorevoke.queue.core.windows.net/"}, queue: "revoke-requests",
			configured: true, want: queue.Config{ServiceURL: "https://contosorevoke.queue.core.windows.net", Queue: "revoke-requests"}},
		{name: "queue service URI with a user-assigned identity", env: map[string]string{
			queue.EnvQueueServiceURI: "https://contosorevoke.queue.core.usgovcloudapi.net", queue.EnvClientID: "6e5e9c43-1b0a-4a4e-9d8f-3f0c1f7b2a11"},
			queue: "revoke-requests", configured: true, want: queue.Config{ServiceURL: "https://contosorevoke.queue.core.usgovcloudapi.net",
				ClientID: "6e5e9c43-1b0a-4a4e-9d8f-3f0c1f7b2a11", Queue: "revoke-requests"}},
		{name: "account name", env: map[string]string{queue.EnvAccountName: "contosorevoke"}, queue: "revoke-requests",
			configured: true, want: queue.Config{ServiceURL: "https://contosorevoke.queue.core.windows.net", Queue: "revoke-requests"}},
		{name: "service URI wins over account name", env: map[string]string{queue.EnvQueueServiceURI: "https://a.example.com", queue.EnvAccountName: "other"},
			queue: "revoke-requests", configured: true, want: queue.Config{ServiceURL: "https://a.example.com", Queue: "revoke-requests"}},
		{name: "connection string wins, as on the host", env: map[string]string{queue.EnvConnection: full, queue.EnvQueueServiceURI: "https://a.example.com"},
			queue: "revoke-requests", configured: true, want: queue.Config{ConnectionString: full, Queue: "revoke-requests"}},
		{name: "keys in any case", env: map[string]string{queue.EnvConnection: "accountname=contosorevoke;ACCOUNTKEY=" + testKey}, queue: "revoke-requests",
			configured: true, want: queue.Config{ConnectionString: "accountname=contosorevoke;ACCOUNTKEY=" + testKey, Queue: "revoke-requests"}},

		{name: "not key=value", env: map[string]string{queue.EnvConnection: "just-a-key"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "no credential", env: map[string]string{queue.EnvConnection: "AccountName=contosorevoke"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "key without account", env: map[string]string{queue.EnvConnection: "AccountKey=" + testKey}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "key not base64", env: map[string]string{queue.EnvConnection: "AccountName=contosorevoke;AccountKey=not*base64"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "key and SAS", env: map[string]string{queue.EnvConnection: full + ";SharedAccessSignature=sig=x"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "duplicate key", env: map[string]string{queue.EnvConnection: full + ";accountname=other"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "bad protocol", env: map[string]string{queue.EnvConnection: "DefaultEndpointsProtocol=ftp;AccountName=contosorevoke;AccountKey=" + testKey}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "bad account name", env: map[string]string{queue.EnvConnection: "AccountName=Contoso_Revoke;AccountKey=" + testKey}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "bad endpoint", env: map[string]string{queue.EnvConnection: "AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=contoso"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "endpoint with a query", env: map[string]string{queue.EnvConnection: "AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=https://x.example.com/?sig=1"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "development storage false", env: map[string]string{queue.EnvConnection: "UseDevelopmentStorage=false"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "development storage with more", env: map[string]string{queue.EnvConnection: "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://x"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "service URI over http", env: map[string]string{queue.EnvQueueServiceURI: "http://contoso.queue.core.windows.net"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "service URI with SAS", env: map[string]string{queue.EnvQueueServiceURI: "https://contoso.queue.core.windows.net/?sig=abc"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "service URI not a URL", env: map[string]string{queue.EnvQueueServiceURI: "contoso"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "service URI with user info", env: map[string]string{queue.EnvQueueServiceURI: "https://u:p@contoso.queue.core.windows.net"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "account name with capitals", env: map[string]string{queue.EnvAccountName: "Contoso"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "account name too short", env: map[string]string{queue.EnvAccountName: "ab"}, queue: "revoke-requests", configured: true, wantErr: true},
		{name: "queue name empty", env: map[string]string{queue.EnvConnection: full}, queue: "", configured: true, wantErr: true},
		{name: "queue name with capitals", env: map[string]string{queue.EnvConnection: full}, queue: "Revoke", configured: true, wantErr: true},
		{name: "queue name with double hyphen", env: map[string]string{queue.EnvConnection: full}, queue: "revoke--requests", configured: true, wantErr: true},
		{name: "queue name ending in a hyphen", env: map[string]string{queue.EnvConnection: full}, queue: "revoke-", configured: true, wantErr: true},
		{name: "queue name leaves no room for -poison", env: map[string]string{queue.EnvConnection: full}, queue: strings.Repeat("q", 57), configured: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			got, configured, err := queue.FromEnv(getenv, tt.queue)
			if configured != tt.configured || (err != nil) != tt.wantErr {
				t.Fatalf("FromEnv(%v, %q) = %+v, %v, %v; want configured %v, error %v", tt.env, tt.queue, got, configured, err, tt.configured, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, queue.ErrConfig) {
					t.Errorf("FromEnv(%v) error %v; want ErrConfig", tt.env, err)
				}
				if strings.Contains(err.Error(), testKey) {
					t.Errorf("FromEnv error %q shows the account key", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("FromEnv(%v, %q) = %+v; want %+v", tt.env, tt.queue, got, tt.want)
			}
			if !configured {
				return
			}
			// Whatever FromEnv accepts, New must accept too (with the credential the caller adds).
			if got.ServiceURL != "" {
				got.Credential = fakeCredential{}
			}
			if _, err := queue.New(got); err != nil {
				t.Errorf("New(FromEnv(%v)) = %v; want nil", tt.env, err)
			}
		})
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
		{"both", queue.Config{ConnectionString: queue.DevelopmentStorage, ServiceURL: "https://a.example.com", Credential: fakeCredential{}, Queue: "revoke-requests"}},
		{"service URL without credential", queue.Config{ServiceURL: "https://a.example.com", Queue: "revoke-requests"}},
		{"service URL over http", queue.Config{ServiceURL: "http://a.example.com", Credential: fakeCredential{}, Queue: "revoke-requests"}},
		{"bad connection string", queue.Config{ConnectionString: "AccountName=x", Queue: "revoke-requests"}},
		{"no queue", queue.Config{ConnectionString: queue.DevelopmentStorage}},
		{"bad queue", queue.Config{ConnectionString: queue.DevelopmentStorage, Queue: "Revoke_Requests"}},
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
	c, err := queue.New(queue.Config{ConnectionString: "UseDevelopmentStorage=true", Queue: "revoke-requests"})
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
		ConnectionString: "QueueEndpoint=http://" + addr + "/devstoreaccount1;SharedAccessSignature=sv=2022-11-02&sig=" + sig,
		Queue:            "revoke-requests",
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
	c, err := queue.New(queue.Config{ConnectionString: queue.DevelopmentStorage, Queue: "revoke-requests"})
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
