// Package infra_test checks the deployment assets offline: the ARM templates parse, declare what
// they use, create the expected resources with the expected hardening and role assignments, hold
// no secrets, refuse inconsistent parameters, and set exactly the application settings the
// handler knows, each from a parameter (rendered and fed to the handler's own settings parser);
// the Graph permission script passes shellcheck and, against a fake az, makes exactly the calls
// its dry run prints; the package script builds the zip the Functions host expects, reproducibly.
package infra_test

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const (
	deployPath  = "azuredeploy.json"
	alertsPath  = "alerts.json"
	grantScript = "grant-graph-permissions.sh"
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the fixtures' public test secret
)

// Built-in Azure role definition IDs the template may assign, and nothing broader.
var wantRoles = map[string]string{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Microsoft.Storage/storageAccounts", // Storage Blob Data Owner
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Microsoft.Storage/storageAccounts", // Storage Queue Data Contributor
	"0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Microsoft.Storage/storageAccounts", // Storage Table Data Contributor
	"4633458b-17de-408a-b874-0445c86b69e6": "Microsoft.KeyVault/vaults",         // Key Vault Secrets User
	"3913510d-42f4-4e42-8a64-420c390055eb": "Microsoft.Insights/components",     // Monitoring Metrics Publisher
}

// notParameters are the handler's settings the template does not take as parameters, and why.
// The next deployment of the template removes a value set by hand for any of them (it replaces
// all app settings), as docs/deploy.md says. Every name of settings.Table is either set by the
// template or listed here, so that a new setting forces a decision.
var notParameters = map[string]string{
	"AZURE_CLIENT_ID":       "the template uses the system-assigned identity",
	"AzureWebJobsStorage":   "storage is identity-based (AzureWebJobsStorage__accountName, __queueServiceUri, __tableServiceUri): a connection string would carry an account key",
	"QUEUE_ALLOW_UNSIGNED":  "queue messages stay signed (false): the queue trigger must not accept what anyone with queue access writes",
	"WATCH_QUEUE":           "left at its default, revoke-watch: the queue (and its -poison queue) the template creates for the sign-in checks",
	"CALLBACK_RETRY_DELAYS": "the documented retry schedule (1m,5m,30m,2h,8h); only tests shorten it",
}

// derivedSettings are the handler's settings the template sets from the deployment itself rather
// than from a parameter.
var derivedSettings = map[string]string{
	"APPLICATIONINSIGHTS_CONNECTION_STRING": "the template's Application Insights resource",
}

// keyVaultSecrets are the secret names the template's Key Vault references use, and the values
// the tests put in the environment in their place, as App Service does once it resolved them.
var keyVaultSecrets = map[string]string{
	"webhook-secrets":    testSecret,
	"queue-secrets":      "whsec_cXVldWUtc2VjcmV0LW9mLXRoZS10ZXN0cy0wMTIz", // 30 bytes
	"telemetry-upn-salt": "test-salt-0123456789abcdef",                     // at least 16 characters
	"callback-secrets":   testSecret,
}

// platformSetting reports whether an app setting belongs to the Functions platform rather than
// to the handler's settings (docs/settings.md).
func platformSetting(name string) bool {
	return strings.HasPrefix(name, "AzureWebJobsStorage__") || name == "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
}

// forbiddenOnFlex are settings Flex Consumption replaces with functionAppConfig, or that would
// defeat the template's design.
var forbiddenOnFlex = []string{
	"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME_VERSION",
	"WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
	"AzureWebJobsStorage", "APPINSIGHTS_INSTRUMENTATIONKEY",
}

func mustReadJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	return v
}

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: want a JSON object, got %T", what, v)
	}
	return m
}

func arr(t *testing.T, v any, what string) []any {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("%s: want a JSON array, got %T", what, v)
	}
	return a
}

// resources returns the template's resources of the given type.
func resources(t *testing.T, tmpl map[string]any, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range arr(t, tmpl["resources"], "resources") {
		r := obj(t, r, "resource")
		if strings.EqualFold(fmt.Sprint(r["type"]), typ) {
			out = append(out, r)
		}
	}
	return out
}

func only(t *testing.T, tmpl map[string]any, typ string) map[string]any {
	t.Helper()
	rs := resources(t, tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s; want 1", len(rs), typ)
	}
	return rs[0]
}

// walkStrings calls fn with the path and value of every string in v, keys included.
func walkStrings(v any, path string, fn func(path, s string)) {
	switch v := v.(type) {
	case string:
		fn(path, v)
	case map[string]any:
		for k, x := range v {
			fn(path+"/"+k+"(key)", k)
			walkStrings(x, path+"/"+k, fn)
		}
	case []any:
		for i, x := range v {
			walkStrings(x, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

var (
	paramRef     = regexp.MustCompile(`parameters\('([^']+)'\)`)
	varRef       = regexp.MustCompile(`variables\('([^']+)'\)`)
	secretShapes = []*regexp.Regexp{
		regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{8,}`),
		regexp.MustCompile(`(?i)AccountKey=`),
		regexp.MustCompile(`(?i)SharedAccessSignature|[?&]sig=`),
		regexp.MustCompile(`(?i)InstrumentationKey=[0-9a-f-]{8}`),
		regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`),
		regexp.MustCompile(`(?i)listKeys\(|listSecrets\(|listConnectionStrings\(`), // keys read at deployment would land in the site config
	}
)

// TestTemplatesDeclareAndHoldNoSecrets: both templates parse, every parameter and variable they
// use is declared (and every declared parameter is used), secure parameters have no default,
// and no string looks like a secret.
func TestTemplatesDeclareAndHoldNoSecrets(t *testing.T) {
	t.Parallel()
	for _, path := range []string{deployPath, alertsPath} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			tmpl := mustReadJSON(t, path)
			if s, _ := tmpl["$schema"].(string); !strings.Contains(s, "deploymentTemplate.json") {
				t.Errorf("$schema = %q; want a resource-group deployment template", s)
			}
			params := obj(t, tmpl["parameters"], "parameters")
			vars, _ := tmpl["variables"].(map[string]any)
			used := map[string]bool{}
			// A nested deployment evaluated in its own (inner) scope declares its own.
			inner := map[string]map[string]any{}
			for i, r := range arr(t, tmpl["resources"], "resources") {
				r := obj(t, r, "resource")
				if props, _ := r["properties"].(map[string]any); r["type"] == "Microsoft.Resources/deployments" && props["template"] != nil {
					if eo, _ := props["expressionEvaluationOptions"].(map[string]any); eo["scope"] == "Inner" {
						inner[fmt.Sprintf("/resources[%d]/properties/template/", i)] = obj(t, props["template"], "nested template")
					}
				}
			}
			walkStrings(tmpl, "", func(p, s string) {
				if !strings.HasPrefix(s, "[") || strings.HasPrefix(s, "[[") {
					return
				}
				params, vars, used := params, vars, used
				for prefix, it := range inner {
					if strings.HasPrefix(p, prefix) {
						params, _ = it["parameters"].(map[string]any)
						vars, _ = it["variables"].(map[string]any)
						used = map[string]bool{}
					}
				}
				for _, m := range paramRef.FindAllStringSubmatch(s, -1) {
					used[m[1]] = true
					if _, ok := params[m[1]]; !ok {
						t.Errorf("%s uses parameter %q, which is not declared", p, m[1])
					}
				}
				for _, m := range varRef.FindAllStringSubmatch(s, -1) {
					if _, ok := vars[m[1]]; !ok {
						t.Errorf("%s uses variable %q, which is not declared", p, m[1])
					}
				}
			})
			for name, p := range params {
				if !used[name] {
					t.Errorf("parameter %q is declared but never used", name)
				}
				p := obj(t, p, name)
				if typ := fmt.Sprint(p["type"]); strings.EqualFold(typ, "securestring") || strings.EqualFold(typ, "secureobject") {
					if d, ok := p["defaultValue"]; ok && d != "" {
						t.Errorf("secure parameter %q has a default value", name)
					}
				} else if regexp.MustCompile(`(?i)secret|password|key$`).MatchString(name) {
					t.Errorf("parameter %q sounds secret but has type %v; want securestring", name, p["type"])
				}
				if _, ok := p["metadata"]; !ok && name != "location" {
					t.Errorf("parameter %q has no metadata.description for the portal", name)
				}
			}
			walkStrings(tmpl, "", func(p, s string) {
				for _, re := range secretShapes {
					if re.MatchString(s) {
						t.Errorf("%s looks like a secret or reads one (%s): %q", p, re, s)
					}
				}
			})
			if outs, ok := tmpl["outputs"].(map[string]any); ok {
				for name, o := range outs {
					if typ := fmt.Sprint(obj(t, o, name)["type"]); strings.HasPrefix(strings.ToLower(typ), "secure") {
						continue
					}
					if regexp.MustCompile(`(?i)(key|secret|connectionstring|sas|token)s?$`).MatchString(name) {
						t.Errorf("output %q may expose a secret in the deployment history", name)
					}
				}
			}
		})
	}
}

