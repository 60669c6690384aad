package settings

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testSecret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secondSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=" // "second-secret-for-rotation"
	tenantID     = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID     = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
)

// env is a map-backed getenv, so that tests run in parallel without touching the process.
type env map[string]string

func (e env) get(name string) string { return e[name] }

// with returns a copy of e with kv (name, value, name, value, ...) set.
func (e env) with(kv ...string) env {
	out := maps.Clone(e)
	if out == nil {
		out = env{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// webhookOnly is the smallest configuration that lets a caller in.
var webhookOnly = env{"WEBHOOK_SECRETS": testSecret}

func mustLoad(t *testing.T, e env) Settings {
	t.Helper()
	s, err := Load(e.get)
	if err != nil {
		t.Fatalf("Load(%v) error = %v; want nil", e, err)
	}
	return s
}

// problems returns the separate messages of Load's joined error.
func problems(err error) []string {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range joined.Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

// docSetting is one row of a settings table in docs/settings.md.
type docSetting struct {
	Name, Default   string
	Secret, Retired bool
}

// docTables reads the tables of docs/settings.md, by the heading above each.
func docTables(t *testing.T) map[string][]docSetting {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "settings.md"))
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]docSetting{}
	heading := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			heading = h
			continue
		}
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| ") || len(cells) != 5 || strings.TrimSpace(cells[1]) == "name" {
			continue
		}
		name, def, meaning := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])
		var d docSetting
		name, d.Retired = strings.CutPrefix(name, "*(retired)* ")
		d.Name = strings.Trim(name, "`")
		if def != "—" {
			d.Default = strings.Trim(def, "`")
		}
		d.Secret = strings.HasPrefix(meaning, "**Secret.**")
		tables[heading] = append(tables[heading], d)
	}
	return tables
}

