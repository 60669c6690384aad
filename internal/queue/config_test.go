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
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// A syntactically valid account key; it opens nothing. Tests check that it never shows in errors.
const testKey = "dGVzdCBrZXkgdGhhdCBtdXN0IG5vdCBsZWFr"

// Whatever storage the settings accept, New accepts: the handler never starts with a queue it
// cannot build.
func TestConfigFor(t *testing.T) {
	t.Parallel()
	full := "DefaultEndpointsProtocol=https;AccountName=contosorevoke;AccountKey=" + testKey + ";EndpointSuffix=core.windows.net"
	tests := []struct {
		name string
		env  map[string]string
		want queue.Config
	}{
		{name: "full connection string", env: map[string]string{queue.EnvConnection: full}, want: queue.Config{
			ConnectionString: "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=https://contosorevoke.queue.core.windows.net;TableEndpoint=https://contosorevoke.table.core.windows.net;",
			Queue:            "revoke-requests"}},
		{name: "development storage", env: map[string]string{queue.EnvConnection: "UseDevelopmentStorage=true"}, want: queue.Config{
			ConnectionString: "DefaultEndpointsProtocol=http;EndpointSuffix=core.windows.net;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;",
			Queue:            "revoke-requests"}},
		{name: "shared access signature", env: map[string]string{queue.EnvConnection: "QueueEndpoint=https://contoso.queue.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abc", "STATE_STORE": "memory"},
			want: queue.Config{ConnectionString: "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;SharedAccessSignature=sv=2022-11-02&sig=abc;QueueEndpoint=https://contoso.queue.core.windows.net;", Queue: "revoke-requests"}},
		{name: "queue service URI with a user-assigned identity", env: map[string]string{
			settings.EnvStorageQueueServiceURI: "https://contosorevoke.queue.core.usgovcloudapi.net", settings.EnvStorageClientID: "6e5e9c43-1b0a-4a4e-9d8f-3f0c1f7b2a11"},
			want: queue.Config{ServiceURL: "https://contosorevoke.queue.core.usgovcloudapi.net", ClientID: "6e5e9c43-1b0a-4a4e-9d8f-3f0c1f7b2a11", Queue: "revoke-requests"}},
		{name: "account name", env: map[string]string{settings.EnvStorageAccountName: "contosorevoke", "REVOKE_QUEUE": "q-1"},
			want: queue.Config{ServiceURL: "https://contosorevoke.queue.core.windows.net", Queue: "q-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
			for k, v := range tt.env {
				env[k] = v
			}
			s, err := settings.Load(func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("settings.Load(%v) = %v", tt.env, err)
			}
			got := queue.ConfigFor(s.Storage, s.RevokeQueue)
			if got != tt.want {
				t.Errorf("ConfigFor(Load(%v)) = %+v; want %+v", tt.env, got, tt.want)
			}
			if got.ServiceURL != "" {
				got.Credential = fakeCredential{}
			}
			if _, err := queue.New(got); err != nil {
				t.Errorf("New(%+v) = %v; want nil", got, err)
			}
		})
	}
}

func TestNewConnectionStrings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		conn    string
		wantErr bool
	}{
		{"UseDevelopmentStorage=true", false},
		{queue.DevelopmentStorage, false},
		{"accountname=contosorevoke;ACCOUNTKEY=" + testKey, false},
		{"just-a-key", true},
		{"AccountName=contosorevoke", true},
		{"AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=https://x.example.com/?sig=1", true},
		{"DefaultEndpointsProtocol=http;AccountName=contosorevoke;AccountKey=" + testKey, true},
	}
	for _, tt := range tests {
		_, err := queue.New(queue.Config{ConnectionString: tt.conn, Queue: "revoke-requests"})
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q) = %v; want error %v", tt.conn, err, tt.wantErr)
		}
		if err != nil && (!errors.Is(err, queue.ErrConfig) || strings.Contains(err.Error(), testKey)) {
			t.Errorf("New(%q) error %v; want ErrConfig without the key", tt.conn, err)
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
