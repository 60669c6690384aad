package settings

import (
	"slices"
	"strings"
	"testing"
)

// A setting whose value is still a Key Vault reference stops the start with one problem naming
// it and saying that the platform could not resolve it, and no other problem about it.
func TestLoadUnresolvedKeyVaultReference(t *testing.T) {
	t.Parallel()
	const ref = "@Microsoft.KeyVault(SecretUri=https://kv-revoke.vault.azure.net/secrets/webhook-secret/)"
	tests := []struct {
		name string
		env  env
		mode Mode
	}{
		{"WEBHOOK_SECRETS", env{"WEBHOOK_SECRETS": ref}, Server},
		{"TELEMETRY_UPN_SALT", webhookOnly.with("TELEMETRY_REDACT_UPN", "true", "TELEMETRY_UPN_SALT", "@microsoft.keyvault(VaultName=kv-revoke;SecretName=upn-salt)"), Server},
		{"AzureWebJobsStorage", webhookOnly.with("AzureWebJobsStorage", ref), Server},
		{"APPLICATIONINSIGHTS_CONNECTION_STRING", env{"APPLICATIONINSIGHTS_CONNECTION_STRING": " " + ref}, Operator},
		// Not read by this configuration (no tenant), still reported.
		{"ENTRA_OPENID_CONFIG_URL", webhookOnly.with("ENTRA_OPENID_CONFIG_URL", ref), Server},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadWith(tt.env.get, Options{Mode: tt.mode})
			got := problems(err)
			if err == nil || len(got) != 1 {
				t.Fatalf("LoadWith(%v) problems = %q; want exactly one", tt.env, got)
			}
			if !strings.HasPrefix(got[0], tt.name+": is still a Key Vault reference") || !strings.Contains(got[0], "the platform could not resolve it") {
				t.Errorf("LoadWith(%v) problem = %q; want it to name %s and say the platform could not resolve it", tt.env, got[0], tt.name)
			}
		})
	}
}

func TestMisspelledSettingsWarn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		meant string // "" = no warning
	}{
		{"DRYRUN", "DRY_RUN"},
		{"dry_run", "DRY_RUN"},
		{"WEBHOOK_SECRET", "WEBHOOK_SECRETS"},
		{"ENTRA_AUDIENCES", "ENTRA_AUDIENCE"},
		{"ENTRA_TENANT", "ENTRA_TENANT_ID"},
		{"PROTECTED_USER", "PROTECTED_USERS"},
		{"ALLOWED_DOMAIN", "ALLOWED_DOMAINS"},
		{"VERIFY_REVOCATIONS", "VERIFY_REVOCATION"},
		{"IDEMPOTENCY_TLL", "IDEMPOTENCY_TTL"},
		{"STATE_STOR", "STATE_STORE"},
		{"TELEMETRY_SALT", "TELEMETRY_UPN_SALT"},
		{"APPLICATIONINSIGHTS_CONNECTIONSTRING", "APPLICATIONINSIGHTS_CONNECTION_STRING"},
		{"AzureWebJobsStorage__accountname", "AzureWebJobsStorage__accountName"},
		{"AzureWebJobsStorage__queueServiceURI", "AzureWebJobsStorage__queueServiceUri"},
		// What a Function App, App Service, DefaultAzureCredential and a shell set: never ours.
		{"AZURE_TENANT_ID", ""},
		{"AZURE_CLIENT_SECRET", ""},
		{"AZURE_FEDERATED_TOKEN_FILE", ""},
		{"AZURE_TOKEN_CREDENTIALS", ""},
		{"IDENTITY_ENDPOINT", ""},
		{"IDENTITY_HEADER", ""},
		{"MSI_SECRET", ""},
		{"FUNCTIONS_WORKER_RUNTIME", ""},
		{"FUNCTIONS_EXTENSION_VERSION", ""},
		{"WEBSITE_HOSTNAME", ""},
		{"WEBSITE_OWNER_NAME", ""},
		{"WEBSITE_AUTH_ENABLED", ""},
		{"AzureWebJobsScriptRoot", ""},
		{"AzureWebJobsSecretStorageType", ""},
		{"AzureWebJobsStorage__credential", ""},
		{"AzureWebJobsStorage__blobServiceUri", ""},
		{"APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""},
		{"APPINSIGHTS_INSTRUMENTATIONKEY", ""},
		{"PATH", ""}, {"HOME", ""}, {"HOST", ""}, {"USER", ""}, {"PWD", ""}, {"TERM", ""}, {"LANG", ""}, {"TZ", ""},
		// Ours, exactly.
		{"DRY_RUN", ""}, {"MAX_DEQUEUE_COUNT", ""}, {"PORT", ""}, {EnvHostMaxDequeueCount, ""},
	}
	for _, tt := range tests {
		s := mustLoadWith(t, webhookOnly, Options{Names: []string{tt.name}})
		switch {
		case tt.meant == "" && len(s.Warnings) != 0:
			t.Errorf("%s: Warnings = %q; want none", tt.name, s.Warnings)
		case tt.meant != "" && (len(s.Warnings) != 1 || !strings.HasPrefix(s.Warnings[0], tt.name+" is not a setting and is ignored: did you mean "+tt.meant+"?")):
			t.Errorf("%s: Warnings = %q; want one naming it and %s", tt.name, s.Warnings, tt.meant)
		}
	}
}

// A warning names the variable, never its value.
func TestMisspelledSettingsHideValues(t *testing.T) {
	t.Parallel()
	e := webhookOnly.with("WEBHOOK_SECRET", "whsec_SecretValueNeverShown", "DRYRUN", "true")
	s := mustLoadWith(t, e, Options{Names: []string{"WEBHOOK_SECRETS", "WEBHOOK_SECRET", "DRYRUN"}})
	if len(s.Warnings) != 2 || slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, "SecretValue") }) {
		t.Errorf("Warnings = %q; want two, without values", s.Warnings)
	}
}

func mustLoadWith(t *testing.T, e env, opts Options) Settings {
	t.Helper()
	s, err := LoadWith(e.get, opts)
	if err != nil {
		t.Fatalf("LoadWith(%v) error = %v; want nil", e, err)
	}
	return s
}