// Table and Platform are the documented settings, in the documented order, with the documented
// defaults: docs/settings.md is the reference, and code that drifts from it fails here.
func TestTableMatchesTheDocumentedSettings(t *testing.T) {
	t.Parallel()
	docs := docTables(t)
	for heading, table := range map[string][]Setting{"The handler's settings": Table, "Set by the platform": Platform} {
		var got []docSetting
		for _, s := range table {
			got = append(got, docSetting(s))
		}
		if want := docs[heading]; !reflect.DeepEqual(got, want) {
			t.Errorf("settings = %+v;\nwant the table under %q in docs/settings.md: %+v", got, heading, want)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, webhookOnly)
	checks := []struct {
		name      string
		got, want any
	}{
		{"WebhookSecrets", s.WebhookSecrets, []string{testSecret}},
		{"Keys.Len", s.Keys.Len(), 1},
		{"WebhookTolerance", s.WebhookTolerance, 5 * time.Minute},
		{"EntraTenantID", s.EntraTenantID, ""},
		{"EntraAudiences", s.EntraAudiences, []string(nil)},
		{"EntraRequiredRole", s.EntraRequiredRole, "Sessions.Revoke"},
		{"EntraAllowedClients", s.EntraAllowedClients, []string(nil)},
		{"GraphBaseURL", s.GraphBaseURL.String(), "https://graph.microsoft.com/v1.0"},
		{"AzureClientID", s.AzureClientID, ""},
		{"ProtectedUsers", s.ProtectedUsers, []string(nil)},
		{"AllowedDomains", s.AllowedDomains, []string(nil)},
		{"DryRun", s.DryRun, false},
		{"VerifyRevocation", s.VerifyRevocation, false},
		{"GraphConcurrency", s.GraphConcurrency, 8},
		{"MaxRevocationsPerMinute", s.MaxRevocationsPerMinute, 600},
		{"IdempotencyTTL", s.IdempotencyTTL, 24 * time.Hour},
		{"StateStore", s.StateStore, "memory"},
		{"StateTable", s.StateTable, "revokestate"},
		{"PublicBaseURL", s.PublicBaseURL, (*url.URL)(nil)},
		{"RevokeQueue", s.RevokeQueue, "revoke-requests"},
		{"QueueAllowUnsigned", s.QueueAllowUnsigned, false},
		{"QueueSignatureMaxAge", s.QueueSignatureMaxAge, 24 * time.Hour},
		{"MaxDequeueCount", s.MaxDequeueCount, 5},
		{"AppInsightsConnectionString", s.AppInsightsConnectionString, ""},
		{"TelemetryRedactUPN", s.TelemetryRedactUPN, false},
		{"TelemetryUPNSalt", s.TelemetryUPNSalt, ""},
		{"Warnings", s.Warnings, []string(nil)},
		{"Addr", s.Addr, ":8080"},
		{"WebhookEnabled", s.WebhookEnabled(), true},
		{"EntraEnabled", s.EntraEnabled(), false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("Load(%v).%s = %#v; want %#v", webhookOnly, c.name, c.got, c.want)
		}
	}

	entra := env{"ENTRA_TENANT_ID": tenantID, "ENTRA_AUDIENCE": "api://entra-revoke"}
	s = mustLoad(t, entra)
	wantURL := "https://login.microsoftonline.com/" + tenantID + "/v2.0/.well-known/openid-configuration"
	if s.EntraOpenIDConfigURL != wantURL {
		t.Errorf("Load(%v).EntraOpenIDConfigURL = %q; want %q", entra, s.EntraOpenIDConfigURL, wantURL)
	}
}

// Setting any contract default explicitly must give exactly what leaving it unset gives: the Table's
// defaults and the parser agree.
func TestLoadExplicitDefaults(t *testing.T) {
	t.Parallel()
	base := webhookOnly.with("ENTRA_TENANT_ID", tenantID, "ENTRA_AUDIENCE", "api://entra-revoke")
	want := mustLoad(t, base)
	for _, set := range Table {
		if set.Default == "" {
			continue
		}
		e := base.with(set.Name, set.Default)
		got := mustLoad(t, e)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load with %s=%q = %+v; want the unset result %+v", set.Name, set.Default, got, want)
		}
		// Blank counts as unset: App Service keeps settings that were emptied.
		e = base.with(set.Name, "  ")
		if got := mustLoad(t, e); !reflect.DeepEqual(got, want) {
			t.Errorf("Load with %s blank = %+v; want the unset result %+v", set.Name, got, want)
		}
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	e := env{
		"WEBHOOK_SECRETS":                       " " + testSecret + " , " + secondSecret + " ",
		"WEBHOOK_TOLERANCE":                     "90s",
		"ENTRA_TENANT_ID":                       tenantID,
		"ENTRA_AUDIENCE":                        "api://entra-revoke, " + clientID,
		"ENTRA_REQUIRED_ROLE":                   "Revoke.All",
		"ENTRA_ALLOWED_CLIENTS":                 clientID + ";" + strings.ToUpper(tenantID),
		"ENTRA_OPENID_CONFIG_URL":               "https://login.microsoftonline.us/{tenant}/v2.0/.well-known/openid-configuration",
		"GRAPH_BASE_URL":                        "https://graph.microsoft.us/v1.0",
		"AZURE_CLIENT_ID":                       clientID,
		"PROTECTED_USERS":                       "breakglass@contoso.com, " + tenantID,
		"ALLOWED_DOMAINS":                       "Contoso.COM @fabrikam.com",
		"DRY_RUN":                               "true",
		"VERIFY_REVOCATION":                     "1",
		"GRAPH_CONCURRENCY":                     "16",
		"MAX_REVOCATIONS_PER_MINUTE":            "0",
		"IDEMPOTENCY_TTL":                       "1h",
		"STATE_STORE":                           "Memory",
		"STATE_TABLE":                           "RevokeState2",
		"PUBLIC_BASE_URL":                       "https://revoke.contoso.com/gateway/",
		"REVOKE_QUEUE":                          "revoke-2",
		"AzureWebJobsStorage":                   "UseDevelopmentStorage=true",
		"QUEUE_ALLOW_UNSIGNED":                  "TRUE",
		"FUNCTIONS_CUSTOMHANDLER_PORT":          "34567",
		"QUEUE_SIGNATURE_MAX_AGE":               "48h",
		EnvHostMaxDequeueCount:                  "10",
		"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
		"TELEMETRY_REDACT_UPN":                  "true",
		"TELEMETRY_UPN_SALT":                    "pepper-pepper-pepper",
		"WEBSITE_SITE_NAME":                     "revoke-prod",
		"WEBSITE_INSTANCE_ID":                   "abc123",
	}
	s := mustLoad(t, e)
	checks := []struct {
		name      string
		got, want any
	}{
		{"WebhookSecrets", s.WebhookSecrets, []string{testSecret, secondSecret}},
		{"Keys.Len", s.Keys.Len(), 2},
		{"WebhookTolerance", s.WebhookTolerance, 90 * time.Second},
		{"EntraTenantID", s.EntraTenantID, tenantID},
		{"EntraAudiences", s.EntraAudiences, []string{"api://entra-revoke", clientID}},
		{"EntraRequiredRole", s.EntraRequiredRole, "Revoke.All"},
		{"EntraAllowedClients", s.EntraAllowedClients, []string{clientID, strings.ToUpper(tenantID)}},
		{"EntraOpenIDConfigURL", s.EntraOpenIDConfigURL, "https://login.microsoftonline.us/" + tenantID + "/v2.0/.well-known/openid-configuration"},
		{"GraphBaseURL", s.GraphBaseURL.String(), "https://graph.microsoft.us/v1.0"},
		{"AzureClientID", s.AzureClientID, clientID},
		{"ProtectedUsers", s.ProtectedUsers, []string{"breakglass@contoso.com", tenantID}},
		{"AllowedDomains", s.AllowedDomains, []string{"contoso.com", "fabrikam.com"}},
		{"DryRun", s.DryRun, true},
		{"VerifyRevocation", s.VerifyRevocation, true},
		{"GraphConcurrency", s.GraphConcurrency, 16},
		{"MaxRevocationsPerMinute", s.MaxRevocationsPerMinute, 0},
		{"IdempotencyTTL", s.IdempotencyTTL, time.Hour},
		{"StateStore", s.StateStore, "memory"},
		{"StateTable", s.StateTable, "RevokeState2"},
		{"PublicBaseURL", s.PublicBaseURL.String(), "https://revoke.contoso.com/gateway"},
		{"RevokeQueue", s.RevokeQueue, "revoke-2"},
		{"QueueAllowUnsigned", s.QueueAllowUnsigned, true},
		{"QueueSignatureMaxAge", s.QueueSignatureMaxAge, 48 * time.Hour},
		{"MaxDequeueCount", s.MaxDequeueCount, 10},
		{"AppInsightsConnectionString", s.AppInsightsConnectionString, "InstrumentationKey=00000000-0000-0000-0000-000000000000"},
		{"TelemetryRedactUPN", s.TelemetryRedactUPN, true},
		{"TelemetryUPNSalt", s.TelemetryUPNSalt, "pepper-pepper-pepper"},
		{"Addr", s.Addr, "127.0.0.1:34567"},
		{"SiteName", s.SiteName, "revoke-prod"},
		{"InstanceName", s.InstanceName, "abc123"},
		{"WebhookEnabled", s.WebhookEnabled(), true},
		{"EntraEnabled", s.EntraEnabled(), true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("Load(...).%s = %#v; want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadAuthentication(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      env
		wantErr  string // substring of the error; "" means success
		webhook  bool
		entraOut bool
	}{
		{"webhook only", webhookOnly, "", true, false},
		{"entra only", env{"ENTRA_TENANT_ID": tenantID, "ENTRA_AUDIENCE": clientID}, "", false, true},
		{"both", webhookOnly.with("ENTRA_TENANT_ID", tenantID, "ENTRA_AUDIENCE", clientID), "", true, true},
		{"neither", env{}, "no caller can authenticate", false, false},
		{"only separators in WEBHOOK_SECRETS", env{"WEBHOOK_SECRETS": " , ,"}, "no caller can authenticate", false, false},
		{"blank everything", env{"WEBHOOK_SECRETS": " ", "ENTRA_TENANT_ID": "\t"}, "no caller can authenticate", false, false},
		{"tenant without audience", env{"ENTRA_TENANT_ID": tenantID}, "ENTRA_AUDIENCE: is required with ENTRA_TENANT_ID", false, false},
		{"tenant with blank audience list", env{"ENTRA_TENANT_ID": tenantID, "ENTRA_AUDIENCE": " , "}, "ENTRA_AUDIENCE: is required with ENTRA_TENANT_ID", false, false},
		{"tenant without audience, webhook set", webhookOnly.with("ENTRA_TENANT_ID", tenantID), "ENTRA_AUDIENCE: is required with ENTRA_TENANT_ID", false, false},
		{"audience without tenant", env{"ENTRA_AUDIENCE": clientID}, "ENTRA_TENANT_ID: is required with ENTRA_AUDIENCE", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Load(tt.env.get)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load(%v) error = %v; want one containing %q", tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%v) error = %v; want nil", tt.env, err)
			}
			if s.WebhookEnabled() != tt.webhook || s.EntraEnabled() != tt.entraOut {
				t.Errorf("Load(%v): WebhookEnabled, EntraEnabled = %v, %v; want %v, %v", tt.env, s.WebhookEnabled(), s.EntraEnabled(), tt.webhook, tt.entraOut)
			}
		})
	}
}

