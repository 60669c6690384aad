package cli

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// Whatever storage the settings accept, the queues and the state table are built from: the
// handler never starts with storage it cannot reach, and signs in the way the setting says.
func TestStorageFromSettings(t *testing.T) {
	t.Parallel()
	const key = "dGVzdCBrZXkgdGhhdCBtdXN0IG5vdCBsZWFr"
	tests := []struct {
		name     string
		env      map[string]string
		wantCred string // "none" (key or SAS), "app" (the app's identity), "own" (AzureWebJobsStorage__clientId)
	}{
		{"full connection string", map[string]string{settings.EnvStorage: "DefaultEndpointsProtocol=https;AccountName=contosorevoke;AccountKey=" + key + ";EndpointSuffix=core.windows.net"}, "none"},
		{"development storage", map[string]string{settings.EnvStorage: "UseDevelopmentStorage=true"}, "none"},
		{"shared access signature", map[string]string{settings.EnvStorage: "QueueEndpoint=https://contoso.queue.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abc", "STATE_STORE": "memory"}, "none"},
		{"service URIs, system-assigned identity", map[string]string{
			settings.EnvStorageQueueServiceURI: "https://contosorevoke.queue.core.windows.net",
			settings.EnvStorageTableServiceURI: "https://contosorevoke.table.core.windows.net"}, "app"},
		{"service URIs, user-assigned identity", map[string]string{
			settings.EnvStorageQueueServiceURI: "https://contosorevoke.queue.core.usgovcloudapi.net",
			settings.EnvStorageTableServiceURI: "https://contosorevoke.table.core.usgovcloudapi.net",
			settings.EnvStorageClientID:        "6e5e9c43-1b0a-4a4e-9d8f-3f0c1f7b2a11"}, "own"},
		{"account name", map[string]string{settings.EnvStorageAccountName: "contosorevoke", "REVOKE_QUEUE": "q-1"}, "app"},
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
			app := graphtest.NewCredential("app-token") // the app's identity; nothing asks it for a token
			cred, err := storageCredential(s.Storage, app)
			if err != nil {
				t.Fatal(err)
			}
			got := "own"
			switch {
			case cred == nil:
				got = "none"
			case cred == azcore.TokenCredential(app):
				got = "app"
			}
			if got != tt.wantCred {
				t.Errorf("storage credential = %s; want %s", got, tt.wantCred)
			}
			if _, err := queue.New(queueConfig(s.Storage, cred, s.RevokeQueue)); err != nil {
				t.Errorf("queue.New = %v; want nil", err)
			}
			if s.StateStore == settings.StateTable {
				cfg := tableConfig(config{Settings: s}, cred)
				if cfg.ServiceURL == "" || cfg.Table == "" {
					t.Errorf("tableConfig = %+v; want the table service and name", cfg)
				}
			}
		})
	}
}