// TestDeployTemplateResources checks the resources and their hardening.
func TestDeployTemplateResources(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, deployPath)
	c := newARM(t, tmpl, nil)

	plan := only(t, tmpl, "Microsoft.Web/serverfarms")
	sku := obj(t, plan["sku"], "plan sku")
	if sku["name"] != "FC1" || sku["tier"] != "FlexConsumption" || obj(t, plan["properties"], "plan")["reserved"] != true {
		t.Errorf("plan sku %v reserved %v; want FC1 FlexConsumption on Linux (reserved)", sku, obj(t, plan["properties"], "plan")["reserved"])
	}

	site := only(t, tmpl, "Microsoft.Web/sites")
	if kind := fmt.Sprint(site["kind"]); !strings.Contains(kind, "functionapp") || !strings.Contains(kind, "linux") {
		t.Errorf("site kind = %q; want a Linux function app", kind)
	}
	if id := obj(t, site["identity"], "identity"); id["type"] != "SystemAssigned" {
		t.Errorf("identity = %v; want SystemAssigned", id)
	}
	props := obj(t, site["properties"], "site properties")
	sc := obj(t, props["siteConfig"], "siteConfig")
	for k, want := range map[string]any{"minTlsVersion": "1.2", "scmMinTlsVersion": "1.2", "ftpsState": "Disabled"} {
		if sc[k] != want {
			t.Errorf("siteConfig.%s = %v; want %v", k, sc[k], want)
		}
	}
	if props["httpsOnly"] != true {
		t.Errorf("httpsOnly = %v; want true", props["httpsOnly"])
	}
	fac := obj(t, props["functionAppConfig"], "functionAppConfig")
	if rt := obj(t, fac["runtime"], "runtime"); rt["name"] != "custom" {
		t.Errorf("functionAppConfig.runtime = %v; want the custom handler runtime", rt)
	}
	dep := obj(t, obj(t, fac["deployment"], "deployment")["storage"], "deployment storage")
	if auth := obj(t, dep["authentication"], "deployment auth"); auth["type"] != "SystemAssignedIdentity" {
		t.Errorf("deployment storage authentication = %v; want SystemAssignedIdentity (no connection string)", auth)
	}
	if got := c.value(dep["value"]); !strings.HasPrefix(fmt.Sprint(got), "https://") {
		t.Errorf("deployment container = %v; want an https blob URL", got)
	}
	pubs := map[string]any{}
	for _, p := range resources(t, tmpl, "Microsoft.Web/sites/basicPublishingCredentialsPolicies") {
		name := fmt.Sprint(c.value(p["name"]))
		pubs[name[strings.LastIndex(name, "/")+1:]] = obj(t, p["properties"], name)["allow"]
	}
	if pubs["ftp"] != false || pubs["scm"] != false {
		t.Errorf("basic publishing credentials = %v; want ftp and scm both off", pubs)
	}

	st := obj(t, only(t, tmpl, "Microsoft.Storage/storageAccounts")["properties"], "storage properties")
	for k, want := range map[string]any{"allowSharedKeyAccess": false, "allowBlobPublicAccess": false,
		"minimumTlsVersion": "TLS1_2", "supportsHttpsTrafficOnly": true, "defaultToOAuthAuthentication": true} {
		if st[k] != want {
			t.Errorf("storage %s = %v; want %v", k, st[k], want)
		}
	}
	var queues []string
	for _, q := range resources(t, tmpl, "Microsoft.Storage/storageAccounts/queueServices/queues") {
		name := fmt.Sprint(c.value(q["name"]))
		queues = append(queues, name[strings.LastIndex(name, "/")+1:])
	}
	slices.Sort(queues)
	if want := []string{"revoke-callbacks", "revoke-callbacks-poison", "revoke-requests", "revoke-requests-poison", "revoke-watch", "revoke-watch-poison"}; !slices.Equal(queues, want) {
		t.Errorf("queues = %q; want %q", queues, want)
	}

	ai := obj(t, only(t, tmpl, "Microsoft.Insights/components")["properties"], "app insights properties")
	if ai["DisableLocalAuth"] != true {
		t.Errorf("Application Insights DisableLocalAuth = %v; want true", ai["DisableLocalAuth"])
	}
	ws := only(t, tmpl, "Microsoft.OperationalInsights/workspaces")
	if got, want := c.value(ai["WorkspaceResourceId"]), c.value(fmt.Sprintf("[resourceId('Microsoft.OperationalInsights/workspaces', '%s')]", c.value(ws["name"]))); got != want {
		t.Errorf("Application Insights workspace = %v; want the template's workspace %v", got, want)
	}
	kv := obj(t, only(t, tmpl, "Microsoft.KeyVault/vaults")["properties"], "key vault properties")
	if kv["enableRbacAuthorization"] != true || kv["enableSoftDelete"] != true {
		t.Errorf("Key Vault RBAC %v soft delete %v; want both on", kv["enableRbacAuthorization"], kv["enableSoftDelete"])
	}
}

// rolesDeployment returns the nested deployment that assigns the app identity's roles, and an
// evaluator for its inner template with the parameters the outer template gives it.
func rolesDeployment(t *testing.T, tmpl map[string]any, c *armContext) (map[string]any, *armContext) {
	t.Helper()
	for _, d := range resources(t, tmpl, "Microsoft.Resources/deployments") {
		if c.value(d["name"]) != "entra-revoke-roles" {
			continue
		}
		props := obj(t, d["properties"], "roles deployment")
		if obj(t, props["expressionEvaluationOptions"], "expressionEvaluationOptions")["scope"] != "Inner" {
			t.Errorf("the roles deployment is not evaluated in its own scope: the principal would not be known for the names")
		}
		inner := obj(t, props["template"], "roles template")
		values := map[string]any{}
		for name, v := range obj(t, c.value(props["parameters"]), "roles parameters") {
			values[name] = obj(t, v, name)["value"]
		}
		return inner, newARM(t, inner, values)
	}
	t.Fatal("no entra-revoke-roles deployment in the template")
	return nil, nil
}

// TestDeployTemplateRoleAssignments: exactly the data-plane roles, each on its resource, for the
// Function App's identity, with a name that includes that identity: a resource group deleted and
// deployed again (a new app, a new identity) gets new assignments instead of colliding with names
// Azure Resource Manager still remembers.
func TestDeployTemplateRoleAssignments(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, deployPath)
	c := newARM(t, tmpl, nil)
	if n := len(resources(t, tmpl, "Microsoft.Authorization/roleAssignments")); n != 0 {
		t.Errorf("%d role assignments outside the roles deployment; their names could not include the principal", n)
	}
	inner, ic := rolesDeployment(t, tmpl, c)
	principal := fmt.Sprint(c.value("[reference(variables('siteId'), '2024-04-01', 'full').identity.principalId]"))
	if got := ic.value("[parameters('principalId')]"); got != principal {
		t.Errorf("the roles deployment's principal = %v; want the Function App's identity %s", got, principal)
	}
	got := map[string]bool{}
	for _, ra := range resources(t, inner, "Microsoft.Authorization/roleAssignments") {
		p := obj(t, ra["properties"], "role assignment")
		def := fmt.Sprint(ic.value(p["roleDefinitionId"]))
		role := def[strings.LastIndex(def, "/")+1:]
		scopeType, ok := wantRoles[role]
		if !ok {
			t.Errorf("role assignment of %s: not one of the least-privilege roles %v", def, wantRoles)
			continue
		}
		got[role] = true
		if scope := fmt.Sprint(ic.value(ra["scope"])); !strings.HasPrefix(scope, scopeType+"/") {
			t.Errorf("role %s is assigned on %q; want a %s", role, scope, scopeType)
		}
		if p["principalId"] != "[parameters('principalId')]" || p["principalType"] != "ServicePrincipal" {
			t.Errorf("role %s principal = %v %v; want the identity given to the deployment, ServicePrincipal (avoids replication-delay failures)", role, p["principalId"], p["principalType"])
		}
		if name := fmt.Sprint(ra["name"]); !strings.Contains(name, "parameters('principalId')") {
			t.Errorf("role %s name %s does not include the principal", role, name)
		}
	}
	if len(got) != len(wantRoles) {
		t.Errorf("roles assigned %v; want all of %v", got, wantRoles)
	}
}