// Every bad value is reported with the setting's name, so that the operator knows what to fix.
func TestLoadBadValues(t *testing.T) {
	t.Parallel()
	base := webhookOnly.with("ENTRA_TENANT_ID", tenantID, "ENTRA_AUDIENCE", clientID)
	tests := []struct {
		name, value string
	}{
		{"WEBHOOK_SECRETS", "not-a-secret"},
		{"WEBHOOK_SECRETS", "whsec_"},
		{"WEBHOOK_SECRETS", "whsec_!!!not-base64!!!"},
		{"WEBHOOK_SECRETS", testSecret + ",whsec_"},
		{"WEBHOOK_SECRETS", "whsec_=="},
		{"QUEUE_SECRETS", "not-a-secret"},
		{"QUEUE_SECRETS", "whsec_c2Vjb25kIHNlY3JldA=="}, // 13 bytes
		{"QUEUE_SECRETS", secondSecret + ",whsec_"},
		{"WEBHOOK_TOLERANCE", "5"},
		{"WEBHOOK_TOLERANCE", "-5m"},
		{"WEBHOOK_TOLERANCE", "0s"},
		{"WEBHOOK_TOLERANCE", "five minutes"},
		{"ENTRA_TENANT_ID", "contoso.onmicrosoft.com"},
		{"ENTRA_ALLOWED_CLIENTS", clientID + ",not-a-guid"},
		{"ENTRA_OPENID_CONFIG_URL", "http://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"},
		{"ENTRA_OPENID_CONFIG_URL", "/{tenant}/v2.0/.well-known/openid-configuration"},
		{"ENTRA_OPENID_CONFIG_URL", "https://login.example.com/x?tenant={tenant}"},
		{"GRAPH_BASE_URL", "http://graph.microsoft.com/v1.0"},
		{"GRAPH_BASE_URL", "http://10.0.0.1/v1.0"},
		{"GRAPH_BASE_URL", "http://localhost.example.com/v1.0"},
		{"GRAPH_BASE_URL", "http://127.0.0.1.nip.io/v1.0"},
		{"GRAPH_BASE_URL", "ftp://graph.microsoft.com/v1.0"},
		{"GRAPH_BASE_URL", "graph.microsoft.com/v1.0"},
		{"GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0#frag"},
		{"GRAPH_BASE_URL", "https://user@graph.microsoft.com/v1.0"},
		{"GRAPH_BASE_URL", "https://graph.microsoft.com:bad/v1.0"},
		{"AZURE_CLIENT_ID", "my-identity"},
		{"PROTECTED_USERS", "breakglass@contoso.com,break glass"},
		{"ALLOWED_DOMAINS", "contoso.com,localhost"},
		{"ALLOWED_DOMAINS", "*.contoso.com"},
		{"DRY_RUN", "yes"},
		{"VERIFY_REVOCATION", "on"},
		{"GRAPH_CONCURRENCY", "0"},
		{"GRAPH_CONCURRENCY", "-1"},
		{"GRAPH_CONCURRENCY", "eight"},
		{"GRAPH_CONCURRENCY", "1.5"},
		{"GRAPH_CONCURRENCY", "100000"},
		{"MAX_REVOCATIONS_PER_MINUTE", "-1"},
		{"MAX_REVOCATIONS_PER_MINUTE", "1e3"},
		{"MAX_REVOCATIONS_PER_MINUTE", "600/min"},
		{"IDEMPOTENCY_TTL", "600"},
		{"IDEMPOTENCY_TTL", "-10m"},
		{"REVOKE_QUEUE", "Revoke-Requests"},
		{"REVOKE_QUEUE", "revoke_requests"},
		{"REVOKE_QUEUE", "ab"},
		{"REVOKE_QUEUE", "revoke--requests"},
		{"REVOKE_QUEUE", "-revoke"},
		{"REVOKE_QUEUE", "revoke-"},
		{"REVOKE_QUEUE", strings.Repeat("q", 57)},
		{"QUEUE_ALLOW_UNSIGNED", "yes"},
		{"QUEUE_SIGNATURE_MAX_AGE", "1d"},
		{"WEBHOOK_SECRETS", "whsec_c2Vjb25kIHNlY3JldA=="},               // 13 bytes
		{"WEBHOOK_SECRETS", testSecret + ",whsec_c2Vjb25kIHNlY3JldA=="}, // a short second key
		{"STATE_STORE", "shared"},
		{"STATE_STORE", "table"}, // without storage
		{"STATE_TABLE", "1revoke"},
		{"STATE_TABLE", "rs"},
		{"STATE_TABLE", "revoke-state"},
		{"STATE_TABLE", "tables"},
		{"STATE_TABLE", strings.Repeat("t", 64)},
		{"PUBLIC_BASE_URL", "http://revoke.contoso.com"},
		{"PUBLIC_BASE_URL", "revoke.contoso.com"},
		{"PUBLIC_BASE_URL", "https://revoke.contoso.com/?code=x"},
		{"PUBLIC_BASE_URL", "/api"},
		{"MAX_DEQUEUE_COUNT", "0"},
		{"MAX_DEQUEUE_COUNT", "five"},
		{"MAX_DEQUEUE_COUNT", "10"}, // the host says 5
		{EnvHostMaxDequeueCount, "0"},
		{EnvHostMaxDequeueCount, "five"},
		{"QUEUE_ALLOW_UNSIGNED", "true"}, // off the Functions host
		{"TELEMETRY_REDACT_UPN", "2"},
		{"TELEMETRY_UPN_SALT", "too-short-salt"},
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "http"},
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "70000"},
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "-1"},
		{"PORT", "eighty"},
		{"PORT", "65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			e := base.with(tt.name, tt.value)
			_, err := Load(e.get)
			if err == nil {
				t.Fatalf("Load with %s=%q error = nil; want one naming %s", tt.name, tt.value, tt.name)
			}
			for _, p := range problems(err) {
				if !strings.HasPrefix(p, tt.name+": ") {
					t.Errorf("Load with %s=%q reports %q; want only problems starting %q", tt.name, tt.value, p, tt.name+": ")
				}
				if strings.Contains(p, "\n") {
					t.Errorf("Load with %s=%q reports %q; want one line per problem", tt.name, tt.value, p)
				}
			}
		})
	}
}

