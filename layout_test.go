package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/settings"
)

func mustReadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// host.json is what the Functions host reads; the hosting contract fixes its shape.
func TestHostJSON(t *testing.T) {
	t.Parallel()
	var host struct {
		Version         string `json:"version"`
		ExtensionBundle struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"extensionBundle"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
		Extensions struct {
			HTTP struct {
				RoutePrefix string `json:"routePrefix"`
			} `json:"http"`
			Queues struct {
				MaxDequeueCount   int    `json:"maxDequeueCount"`
				VisibilityTimeout string `json:"visibilityTimeout"`
				BatchSize         int    `json:"batchSize"`
				MessageEncoding   string `json:"messageEncoding"`
			} `json:"queues"`
		} `json:"extensions"`
	}
	mustReadJSON(t, "host.json", &host)
	if host.Version != "2.0" || host.ExtensionBundle.ID != "Microsoft.Azure.Functions.ExtensionBundle" || host.ExtensionBundle.Version != "[4.*, 5.0.0)" {
		t.Errorf("host.json version/bundle = %q %q %q", host.Version, host.ExtensionBundle.ID, host.ExtensionBundle.Version)
	}
	if host.CustomHandler.Description.DefaultExecutablePath != "handler" || !host.CustomHandler.EnableForwardingHTTPRequest {
		t.Errorf("customHandler = %+v; want handler with request forwarding", host.CustomHandler)
	}
	if host.Extensions.HTTP.RoutePrefix != "api" {
		t.Errorf("routePrefix = %q; the server serves /api/…", host.Extensions.HTTP.RoutePrefix)
	}
	want := settings.DefaultMaxDequeueCount
	if q := host.Extensions.Queues; q.MaxDequeueCount != want || q.BatchSize < 1 || q.VisibilityTimeout == "" || q.MessageEncoding != "base64" {
		t.Errorf("extensions.queues = %+v; want maxDequeueCount %d, base64, a batch size and a visibility timeout", q, want)
	}
}

// Each function folder holds only its function.json, with the bindings of the hosting contract.
func TestFunctionBindings(t *testing.T) {
	t.Parallel()
	type binding struct {
		Type       string   `json:"type"`
		Direction  string   `json:"direction"`
		Name       string   `json:"name"`
		AuthLevel  string   `json:"authLevel"`
		Methods    []string `json:"methods"`
		Route      string   `json:"route"`
		QueueName  string   `json:"queueName"`
		Connection string   `json:"connection"`
	}
	tests := []struct {
		dir  string
		want []binding
	}{
		{"revoke", []binding{{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}, Route: "revoke"}, {Type: "http", Direction: "out", Name: "res"}}},
		{"health", []binding{{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "anonymous", Methods: []string{"get"}, Route: "health"}, {Type: "http", Direction: "out", Name: "res"}}},
		{"revoke-queue", []binding{{Type: "queueTrigger", Direction: "in", Name: "message", QueueName: "%REVOKE_QUEUE%", Connection: "AzureWebJobsStorage"}}},
	}
	for _, tt := range tests {
		var fn struct {
			Bindings []binding `json:"bindings"`
		}
		mustReadJSON(t, filepath.Join(tt.dir, "function.json"), &fn)
		got, _ := json.Marshal(fn.Bindings)
		want, _ := json.Marshal(tt.want)
		if string(got) != string(want) {
			t.Errorf("%s/function.json bindings = %s; want %s", tt.dir, got, want)
		}
		entries, _ := os.ReadDir(tt.dir)
		if len(entries) != 1 {
			t.Errorf("%s holds %d files; want only function.json", tt.dir, len(entries))
		}
	}
}

// local.settings.json is a template: it must work with Azurite and hold nothing secret but the
// public demo secret that `make run` also uses.
func TestLocalSettingsTemplate(t *testing.T) {
	t.Parallel()
	var ls struct {
		IsEncrypted bool              `json:"IsEncrypted"`
		Values      map[string]string `json:"Values"`
	}
	mustReadJSON(t, "local.settings.json", &ls)
	if ls.Values["FUNCTIONS_WORKER_RUNTIME"] != "custom" || ls.Values["AzureWebJobsStorage"] != "UseDevelopmentStorage=true" || ls.Values["DRY_RUN"] != "true" {
		t.Errorf("local.settings.json = %v; want the custom runtime, Azurite and a dry run", ls.Values)
	}
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if s := ls.Values["WEBHOOK_SECRETS"]; s != "" && !strings.Contains(string(mk), "DEMO_SECRET := "+s) {
		t.Errorf("local.settings.json WEBHOOK_SECRETS is not the Makefile's public demo secret")
	}
	known := map[string]bool{"FUNCTIONS_WORKER_RUNTIME": true}
	for _, s := range settings.Table {
		known[s.Name] = true
	}
	for k := range ls.Values {
		if !known[k] {
			t.Errorf("local.settings.json sets %s, which the handler does not read", k)
		}
	}
}

// Production code must never import testing or the test helpers (as Tailscale's derper checks).
func TestProductionCodeImportsNoTestHelpers(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "testing", strings.HasSuffix(p, "/testenv"), strings.HasSuffix(p, "test") && strings.Contains(p, "entra-revoke"):
			t.Errorf("the handler binary depends on %s", p)
		}
	}
}