// appSettingsResource is the template's one Microsoft.Web/sites/config "appsettings" resource:
// the app settings, applied only after what they need (see TestDeployTemplateSettingsOrder).
func appSettingsResource(t *testing.T, tmpl map[string]any) map[string]any {
	t.Helper()
	r := only(t, tmpl, "Microsoft.Web/sites/config")
	if name := fmt.Sprint(r["name"]); !strings.HasSuffix(name, "'/appsettings')]") {
		t.Fatalf("sites/config resource %s; want the app's appsettings", name)
	}
	return r
}

// appSettings renders the Function App's settings for the given parameters.
func appSettings(t *testing.T, tmpl map[string]any, params map[string]any) (map[string]string, *armContext) {
	t.Helper()
	c := newARM(t, tmpl, params)
	return renderSettings(t, tmpl, c), c
}

// renderSettings renders the app settings with c.
func renderSettings(t *testing.T, tmpl map[string]any, c *armContext) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, raw := range obj(t, appSettingsResource(t, tmpl)["properties"], "appsettings properties") {
		if strings.HasPrefix(name, "[") {
			t.Fatalf("app setting name %v must be a literal", name)
		}
		v, ok := c.value(raw).(string)
		if !ok {
			t.Fatalf("app setting %s renders to %T, not a string", name, c.value(raw))
		}
		out[name] = v
	}
	return out
}

var keyVaultRef = regexp.MustCompile(`^@Microsoft\.KeyVault\(VaultName=([a-z0-9-]+);SecretName=([a-z0-9-]+)\)$`)

// dependsOnParameter reports whether a template expression uses a parameter, directly or through
// the variables it uses.
func dependsOnParameter(t *testing.T, tmpl map[string]any, expr string, seen map[string]bool) bool {
	t.Helper()
	if paramRef.MatchString(expr) {
		return true
	}
	vars, _ := tmpl["variables"].(map[string]any)
	for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		if v, ok := vars[m[1]].(string); ok && dependsOnParameter(t, tmpl, v, seen) {
			return true
		}
	}
	return false
}

// rawAppSettings returns the Function App's settings as written in the template.
func rawAppSettings(t *testing.T, tmpl map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, v := range obj(t, appSettingsResource(t, tmpl)["properties"], "appsettings properties") {
		out[name] = fmt.Sprint(v)
	}
	return out
}

// templateSecret returns the name (vault/secret) of the template's Key Vault secret resource
// called name, or fails.
func templateSecret(t *testing.T, tmpl map[string]any, c *armContext, name string) string {
	t.Helper()
	for _, r := range resources(t, tmpl, "Microsoft.KeyVault/vaults/secrets") {
		if full := fmt.Sprint(c.value(r["name"])); strings.HasSuffix(full, "/"+name) {
			return full
		}
	}
	t.Fatalf("the template creates no Key Vault secret %q", name)
	return ""
}

// TestDeployTemplateSettings compares the app settings with the handler's settings table: every
// handler setting the template sets comes from a parameter, so that a redeployment keeps what the
// operator chose; the rest is listed in notParameters. With the default parameters each renders
// to the handler's default.
func TestDeployTemplateSettings(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, deployPath)
	rendered, c := appSettings(t, tmpl, nil)
	raw := rawAppSettings(t, tmpl)

	table := map[string]settings.Setting{}
	for _, s := range settings.Table {
		table[s.Name] = s
	}
	for name := range rendered {
		if _, ok := table[name]; !ok && !platformSetting(name) {
			t.Errorf("the template sets %s, which the handler does not know (settings.Table) and which is not a platform setting", name)
		}
	}
	for _, name := range forbiddenOnFlex {
		if _, ok := rendered[name]; ok {
			t.Errorf("the template sets %s: not on Flex Consumption with identity-based storage", name)
		}
	}
	for _, s := range settings.Table {
		if s.Retired {
			continue // must not be set at all (checked below)
		}
		_, set := rendered[s.Name]
		_, left := notParameters[s.Name]
		switch {
		case set && left:
			t.Errorf("%s is set by the template and also listed in notParameters", s.Name)
		case !set && !left:
			t.Errorf("settings.Table has %s, which the template neither sets nor lists in notParameters: decide", s.Name)
		case set:
			if _, derived := derivedSettings[s.Name]; !derived && !dependsOnParameter(t, tmpl, raw[s.Name], map[string]bool{}) {
				t.Errorf("%s = %s does not come from a parameter: a value set by hand would be lost at the next deployment and the template offers no way to keep it", s.Name, raw[s.Name])
			}
		}
	}
	for name := range notParameters {
		if _, ok := table[name]; !ok {
			t.Errorf("notParameters lists %s, which is not a handler setting (settings.Table)", name)
		}
	}

	// With the default parameters every setting the template shares with the table renders to the
	// table's default, except DRY_RUN, which a new deployment starts with on.
	for name, v := range rendered {
		s, ok := table[name]
		if !ok || s.Secret {
			continue
		}
		want := s.Default
		if name == "DRY_RUN" {
			want = "true"
		}
		if v != want {
			t.Errorf("default deployment: %s = %q; want %q", name, v, want)
		}
	}

	// Identity-based storage (queue and table service URIs, as the handler and the host read them)
	// and Entra-authenticated telemetry.
	// Service URIs rather than __accountName, which Microsoft documents for the public cloud only:
	// each built from the cloud's own storage suffix.
	storage := fmt.Sprint(c.value("[variables('storageAccountName')]"))
	for _, cloud := range []struct{ name, suffix string }{
		{"AzureCloud", "core.windows.net"}, {"AzureUSGovernment", "core.usgovcloudapi.net"}, {"AzureChinaCloud", "core.chinacloudapi.cn"},
	} {
		cc := newARM(t, tmpl, nil)
		cc.cloud = map[string]any{"name": cloud.name, "suffixes": map[string]any{"storage": cloud.suffix}}
		got := renderSettings(t, tmpl, cc)
		for setting, want := range map[string]string{
			"AzureWebJobsStorage__blobServiceUri":  "https://" + storage + ".blob." + cloud.suffix,
			"AzureWebJobsStorage__queueServiceUri": "https://" + storage + ".queue." + cloud.suffix,
			"AzureWebJobsStorage__tableServiceUri": "https://" + storage + ".table." + cloud.suffix,
		} {
			if got[setting] != want {
				t.Errorf("%s: %s = %q; want %q (the template's storage account)", cloud.name, setting, got[setting], want)
			}
		}
		if v, ok := got["AzureWebJobsStorage__accountName"]; ok {
			t.Errorf("%s: AzureWebJobsStorage__accountName = %q; want it unset (public cloud only, by Microsoft's documentation)", cloud.name, v)
		}
	}
	var tables []string
	for _, r := range resources(t, tmpl, "Microsoft.Storage/storageAccounts/tableServices/tables") {
		tables = append(tables, fmt.Sprint(c.value(r["name"])))
	}
	if want := storage + "/default/" + rendered["STATE_TABLE"]; len(tables) != 1 || tables[0] != want {
		t.Errorf("tables = %q; want exactly the state table %q", tables, want)
	}
	if rendered["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] != "Authorization=AAD" {
		t.Errorf("APPLICATIONINSIGHTS_AUTHENTICATION_STRING = %q; want Authorization=AAD (the host's own telemetry)", rendered["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"])
	}
	if cs := rendered["APPLICATIONINSIGHTS_CONNECTION_STRING"]; !strings.Contains(cs, "InstrumentationKey=") || !strings.HasSuffix(cs, ";Authorization=AAD") {
		t.Errorf("APPLICATIONINSIGHTS_CONNECTION_STRING = %q; want the resource's connection string with Authorization=AAD (local auth is disabled)", cs)
	}

	// Key Vault references name the template's vault and secrets.
	vault := fmt.Sprint(c.value(only(t, tmpl, "Microsoft.KeyVault/vaults")["name"]))
	redacted, _ := appSettings(t, tmpl, map[string]any{"telemetryRedactUpn": true})
	for setting, secret := range map[string]string{"WEBHOOK_SECRETS": "webhook-secrets", "QUEUE_SECRETS": "queue-secrets", "TELEMETRY_UPN_SALT": "telemetry-upn-salt"} {
		m := keyVaultRef.FindStringSubmatch(redacted[setting])
		if m == nil {
			t.Errorf("%s = %q; want a Key Vault reference", setting, redacted[setting])
			continue
		}
		if got, want := m[1]+"/"+m[2], templateSecret(t, tmpl, c, secret); got != want || m[1] != vault {
			t.Errorf("%s refers to %s; want the template's secret %s in vault %s", setting, got, want, vault)
		}
	}
	if rendered["TELEMETRY_UPN_SALT"] != "" {
		t.Errorf("TELEMETRY_UPN_SALT = %q without redaction; want it unset, so that no secret must exist", rendered["TELEMETRY_UPN_SALT"])
	}

	// The last delivery of a queue message is the host's own maxDequeueCount (host.json, 5): the
	// template must not set a different one, nor the retired MAX_DEQUEUE_COUNT.
	hostJSON := mustReadJSON(t, filepath.Join(testenv.RepoRoot(t), "host.json"))
	queues := obj(t, obj(t, hostJSON["extensions"], "extensions")["queues"], "queues")
	if got := fmt.Sprint(queues["maxDequeueCount"]); got != "5" {
		t.Errorf("host.json maxDequeueCount = %s; want 5", got)
	}
	retired := []string{"AzureFunctionsJobHost__extensions__queues__maxDequeueCount"}
	for _, s := range settings.Table {
		if s.Retired {
			retired = append(retired, s.Name)
		}
	}
	if !slices.Contains(retired, "MAX_DEQUEUE_COUNT") {
		t.Errorf("settings.Table does not list MAX_DEQUEUE_COUNT as retired")
	}
	for _, name := range retired {
		if v, ok := rendered[name]; ok {
			t.Errorf("the template sets %s = %q; host.json's maxDequeueCount is the only source", name, v)
		}
	}
}