func TestLoadGoodValues(t *testing.T) {
	t.Parallel()
	base := webhookOnly.with("ENTRA_TENANT_ID", tenantID, "ENTRA_AUDIENCE", clientID)
	tests := []struct {
		name, value string
	}{
		{"GRAPH_BASE_URL", "http://127.0.0.1:8081/v1.0"},
		{"GRAPH_BASE_URL", "http://localhost:8081"},
		{"GRAPH_BASE_URL", "http://[::1]:8081/v1.0"},
		{"GRAPH_BASE_URL", "https://graph.microsoft.de/v1.0"},
		{"ENTRA_OPENID_CONFIG_URL", "http://127.0.0.1:9000/{tenant}/v2.0/.well-known/openid-configuration"},
		{"MAX_REVOCATIONS_PER_MINUTE", "0"},
		{"GRAPH_CONCURRENCY", "1"},
		{"REVOKE_QUEUE", "abc"},
		{"REVOKE_QUEUE", "q-1"},
		{"REVOKE_QUEUE", strings.Repeat("q", 56)},
		{"ALLOWED_DOMAINS", "@contoso.com"},
		{"PROTECTED_USERS", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"},
		{"QUEUE_SIGNATURE_MAX_AGE", "1h30m"},
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "0"},
		{"STATE_STORE", "MEMORY"},
		{"STATE_TABLE", "abc"},
		{"STATE_TABLE", "A" + strings.Repeat("9", 62)},
		{"PUBLIC_BASE_URL", "https://revoke.contoso.com"},
		{"PUBLIC_BASE_URL", "http://127.0.0.1:7071"},
		{"MAX_DEQUEUE_COUNT", "5"}, // retired, but agrees with the host
		{EnvHostMaxDequeueCount, "1"},
		{"TELEMETRY_UPN_SALT", "sixteen-chars-ok"},
	}
	for _, tt := range tests {
		e := base.with(tt.name, tt.value)
		if _, err := Load(e.get); err != nil {
			t.Errorf("Load with %s=%q error = %v; want nil", tt.name, tt.value, err)
		}
	}
}

// All problems are reported at once, so that the operator fixes them in one go.
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	e := webhookOnly.with(
		"WEBHOOK_TOLERANCE", "soon",
		"GRAPH_CONCURRENCY", "0",
		"MAX_REVOCATIONS_PER_MINUTE", "-1",
		"DRY_RUN", "maybe",
		"REVOKE_QUEUE", "Bad_Name",
		"GRAPH_BASE_URL", "http://graph.microsoft.com/v1.0",
	)
	_, err := Load(e.get)
	if err == nil {
		t.Fatalf("Load(%v) error = nil; want six problems", e)
	}
	got := problems(err)
	want := []string{"WEBHOOK_TOLERANCE", "GRAPH_CONCURRENCY", "MAX_REVOCATIONS_PER_MINUTE", "DRY_RUN", "REVOKE_QUEUE", "GRAPH_BASE_URL"}
	if len(got) != len(want) {
		t.Fatalf("Load(%v) reports %d problems %q; want %d", e, len(got), got, len(want))
	}
	for _, name := range want {
		if !strings.Contains(err.Error(), name+": ") {
			t.Errorf("Load(%v) error %q does not name %s", e, err, name)
		}
	}
}

func TestLoadListenAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  env
		want string
	}{
		{"custom handler port", env{"FUNCTIONS_CUSTOMHANDLER_PORT": "34567"}, "127.0.0.1:34567"},
		{"custom handler port wins over PORT", env{"FUNCTIONS_CUSTOMHANDLER_PORT": "34567", "PORT": "9000"}, "127.0.0.1:34567"},
		{"PORT", env{"PORT": "9000"}, ":9000"},
		{"blank custom handler port", env{"FUNCTIONS_CUSTOMHANDLER_PORT": " ", "PORT": "9000"}, ":9000"},
		{"default", env{}, ":8080"},
	}
	for _, tt := range tests {
		e := webhookOnly.with()
		maps.Copy(e, tt.env)
		if got := mustLoad(t, e).Addr; got != tt.want {
			t.Errorf("%s: Load(%v).Addr = %q; want %q", tt.name, e, got, tt.want)
		}
	}
}