// loadRendered renders the app settings for params, resolves the Key Vault references as App
// Service does (every secret the template refers to exists), and loads them with the handler's
// own settings parser.
func loadRendered(t *testing.T, tmpl map[string]any, params map[string]any) (map[string]string, settings.Settings, error) {
	t.Helper()
	env, _ := appSettings(t, tmpl, params)
	for name, v := range env {
		if m := keyVaultRef.FindStringSubmatch(v); m != nil {
			secret, ok := keyVaultSecrets[m[2]]
			if !ok {
				t.Fatalf("%s refers to Key Vault secret %q, which the tests do not know", name, m[2])
			}
			env[name] = secret
		}
	}
	s, err := settings.Load(func(k string) string { return env[k] })
	return env, s, err
}

// TestDeployTemplateSettingsLoad renders the app settings for several parameter sets and loads
// them with settings.Load.
func TestDeployTemplateSettingsLoad(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, deployPath)
	const audience = "api://6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b,6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"
	tests := []struct {
		name   string
		params map[string]any
		check  func(t *testing.T, env map[string]string, s settings.Settings)
	}{
		{
			name: "defaults: webhooks, dry run, shared state",
			check: func(t *testing.T, env map[string]string, s settings.Settings) {
				if !s.WebhookEnabled() || s.EntraEnabled() || !s.DryRun || s.RevokeQueue != "revoke-requests" {
					t.Errorf("webhook %v entra %v dryRun %v queue %q; want webhook only, dry run, revoke-requests", s.WebhookEnabled(), s.EntraEnabled(), s.DryRun, s.RevokeQueue)
				}
				if env["STATE_STORE"] != "auto" || env["STATE_TABLE"] != "revokestate" || env["IDEMPOTENCY_TTL"] != "24h" {
					t.Errorf("STATE_STORE %q STATE_TABLE %q IDEMPOTENCY_TTL %q; want auto, revokestate, 24h", env["STATE_STORE"], env["STATE_TABLE"], env["IDEMPOTENCY_TTL"])
				}
				if st := s.Storage; !st.IdentityBased() || !strings.HasPrefix(st.QueueServiceURL, "https://st") || !strings.HasPrefix(st.TableServiceURL, "https://st") {
					t.Errorf("Storage = %+v; want identity-based queue and table service URLs of the template's account", st)
				}
			},
		},
		{
			name: "Entra tokens only, live, guard rails, redaction",
			params: map[string]any{"callers": "entra", "entraAudience": audience,
				"entraAllowedClients": "2b7f0c1e-3d4a-4b5c-8d6e-7f8091a2b3c4", "dryRun": false, "verifyRevocation": true,
				"protectedUsers": "breakglass1@contoso.com,breakglass2@contoso.com", "allowedDomains": "contoso.com",
				"maxRevocationsPerMinute": 0, "graphConcurrency": 4, "telemetryRedactUpn": true, "revokeQueueName": "revoke-prod",
				"idempotencyTtl": "48h", "stateTable": "revokeprod", "publicBaseUrl": "https://revoke.contoso.com"},
			check: func(t *testing.T, env map[string]string, s settings.Settings) {
				if env["WEBHOOK_SECRETS"] != "" {
					t.Errorf("WEBHOOK_SECRETS = %q for Entra-only callers; want it unset, so that no webhook secret must exist", env["WEBHOOK_SECRETS"])
				}
				if s.WebhookEnabled() || !s.EntraEnabled() || s.EntraTenantID != fakeTenantID || len(s.EntraAudiences) != 2 ||
					len(s.EntraAllowedClients) != 1 || s.EntraRequiredRole != "Sessions.Revoke" {
					t.Errorf("auth = webhook %v tenant %q audiences %q clients %q role %q; want Entra only for the deployment's tenant",
						s.WebhookEnabled(), s.EntraTenantID, s.EntraAudiences, s.EntraAllowedClients, s.EntraRequiredRole)
				}
				if s.DryRun || !s.VerifyRevocation || len(s.ProtectedUsers) != 2 || !slices.Equal(s.AllowedDomains, []string{"contoso.com"}) ||
					s.MaxRevocationsPerMinute != 0 || s.GraphConcurrency != 4 || !s.TelemetryRedactUPN || s.RevokeQueue != "revoke-prod" ||
					s.IdempotencyTTL != 48*time.Hour {
					t.Errorf("guard rails not carried through: %+v", s)
				}
				if env["TELEMETRY_UPN_SALT"] != keyVaultSecrets["telemetry-upn-salt"] || env["STATE_TABLE"] != "revokeprod" || env["PUBLIC_BASE_URL"] != "https://revoke.contoso.com" {
					t.Errorf("TELEMETRY_UPN_SALT resolved %v, STATE_TABLE %q, PUBLIC_BASE_URL %q; want the salt, revokeprod and the base URL",
						env["TELEMETRY_UPN_SALT"] != "", env["STATE_TABLE"], env["PUBLIC_BASE_URL"])
				}
			},
		},
		{
			name:   "outcome callbacks",
			params: map[string]any{"callbackAllowedHosts": "contoso.service-now.com,*.hooks.contoso.com", "callbackQueueName": "revoke-cb"},
			check: func(t *testing.T, env map[string]string, s settings.Settings) {
				if !s.CallbacksEnabled() || s.CallbackKeys.Len() != 1 || s.CallbackQueue != "revoke-cb" || env["CALLBACK_SECRETS"] != keyVaultSecrets["callback-secrets"] {
					t.Errorf("callbacks %v, %d keys, queue %q; want on, the Key Vault secret, revoke-cb", s.CallbacksEnabled(), s.CallbackKeys.Len(), s.CallbackQueue)
				}
			},
		},
		{
			name:   "webhooks and Entra tokens",
			params: map[string]any{"callers": "webhook+entra", "entraAudience": audience},
			check: func(t *testing.T, env map[string]string, s settings.Settings) {
				if !s.WebhookEnabled() || !s.EntraEnabled() {
					t.Errorf("webhook %v entra %v; want both", s.WebhookEnabled(), s.EntraEnabled())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, s, err := loadRendered(t, tmpl, tt.params)
			if err != nil {
				t.Fatalf("settings.Load(rendered %v) = %v; want nil", tt.params, err)
			}
			tt.check(t, env, s)
		})
	}
}