// Secrets never appear in any output: not in Load's errors, however many other settings are
// wrong, and not when Settings is logged.
func TestSecretsNeverAppear(t *testing.T) {
	t.Parallel()
	const (
		hookKey    = "U2VjcmV0V2ViaG9va0tleTQyLVNlY3JldFdlYmhvb2tLZXk0Mg==" // base64 of "SecretWebhookKey42-SecretWebhookKey42"
		storageKey = "c3RvcmFnZS1hY2NvdW50LWtleS1TRUNSRVQ="                 // looks like an account key
		ikey       = "5ec2e7a1-0000-4000-8000-5ec2e7a15ec2"                 // instrumentation key
		badHook    = "whsec_" + hookKey + "!NotBase64!SecretPart"           // a broken secret must not be echoed
		salt       = "SaltThatMustNeverBePrinted"
	)
	secrets := []string{hookKey, storageKey, ikey, "NotBase64!SecretPart", "SecretWebhookKey42", salt}
	storage := "DefaultEndpointsProtocol=https;AccountName=revokestore;AccountKey=" + storageKey + ";EndpointSuffix=core.windows.net"
	insights := "InstrumentationKey=" + ikey + ";IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"

	good := env{
		"WEBHOOK_SECRETS":                       "whsec_" + hookKey,
		"AzureWebJobsStorage":                   storage,
		"APPLICATIONINSIGHTS_CONNECTION_STRING": insights,
		"TELEMETRY_REDACT_UPN":                  "true",
		"TELEMETRY_UPN_SALT":                    salt,
	}
	broken := []env{
		good.with("WEBHOOK_SECRETS", badHook),
		good.with("WEBHOOK_SECRETS", "whsec_"+hookKey+","+hookKey),
		good.with("WEBHOOK_SECRETS", hookKey),
		good.with("WEBHOOK_TOLERANCE", "x", "GRAPH_CONCURRENCY", "x", "ENTRA_AUDIENCE", "x", "DRY_RUN", "x"),
		good.with("WEBHOOK_SECRETS", badHook, "REVOKE_QUEUE", "X", "PORT", "x", "ENTRA_TENANT_ID", "x"),
		good.with("TELEMETRY_UPN_SALT", salt[:10]),
	}
	for _, e := range broken {
		_, err := Load(e.get)
		if err == nil {
			t.Fatalf("Load(%v) error = nil; want an error", e)
		}
		for _, secret := range secrets {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Load error %q contains the secret %q", err, secret)
			}
		}
	}

	s := mustLoad(t, good)
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("settings loaded", "settings", s)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("settings loaded", "settings", s)
	out := buf.String()
	if !strings.Contains(out, "graphBaseUrl") {
		t.Fatalf("logged settings %s; want LogValue's fields", out)
	}
	for _, secret := range append(secrets, "whsec_", "AccountKey", "InstrumentationKey") {
		if strings.Contains(out, secret) {
			t.Errorf("logged settings %s contain the secret %q", out, secret)
		}
	}
}

// A URL's user info is a credential: it must not be echoed in an error either.
func TestURLCredentialsNeverAppear(t *testing.T) {
	t.Parallel()
	values := []string{
		"https://admin:hunter2-password@graph.example.com/v1.0",
		"http://admin:hunter2-password@graph.example.com/v1.0",
		"https://graph.example.com/v1.0?sig=hunter2-password",
		"https://admin:hunter2-password@graph.example.com:port/v1.0", // does not even parse
	}
	for _, name := range []string{"GRAPH_BASE_URL", "ENTRA_OPENID_CONFIG_URL"} {
		for _, v := range values {
			e := webhookOnly.with("ENTRA_TENANT_ID", tenantID, "ENTRA_AUDIENCE", clientID, name, v)
			_, err := Load(e.get)
			if err == nil {
				t.Fatalf("Load with %s=%q error = nil; want an error", name, v)
			}
			if strings.Contains(err.Error(), "hunter2-password") {
				t.Errorf("Load with %s=%q: error %q contains the password", name, v, err)
			}
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Errorf("Load with %s=%q: error %q; want it to name %s", name, v, err, name)
			}
		}
	}
}