// parameterCheck evaluates the template's refusal of inconsistent parameters: a nested deployment,
// deployed only when there is a problem, whose one parameter allows only "yes" and is given the
// problem's description, so that Azure Resource Manager refuses the deployment and shows it. It
// returns "" when the parameters are accepted.
func parameterCheck(t *testing.T, tmpl map[string]any, params map[string]any) string {
	t.Helper()
	c := newARM(t, tmpl, params)
	var check map[string]any
	for _, r := range resources(t, tmpl, "Microsoft.Resources/deployments") {
		if c.value(r["name"]) == "entra-revoke-parameter-check" {
			check = r
		}
	}
	if check == nil {
		t.Fatal("no entra-revoke-parameter-check deployment in the template")
	}
	props := obj(t, check["properties"], "check properties")
	inner := obj(t, obj(t, obj(t, props["template"], "check template")["parameters"], "check parameters")["parametersAreConsistent"], "check parameter")
	allowed := arr(t, inner["allowedValues"], "allowedValues")
	// The parameters are one expression: the published schema of deployments@2022-09-01 makes an
	// expression-valued parameter "value" match two of its oneOf alternatives.
	given := fmt.Sprint(obj(t, obj(t, c.value(props["parameters"]), "given")["parametersAreConsistent"], "given parameter")["value"])
	deployed, _ := c.value(check["condition"]).(bool)
	if !deployed {
		if given != "yes" {
			t.Errorf("parameters %v: the check is skipped but would be given %q", params, given)
		}
		return ""
	}
	if slices.Contains(allowed, any(given)) {
		t.Errorf("parameters %v: the check is deployed but its value %q is allowed: Azure would accept it", params, given)
	}
	return given
}

// TestDeployTemplateRefusesWhatCannotStart: every combination of callers, audience and redaction
// the template accepts renders settings the handler starts with (given the secrets the parameter
// file provides), and every combination it would start wrongly with is refused with a message
// naming the parameter. "Entra callers only" references no webhook secret at all.
func TestDeployTemplateRefusesWhatCannotStart(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, deployPath)
	site := only(t, tmpl, "Microsoft.Web/sites")
	if !slices.Contains(arr(t, site["dependsOn"], "site dependsOn"), any("[resourceId('Microsoft.Resources/deployments', 'entra-revoke-parameter-check')]")) {
		t.Errorf("the Function App does not depend on the parameter check: it could be deployed before the refusal")
	}
	// Callbacks sign their queue messages with the queue secret, which every deployment has: Entra-only
	// callers can have them too.
	if problem := parameterCheck(t, tmpl, map[string]any{"callers": "entra", "entraAudience": "api://x", "callbackAllowedHosts": "hooks.contoso.com"}); problem != "" {
		t.Errorf("callbacks with Entra-only callers refused: %q; want them accepted (QUEUE_SECRETS signs the callback queue)", problem)
	}
	for _, callers := range []string{"webhook", "entra", "webhook+entra"} {
		for _, audience := range []string{"", "api://6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"} {
			for _, redact := range []bool{false, true} {
				params := map[string]any{"callers": callers, "entraAudience": audience, "telemetryRedactUpn": redact}
				problem := parameterCheck(t, tmpl, params)
				entra := strings.Contains(callers, "entra")
				switch wantRefused := entra == (audience == ""); {
				case wantRefused && !strings.Contains(problem, "entraAudience"):
					t.Errorf("parameters %v: refusal %q; want one naming entraAudience", params, problem)
				case !wantRefused && problem != "":
					t.Errorf("parameters %v: refused with %q; want accepted", params, problem)
				case !wantRefused:
					env, s, err := loadRendered(t, tmpl, params)
					if err != nil {
						t.Errorf("parameters %v are accepted, but the handler would not start: %v", params, err)
						continue
					}
					if callers == "entra" && (env["WEBHOOK_SECRETS"] != "" || s.WebhookEnabled()) {
						t.Errorf("parameters %v: WEBHOOK_SECRETS = %q; want no webhook secret for Entra-only callers", params, env["WEBHOOK_SECRETS"])
					}
				}
			}
		}
	}
}

// TestAlertsTemplate: one rule for each thing that needs a human, each on the Application
// Insights resource, notifying the action group, querying the events that say so, and with a
// runbook entry in docs/troubleshooting.md. (Every query is also checked by TestKQLQueriesRun.)
func TestAlertsTemplate(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, alertsPath)
	c := newARM(t, tmpl, map[string]any{"appInsightsName": "entra-revoke-x-ai", "alertEmail": "soc@contoso.com"})
	// rule name suffix -> what its query must say
	want := map[string][]string{
		"signed-in-again":    {`name == "RevocationWatch"`, `finding == "signed_in_again"`},
		"finally-failed":     {`"SessionRevocation"`, `status in ("failed", "throttled", "denied")`, `name == "WebhookRejected" and trigger == "queue"`},
		"callbacks-failing":  {`name == "CallbackFailed"`},
		"state-degraded":     {`name == "StateFallback"`},
		"permission-missing": {`name == "GraphPermission"`, `graph == "missing_permission"`},
		"rejected-callers":   {`name == "WebhookRejected"`, "customDimensions.reason"},
	}
	if len(resources(t, tmpl, "Microsoft.Insights/workbooks")) != 0 {
		t.Errorf("alerts.json deploys a workbook; the workbook belongs to azuredeploy.json")
	}
	runbook := string(mustRead(t, filepath.Join(testenv.RepoRoot(t), "docs", "troubleshooting.md")))
	_, runbook, _ = strings.Cut(runbook, "\n## Alerts")
	aiID := c.value("[resourceId('Microsoft.Insights/components', 'entra-revoke-x-ai')]")
	seen := map[string]bool{}
	for _, r := range resources(t, tmpl, "Microsoft.Insights/scheduledQueryRules") {
		name := fmt.Sprint(c.value(r["name"]))
		suffix := strings.TrimPrefix(name, "entra-revoke-x-ai-")
		checks, ok := want[suffix]
		if !ok {
			t.Errorf("rule %s is not one the operator expects (%v)", name, want)
			continue
		}
		seen[suffix] = true
		p := obj(t, c.value(r["properties"]), "rule properties")
		if scopes := arr(t, p["scopes"], "scopes"); len(scopes) != 1 || scopes[0] != aiID {
			t.Errorf("rule %s scopes = %v; want the Application Insights resource %v", name, scopes, aiID)
		}
		if ags := arr(t, obj(t, p["actions"], "actions")["actionGroups"], "actionGroups"); len(ags) != 1 {
			t.Errorf("rule %s action groups = %v; want the e-mail action group", name, ags)
		}
		if !strings.Contains(fmt.Sprint(p["description"]), "docs/troubleshooting.md#alerts") {
			t.Errorf("rule %s description does not point at its runbook", name)
		}
		if !strings.Contains(runbook, fmt.Sprint(p["displayName"])) {
			t.Errorf("docs/troubleshooting.md's Alerts section has no runbook line for %q", p["displayName"])
		}
		for _, crit := range arr(t, obj(t, p["criteria"], "criteria")["allOf"], "allOf") {
			q := fmt.Sprint(obj(t, crit, "criterion")["query"])
			for _, w := range checks {
				if !strings.Contains(q, w) {
					t.Errorf("rule %s query does not say %s:\n%s", name, w, q)
				}
			}
			for _, m := range regexp.MustCompile(`status in \(([^)]*)\)`).FindAllStringSubmatch(q, -1) {
				for _, s := range strings.Split(m[1], ",") {
					st := revoke.Status(strings.Trim(strings.TrimSpace(s), `"`))
					if !slices.Contains([]revoke.Status{revoke.StatusFailed, revoke.StatusDenied, revoke.StatusThrottled}, st) {
						t.Errorf("rule %s filters on status %q, which is not a final failure", name, st)
					}
				}
			}
		}
	}
	for suffix := range want {
		if !seen[suffix] {
			t.Errorf("alerts.json has no rule %s", suffix)
		}
	}
}

// mustTool fails when a tool a check needs is missing: a missing tool must not pass as a skip.
func mustTool(t *testing.T, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (%s)", name, install)
	}
}

func TestShellcheck(t *testing.T) {
	t.Parallel()
	mustTool(t, "shellcheck", "apt-get install shellcheck; make shellcheck")
	root := testenv.RepoRoot(t)
	var scripts []string
	for _, dir := range []string{"infra", "scripts"} {
		found, err := filepath.Glob(filepath.Join(root, dir, "*.sh"))
		if err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, found...)
	}
	if len(scripts) < 5 {
		t.Fatalf("shell scripts = %q; want the grant script and the build, package and release scripts", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.Command("shellcheck", "--severity=style", s).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
}

const (
	graphSP        = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	principalID    = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	revokeRoleID   = "77f3a031-c388-4f99-b373-dc68676a979e" // User.RevokeSessions.All
	userReadRoleID = "df021288-bdef-4463-88db-98f22de89214" // User.Read.All
	auditRoleID    = "b0afded3-3588-46d8-8b3d-9842eff778da" // AuditLog.Read.All
)

// fakeAz answers the az commands the grant script makes, as az does with --output tsv: the value
// a --query selects from Microsoft Graph's answer. It logs every call, one per line, arguments
// separated by US (0x1f).
const fakeAz = `#!/usr/bin/env bash
{ printf '%s\x1f' "$@"; printf '\n'; } >>"$AZ_LOG"
url="" query="" body=""
for ((i = 1; i <= $#; i++)); do
	case ${!i} in
	--url) j=$((i + 1)); url=${!j} ;;
	--query) j=$((i + 1)); query=${!j} ;;
	--body) j=$((i + 1)); body=${!j} ;;
	esac
done
denied() { echo "ERROR: Forbidden({\"error\":{\"code\":\"Authorization_RequestDenied\",\"message\":\"Insufficient privileges to complete the operation.\"}})" >&2; exit 1; }
case "$1 $2" in
"account show")
	[[ -z ${FAKE_LOGGED_OUT:-} ]] || { echo "ERROR: Please run 'az login' to setup account." >&2; exit 1; }
	exit 0 ;;
"functionapp identity")
	echo "$FAKE_PRINCIPAL"; exit 0 ;;
"rest --method")
	[[ $3 == GET && -n ${FAKE_DENY_READ:-} ]] && denied
	case "$3 $url" in
	"GET https://graph.microsoft.com/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')?\$select=id")
		[[ $query == id ]] && echo "$FAKE_GRAPH_SP"; exit 0 ;;
	"GET https://graph.microsoft.com/v1.0/servicePrincipals/$FAKE_GRAPH_SP?\$select=appRoles")
		[[ $query == *"value=='User.RevokeSessions.All'"*"'Application'"* ]] && echo 77f3a031-c388-4f99-b373-dc68676a979e
		[[ $query == *"value=='User.Read.All'"*"'Application'"* ]] && echo df021288-bdef-4463-88db-98f22de89214
		[[ $query == *"value=='AuditLog.Read.All'"*"'Application'"* ]] && echo b0afded3-3588-46d8-8b3d-9842eff778da
		exit 0 ;;
	"GET https://graph.microsoft.com/v1.0/servicePrincipals/$FAKE_PRINCIPAL/appRoleAssignments")
		for id in ${FAKE_EXISTING:-}; do
			[[ $query == *"appRoleId=='$id'"*"resourceId=='$FAKE_GRAPH_SP'"* ]] && echo "assignment-$id"
		done
		exit 0 ;;
	"POST https://graph.microsoft.com/v1.0/servicePrincipals/$FAKE_PRINCIPAL/appRoleAssignments")
		[[ -z ${FAKE_DENY_WRITE:-} ]] || denied
		exit 0 ;;
	esac ;;
esac
echo "fake az: unexpected call: $*" >&2
exit 3
`

type azCall []string

func (c azCall) String() string { return strings.Join(c, " ") }

// grantRun is one run of the grant script against the fake az.
type grantRun struct {
	stdout, stderr string
	code           int
	calls          []azCall
}

func (g grantRun) posts() []azCall {
	var out []azCall
	for _, c := range g.calls {
		if len(c) > 3 && c[0] == "rest" && c[2] == "POST" {
			out = append(out, c)
		}
	}
	return out
}

// runGrant runs the grant script with the fake az first on PATH.
func runGrant(t *testing.T, env map[string]string, args ...string) grantRun {
	t.Helper()
	script, err := filepath.Abs(grantScript)
	if err != nil {
		t.Fatal(err)
	}
	return runWithFakeAz(t, env, script, args...)
}

// runWithFakeAz runs a command with the fake az first on PATH and collects the az calls it made.
func runWithFakeAz(t *testing.T, env map[string]string, name string, args ...string) grantRun {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "az"), []byte(fakeAz), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "az.log")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "AZ_LOG=" + log,
		"FAKE_PRINCIPAL=" + principalID, "FAKE_GRAPH_SP=" + graphSP, "LC_ALL=C"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	run := grantRun{}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", name, err)
		}
		run.code = exit.ExitCode()
	}
	run.stdout, run.stderr = out.String(), errb.String()
	raw, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if line != "" {
			run.calls = append(run.calls, azCall(strings.Split(strings.TrimSuffix(line, "\x1f"), "\x1f")))
		}
	}
	if strings.Contains(run.stderr, "fake az: unexpected call") {
		t.Fatalf("the script made a call the fake does not know: %s", run.stderr)
	}
	return run
}

// wantPost is the exact grant call for one role.
func wantPost(role string) azCall {
	return azCall{"rest", "--method", "POST", "--url", "https://graph.microsoft.com/v1.0/servicePrincipals/" + principalID + "/appRoleAssignments",
		"--headers", "Content-Type=application/json",
		"--body", fmt.Sprintf(`{"principalId":"%s","resourceId":"%s","appRoleId":"%s"}`, principalID, graphSP, role),
		"--only-show-errors", "--output", "none"}
}