// mustHostJSON writes a host.json with content into a new app root and returns the directory.
func mustHostJSON(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The last delivery is the host's own maxDequeueCount: its app setting, else host.json, else 5.
func TestLoadMaxDequeueCount(t *testing.T) {
	t.Parallel()
	seven := mustHostJSON(t, `{"version":"2.0","extensions":{"queues":{"maxDequeueCount":7,"batchSize":4}}}`)
	tests := []struct {
		name        string
		appRoot     string
		env         env
		want        int
		wantErr     string // prefix of the only problem; "" for none
		wantWarning string
	}{
		{name: "no host.json read", want: 5},
		{name: "no host.json in the app root", appRoot: t.TempDir(), want: 5},
		{name: "host.json", appRoot: seven, want: 7},
		{name: "host.json, keys in another case", appRoot: mustHostJSON(t, `{"Extensions":{"Queues":{"MaxDequeueCount":3}}}`), want: 3},
		{name: "host.json without queues", appRoot: mustHostJSON(t, `{"version":"2.0"}`), want: 5},
		{name: "app setting overrides host.json", appRoot: seven, env: env{EnvHostMaxDequeueCount: "9"}, want: 9},
		{name: "retired setting agreeing", appRoot: seven, env: env{"MAX_DEQUEUE_COUNT": "7"}, want: 7, wantWarning: "MAX_DEQUEUE_COUNT is retired"},
		{name: "retired setting disagreeing with host.json", appRoot: seven, env: env{"MAX_DEQUEUE_COUNT": "5"},
			wantErr: "MAX_DEQUEUE_COUNT: is retired and disagrees with the host, which delivers a message at most 7 times"},
		{name: "retired setting disagreeing with the app setting", env: env{"MAX_DEQUEUE_COUNT": "5", EnvHostMaxDequeueCount: "6"},
			wantErr: "MAX_DEQUEUE_COUNT: is retired and disagrees with the host, which delivers a message at most 6 times (app setting"},
		{name: "host.json not JSON", appRoot: mustHostJSON(t, `{"extensions": // comment`), wantErr: "host.json: "},
		{name: "host.json value not a count", appRoot: mustHostJSON(t, `{"extensions":{"queues":{"maxDequeueCount":0}}}`), wantErr: "host.json: "},
		// The host's configuration reads every JSON value as text, so a quoted number works there.
		{name: "host.json value a quoted number", appRoot: mustHostJSON(t, `{"extensions":{"queues":{"maxDequeueCount":"4"}}}`), want: 4},
		{name: "host.json value a word", appRoot: mustHostJSON(t, `{"extensions":{"queues":{"maxDequeueCount":"five"}}}`), wantErr: "host.json: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := webhookOnly.with()
			maps.Copy(e, tt.env)
			s, err := LoadWith(e.get, Options{AppRoot: tt.appRoot})
			if tt.wantErr != "" {
				if err == nil || len(problems(err)) != 1 || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("LoadWith(%v, app root %s) error = %v; want one problem starting %q", tt.env, tt.appRoot, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadWith(%v, app root %s) error = %v; want nil", tt.env, tt.appRoot, err)
			}
			if s.MaxDequeueCount != tt.want {
				t.Errorf("LoadWith(%v, app root %s).MaxDequeueCount = %d; want %d", tt.env, tt.appRoot, s.MaxDequeueCount, tt.want)
			}
			if got := strings.Join(s.Warnings, "\n"); (tt.wantWarning == "") != (got == "") || !strings.Contains(got, tt.wantWarning) {
				t.Errorf("LoadWith(%v).Warnings = %q; want %q", tt.env, s.Warnings, tt.wantWarning)
			}
		})
	}
}

// Rules between settings: each names the setting to fix.
func TestLoadRulesBetweenSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     env
		mode    Mode
		wantErr string // the whole problem's prefix; "" for success
		check   func(s Settings) bool
	}{
		{name: "redaction needs a salt", env: webhookOnly.with("TELEMETRY_REDACT_UPN", "true"),
			wantErr: "TELEMETRY_UPN_SALT: is required with TELEMETRY_REDACT_UPN=true"},
		{name: "redaction needs a salt, also for operators", env: env{"TELEMETRY_REDACT_UPN": "true"}, mode: Operator,
			wantErr: "TELEMETRY_UPN_SALT: is required with TELEMETRY_REDACT_UPN=true"},
		{name: "a salt without redaction (hash-upn)", env: webhookOnly.with("TELEMETRY_UPN_SALT", "sixteen-chars-ok"),
			check: func(s Settings) bool { return s.TelemetryUPNSalt == "sixteen-chars-ok" && !s.TelemetryRedactUPN }},
		{name: "unsigned queue messages off the host", env: webhookOnly.with("QUEUE_ALLOW_UNSIGNED", "true", "PORT", "9000"),
			wantErr: "QUEUE_ALLOW_UNSIGNED: true is refused outside the Functions host"},
		{name: "unsigned queue messages on the host", env: webhookOnly.with("QUEUE_ALLOW_UNSIGNED", "true", "FUNCTIONS_CUSTOMHANDLER_PORT", "34567"),
			check: func(s Settings) bool { return s.QueueAllowUnsigned && s.Addr == "127.0.0.1:34567" }},
		{name: "unsigned queue messages: an operator serves nothing", env: env{"QUEUE_ALLOW_UNSIGNED": "true"}, mode: Operator,
			check: func(s Settings) bool { return s.QueueAllowUnsigned }},
		{name: "auto state with storage is the table", env: webhookOnly.with("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
			check: func(s Settings) bool { return s.StateStore == StateTable && s.StateTable == "revokestate" }},
		{name: "auto state with identity-based storage is the table", env: webhookOnly.with(EnvStorageAccountName, "contosorevoke"),
			check: func(s Settings) bool { return s.StateStore == StateTable }},
		{name: "memory state with storage", env: webhookOnly.with("AzureWebJobsStorage", "UseDevelopmentStorage=true", "STATE_STORE", "memory"),
			check: func(s Settings) bool { return s.StateStore == StateMemory }},
		{name: "table state without storage", env: webhookOnly.with("STATE_STORE", "table"),
			wantErr: "STATE_STORE: table needs AzureWebJobsStorage"},
		{name: "operators need no caller", env: env{}, mode: Operator,
			check: func(s Settings) bool { return !s.WebhookEnabled() && !s.EntraEnabled() }},
		{name: "operators: half an Entra configuration is still wrong", env: env{"ENTRA_TENANT_ID": tenantID}, mode: Operator,
			wantErr: "ENTRA_AUDIENCE: is required with ENTRA_TENANT_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := LoadWith(tt.env.get, Options{Mode: tt.mode})
			if tt.wantErr != "" {
				if err == nil || len(problems(err)) != 1 || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("LoadWith(%v, mode %d) error = %v; want one problem starting %q", tt.env, tt.mode, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadWith(%v, mode %d) error = %v; want nil", tt.env, tt.mode, err)
			}
			if !tt.check(s) {
				t.Errorf("LoadWith(%v, mode %d) = %+v; want the case's check to hold", tt.env, tt.mode, s)
			}
		})
	}
}