func TestGrantScript(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantPosts  []azCall
		wantStdout []string // substrings
		wantStderr []string
		wantDry    int // "dry run:" lines
	}{
		{
			name: "grants both, by Function App name", args: []string{"-g", "rg", "-n", "func-entra-revoke", "--with-user-read"},
			wantPosts:  []azCall{wantPost(revokeRoleID), wantPost(userReadRoleID)},
			wantStdout: []string{"User.RevokeSessions.All: granted to " + principalID, "User.Read.All: granted to " + principalID},
		},
		{
			name: "only User.RevokeSessions.All without --with-user-read, with a note for Sentinel", args: []string{"--principal-id", principalID},
			wantPosts:  []azCall{wantPost(revokeRoleID)},
			wantStderr: []string{"not granting User.Read.All", "Sentinel", "--with-user-read", `"graph": "missing_permission"`},
		},
		{
			name: "the sign-in watch needs AuditLog.Read.All and User.Read.All", args: []string{"--principal-id", principalID, "--with-sign-in-watch"},
			wantPosts:  []azCall{wantPost(revokeRoleID), wantPost(userReadRoleID), wantPost(auditRoleID)},
			wantStdout: []string{"User.Read.All: granted to " + principalID, "AuditLog.Read.All: granted to " + principalID},
		},
		{
			name: "idempotent: nothing to grant twice", args: []string{"--principal-id", principalID, "--with-user-read"},
			env:        map[string]string{"FAKE_EXISTING": revokeRoleID + " " + userReadRoleID},
			wantStdout: []string{"User.RevokeSessions.All: already granted", "User.Read.All: already granted"},
		},
		{
			name: "dry run changes nothing and prints the calls", args: []string{"--principal-id", principalID, "--with-user-read", "--dry-run"},
			env:     map[string]string{"FAKE_EXISTING": revokeRoleID},
			wantDry: 1, wantStdout: []string{"User.RevokeSessions.All: already granted"},
		},
		{
			name: "operator lacks the rights to grant", args: []string{"--principal-id", principalID},
			env:      map[string]string{"FAKE_DENY_WRITE": "1"},
			wantCode: 1, wantPosts: []azCall{wantPost(revokeRoleID)},
			wantStderr: []string{"may not grant Microsoft Graph application permissions", "Privileged Role Administrator"},
		},
		{
			name: "operator may not even read Graph", args: []string{"--principal-id", principalID},
			env:      map[string]string{"FAKE_DENY_READ": "1"},
			wantCode: 1, wantStderr: []string{"Privileged Role Administrator"},
		},
		{
			name: "not signed in", args: []string{"--principal-id", principalID},
			env:      map[string]string{"FAKE_LOGGED_OUT": "1"},
			wantCode: 1, wantStderr: []string{"az login"},
		},
		{name: "usage: no target", args: []string{"--dry-run"}, wantCode: 2, wantStderr: []string{"usage:"}},
		{name: "usage: principal not a GUID", args: []string{"--principal-id", "func-entra-revoke"}, wantCode: 2},
		{name: "usage: both target forms", args: []string{"--principal-id", principalID, "-g", "rg", "-n", "x"}, wantCode: 2},
		{name: "usage: unknown flag", args: []string{"--principal-id", principalID, "--force"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := runGrant(t, tt.env, tt.args...)
			if run.code != tt.wantCode {
				t.Fatalf("%s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), run.code, tt.wantCode, run.stdout, run.stderr)
			}
			if got := run.posts(); !slices.EqualFunc(got, tt.wantPosts, slices.Equal) {
				t.Errorf("POST calls:\n got %q\nwant %q", got, tt.wantPosts)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(run.stdout, want) {
					t.Errorf("stdout %q does not contain %q", run.stdout, want)
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(run.stderr, want) {
					t.Errorf("stderr %q does not contain %q", run.stderr, want)
				}
			}
			if n := strings.Count(run.stdout, "dry run: "); n != tt.wantDry {
				t.Errorf("%d dry-run lines; want %d: %q", n, tt.wantDry, run.stdout)
			}
		})
	}
}

// TestGrantScriptDryRunIsExact: each command the dry run prints, run as printed, makes exactly the
// call the script makes for real.
func TestGrantScriptDryRunIsExact(t *testing.T) {
	t.Parallel()
	dry := runGrant(t, nil, "--principal-id", principalID, "--with-user-read", "--dry-run")
	if dry.code != 0 || len(dry.posts()) != 0 {
		t.Fatalf("dry run: exit %d, POSTs %q; want 0 and none\n%s", dry.code, dry.posts(), dry.stderr)
	}
	var printed []string
	for _, line := range strings.Split(dry.stdout, "\n") {
		if cmd, ok := strings.CutPrefix(line, "dry run: "); ok {
			printed = append(printed, cmd)
		}
	}
	want := []azCall{wantPost(revokeRoleID), wantPost(userReadRoleID)}
	if len(printed) != len(want) {
		t.Fatalf("dry run printed %d commands; want %d: %q", len(printed), len(want), dry.stdout)
	}
	for i, cmd := range printed {
		if !strings.HasPrefix(cmd, "az rest --method POST ") {
			t.Errorf("printed command %q is not an az rest POST", cmd)
		}
		replay := runWithFakeAz(t, nil, "bash", "-c", cmd)
		if replay.code != 0 || len(replay.calls) != 1 || !slices.Equal(replay.calls[0], want[i]) {
			t.Errorf("running the printed %q made %q (exit %d); want exactly %q", cmd, replay.calls, replay.code, want[i])
		}
	}
}

// TestPackage builds the deployment zip with scripts/package.sh and checks what the Functions
// host needs: the handler executable, static, for linux/amd64, host.json and the function folders.
// It builds the zip a second time from a copy of the sources in another directory and wants the
// same bytes: the package is reproducible (scripts/release-check.sh does the same for a release).
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the handler for linux/amd64 (minutes on a cold build cache)")
	}
	t.Parallel()
	root := testenv.RepoRoot(t)
	const epoch = 1767225600 // 2026-01-01T00:00:00Z
	build := func(src, out string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(src, "scripts", "package.sh"), out)
		cmd.Dir = t.TempDir() // the script must not depend on the caller's directory
		cmd.Env = append(os.Environ(), "VERSION=v0.0.0-test", "COMMIT=abc1234", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s/scripts/package.sh: %v\n%s", src, err, b)
		}
	}
	out := filepath.Join(t.TempDir(), "dist", "entra-revoke.zip")
	build(root, out)
	copied := filepath.Join(t.TempDir(), "elsewhere")
	mustCopySources(t, root, copied)
	again := filepath.Join(t.TempDir(), "again.zip")
	build(copied, again)
	if !bytes.Equal(mustRead(t, out), mustRead(t, again)) {
		t.Errorf("two builds of the same sources in two directories differ: the package is not reproducible")
	}

	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatalf("open %s: %v", out, err)
	}
	defer zr.Close()
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if !f.FileInfo().IsDir() {
			files[f.Name] = f
		}
	}
	var wantFiles []string
	for _, fn := range []string{"revoke", "revoke-queue", "revoke-watch", "revoke-callbacks", "health", "revoke-status", "state-cleanup"} {
		wantFiles = append(wantFiles, fn+"/function.json")
	}
	wantFiles = append(wantFiles, "handler", "host.json")
	slices.Sort(wantFiles)
	if got := slices.Sorted(mapKeys(files)); !slices.Equal(got, wantFiles) {
		t.Errorf("zip files = %q; want exactly %q (local.settings.json and sources stay out)", got, wantFiles)
	}
	for _, name := range wantFiles {
		if name == "handler" {
			continue
		}
		if got, want := mustUnzip(t, files[name]), mustRead(t, filepath.Join(root, name)); !bytes.Equal(got, want) {
			t.Errorf("%s in the zip differs from the repository's", name)
		}
	}

	for name, f := range files {
		if !f.Modified.Equal(time.Unix(epoch, 0)) {
			t.Errorf("%s is dated %v; want SOURCE_DATE_EPOCH %v", name, f.Modified, time.Unix(epoch, 0).UTC())
		}
	}
	h := files["handler"]
	if h == nil {
		t.Fatal("no handler in the zip")
	}
	if mode := h.Mode(); !mode.IsRegular() || mode.Perm()&0o111 != 0o111 {
		t.Errorf("handler mode = %v; want an executable regular file (the host runs it directly)", mode)
	}
	bin := mustUnzip(t, h)
	ef, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("handler is not an ELF executable: %v", err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 || ef.Type != elf.ET_EXEC {
		t.Errorf("handler is %v %v %v; want a 64-bit x86-64 executable", ef.Class, ef.Machine, ef.Type)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("handler has a program interpreter: it is dynamically linked (CGO_ENABLED=0 expected)")
		}
	}
	if !bytes.Contains(bin, []byte("v0.0.0-test")) {
		t.Errorf("handler does not carry the VERSION it was built with")
	}
}

// mustCopySources copies what a build needs (the module, the function folders and the scripts)
// from the repository at src to dst, leaving out Git, the npm tooling and build output.
func mustCopySources(t *testing.T, src, dst string) {
	t.Helper()
	skip := map[string]bool{".git": true, "node_modules": true, "dist": true, "results": true}
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if skip[d.Name()] || rel == "handler" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil // symlinks and the like: not part of a build
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func mustUnzip(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatalf("open %s in zip: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s in zip: %v", f.Name, err)
	}
	return b
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeployGuideMatchesTemplate: docs/deploy.md is the one ordered checklist and the README's
// quick start the same steps in short; both name only parameters the template has, the guide's
// parameter table lists every one with its default, and the callers it offers are the template's.
func TestDeployGuideMatchesTemplate(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	guide := string(mustRead(t, filepath.Join(root, "docs", "deploy.md")))
	readme := string(mustRead(t, filepath.Join(root, "README.md")))
	tmpl := mustReadJSON(t, deployPath)
	params := obj(t, tmpl["parameters"], "parameters")

	wantSteps := []string{"Choose callers", "Register the API", "Write the parameter file", "Deploy",
		"Grant Microsoft Graph permissions", "Test in dry run", "Go live", "Connect callers"}
	var steps []string
	for _, m := range regexp.MustCompile(`(?m)^## (\d+)\. (.+)$`).FindAllStringSubmatch(guide, -1) {
		if m[1] != fmt.Sprint(len(steps)+1) {
			t.Errorf("docs/deploy.md step %q is numbered %s; want %d", m[2], m[1], len(steps)+1)
		}
		steps = append(steps, strings.TrimSpace(regexp.MustCompile(`\s*\(.*\)$`).ReplaceAllString(m[2], "")))
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("docs/deploy.md steps = %q; want %q", steps, wantSteps)
	}
	quick, _, ok := strings.Cut(readme[strings.Index(readme, "## Quick start"):], "\n## ")
	if !ok || !strings.HasPrefix(quick, "## Quick start") {
		t.Fatal("README.md has no Quick start section")
	}
	if i := strings.Index(readme, "## Quick start"); i > strings.Index(readme, "\n## ")+1 {
		t.Errorf("the Quick start is not the README's first section")
	}
	// The Quick start is deploy.sh's few commands: each is in the guide's deploy.sh section too,
	// and names the script that exists.
	var commands []string
	for _, m := range regexp.MustCompile(`(?m)^(infra/deploy\.sh [^\n]*?)\s*(?:\\)?$`).FindAllStringSubmatch(quick, -1) {
		commands = append(commands, m[1])
	}
	if len(commands) < 2 || len(commands) > 4 {
		t.Errorf("README quick start commands = %q; want deploy.sh's few commands (deploy, go live)", commands)
	}
	shortPath, _, _ := strings.Cut(guide[strings.Index(guide, "## With deploy.sh"):], "\n## By hand")
	for _, c := range commands {
		if words := strings.Fields(c); len(words) < 3 || !strings.Contains(shortPath, strings.Join(words[:3], " ")) {
			t.Errorf("README quick start command %q is not in docs/deploy.md's deploy.sh section", c)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "infra", "deploy.sh")); err != nil {
		t.Errorf("the Quick start runs infra/deploy.sh: %v", err)
	}
	for _, role := range []string{"Owner", "User Access Administrator", "Privileged Role Administrator", "Application Administrator", "Microsoft Sentinel Contributor"} {
		if !strings.Contains(quick, role) || !strings.Contains(guide, role) {
			t.Errorf("the role %q is not named in both the README quick start and docs/deploy.md", role)
		}
	}

	// Parameter files in the docs use only the template's parameters.
	for _, doc := range []string{"docs/deploy.md", "docs/entra-auth.md", "README.md"} {
		text := string(mustRead(t, filepath.Join(root, doc)))
		for _, m := range regexp.MustCompile(`"([A-Za-z]+)":\s*\{\s*"value"`).FindAllStringSubmatch(text, -1) {
			if _, ok := params[m[1]]; !ok {
				t.Errorf("%s sets parameter %q, which the template does not have", doc, m[1])
			}
		}
	}

	// The guide's parameter table: every template parameter, nothing else, with its default.
	section := guide[strings.Index(guide, "## Application settings"):]
	section, _, _ = strings.Cut(section[3:], "\n## ")
	rows := regexp.MustCompile("(?m)^\\| `([A-Za-z]+)` \\| ([^|]*) \\|").FindAllStringSubmatch(section, -1)
	seen := map[string]bool{}
	for _, r := range rows {
		name, cell := r[1], r[2]
		p, ok := params[name]
		if !ok {
			t.Errorf("docs/deploy.md lists parameter %q, which the template does not have", name)
			continue
		}
		seen[name] = true
		def := obj(t, p, name)["defaultValue"]
		if s, isStr := def.(string); isStr && strings.HasPrefix(s, "[") {
			continue // an expression: described in words
		}
		lit := regexp.MustCompile("`([^`]*)`").FindStringSubmatch(cell)
		switch {
		case fmt.Sprint(def) == "" && !strings.Contains(cell, "empty"):
			t.Errorf("docs/deploy.md: %s default %q; the template's is empty", name, cell)
		case fmt.Sprint(def) != "" && lit != nil && lit[1] != fmt.Sprint(def):
			t.Errorf("docs/deploy.md: %s default %q; the template's is %v", name, lit[1], def)
		}
	}
	for name := range params {
		if !seen[name] {
			t.Errorf("docs/deploy.md's Application settings table does not list parameter %q", name)
		}
	}
	allowed := arr(t, obj(t, params["callers"], "callers")["allowedValues"], "callers allowedValues")
	for _, v := range allowed {
		if !strings.Contains(guide, fmt.Sprintf("| `%s` ", v)) {
			t.Errorf("docs/deploy.md step 1 does not offer callers %q", v)
		}
	}
}

// TestDeployTemplateSettingsOrder: app settings that hold Key Vault references are applied only
// after the role assignments that let the app's identity resolve them (and reach its storage and
// telemetry), so that the first start never sees an unresolved reference. They live in one
// Microsoft.Web/sites/config resource whose dependsOn names every role assignment of the app's
// identity and every secret; the site itself carries no settings.
func TestDeployTemplateSettingsOrder(t *testing.T) {
	t.Parallel()
	tmpl := mustReadJSON(t, deployPath)
	c := newARM(t, tmpl, nil)
	site := only(t, tmpl, "Microsoft.Web/sites")
	walkStrings(site, "site", func(path, s string) {
		if strings.Contains(s, "@Microsoft.KeyVault") || strings.HasSuffix(path, ".appSettings") {
			t.Errorf("%s: the site itself sets app settings; they must wait for the role assignments", path)
		}
	})
	if sc, ok := obj(t, site["properties"], "site properties")["siteConfig"].(map[string]any); ok {
		if _, ok := sc["appSettings"]; ok {
			t.Errorf("siteConfig.appSettings is set on the site: it would apply before the Key Vault role exists")
		}
	}
	cfg := appSettingsResource(t, tmpl)
	deps := map[string]bool{}
	for _, d := range arr(t, cfg["dependsOn"], "appsettings dependsOn") {
		deps[fmt.Sprint(c.value(d))] = true
	}
	rg := fmt.Sprint(c.value("[resourceGroup().id]"))
	want := map[string]string{fmt.Sprint(c.value("[variables('siteId')]")): "the site",
		rg + "/providers/Microsoft.Resources/deployments/entra-revoke-roles": "the role assignments (a nested deployment ends when all of its resources are deployed)"}
	inner, _ := rolesDeployment(t, tmpl, c)
	if n := len(resources(t, inner, "Microsoft.Authorization/roleAssignments")); n != len(wantRoles) {
		t.Errorf("the roles deployment assigns %d roles; want all %d before the settings", n, len(wantRoles))
	}
	for _, s := range resources(t, tmpl, "Microsoft.KeyVault/vaults/secrets") {
		name := strings.SplitN(fmt.Sprint(c.value(s["name"])), "/", 2)
		want[rg+"/providers/Microsoft.KeyVault/vaults/"+name[0]+"/secrets/"+name[1]] = "secret " + name[1]
	}
	if len(want) < 2+3 {
		t.Fatalf("found %d prerequisites; want the site, the role assignments and three secrets", len(want))
	}
	for id, what := range want {
		if !deps[id] {
			t.Errorf("the app settings do not depend on %s (%s): they could be applied before it", what, id)
		}
	}
	// Every Key Vault reference of the settings names a secret the settings wait for.
	for name, v := range renderSettings(t, tmpl, newARM(t, tmpl, map[string]any{"telemetryRedactUpn": true})) {
		if m := keyVaultRef.FindStringSubmatch(v); m != nil && !deps[rg+"/providers/Microsoft.KeyVault/vaults/"+m[1]+"/secrets/"+m[2]] {
			t.Errorf("%s refers to secret %s/%s, which the settings do not wait for", name, m[1], m[2])
		}
	}
}