// QUEUE_SECRETS signs what the handler enqueues itself; unset, the first webhook secret does. It
// never lets an HTTP caller in: Entra callers alone still need ENTRA_*.
func TestQueueSigningKeys(t *testing.T) {
	t.Parallel()
	entraOnly := env{"ENTRA_TENANT_ID": tenantID, "ENTRA_AUDIENCE": clientID}
	tests := []struct {
		name     string
		env      env
		wantKeys int
		webhook  bool
	}{
		{"webhook secrets alone", webhookOnly, 1, true},
		{"queue secrets win", webhookOnly.with("QUEUE_SECRETS", secondSecret), 1, true},
		{"entra callers with a queue secret", entraOnly.with("QUEUE_SECRETS", secondSecret+","+testSecret), 2, false},
		{"entra callers alone", entraOnly, 0, false},
	}
	for _, tt := range tests {
		s, err := Load(tt.env.get)
		if err != nil {
			t.Fatalf("%s: Load = %v", tt.name, err)
		}
		if got := s.QueueSigningKeys().Len(); got != tt.wantKeys {
			t.Errorf("%s: QueueSigningKeys().Len() = %d; want %d", tt.name, got, tt.wantKeys)
		}
		if s.WebhookEnabled() != tt.webhook {
			t.Errorf("%s: WebhookEnabled() = %v; want %v (QUEUE_SECRETS authenticates no HTTP caller)", tt.name, s.WebhookEnabled(), tt.webhook)
		}
	}
	s, err := Load(webhookOnly.with("QUEUE_SECRETS", secondSecret).get)
	if err != nil {
		t.Fatal(err)
	}
	if out := fmt.Sprint(slog.AnyValue(s).Resolve()); strings.Contains(out, strings.TrimPrefix(secondSecret, "whsec_")) {
		t.Errorf("Settings logged with QUEUE_SECRETS = %s; want it redacted", out)
	}
}
