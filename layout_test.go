package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

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

// hostMaxDequeueCount is the number of deliveries host.json fixes for a queue message.
// The handler learns it from host.json (or the host's own app setting), so the two cannot drift.
const hostMaxDequeueCount = 5

// host.json is what the Functions host reads; docs/custom-handler.md describes its shape.
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
	if q := host.Extensions.Queues; q.MaxDequeueCount != hostMaxDequeueCount || q.BatchSize < 1 || q.VisibilityTimeout == "" || q.MessageEncoding != "base64" {
		t.Errorf("extensions.queues = %+v; want maxDequeueCount %d, base64, a batch size and a visibility timeout", q, hostMaxDequeueCount)
	}
}

// Each function folder holds only its function.json, with the bindings docs/custom-handler.md describes.
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
		Schedule   string   `json:"schedule"`
	}
	tests := []struct {
		dir  string
		want []binding
	}{
		{"revoke", []binding{{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}, Route: "revoke"}, {Type: "http", Direction: "out", Name: "res"}}},
		{"health", []binding{{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "anonymous", Methods: []string{"get"}, Route: "health"}, {Type: "http", Direction: "out", Name: "res"}}},
		{"revoke-queue", []binding{{Type: "queueTrigger", Direction: "in", Name: "message", QueueName: "%REVOKE_QUEUE%", Connection: "AzureWebJobsStorage"}}},
		{"revoke-watch", []binding{{Type: "queueTrigger", Direction: "in", Name: "message", QueueName: "%WATCH_QUEUE%", Connection: "AzureWebJobsStorage"}}},
		{"revoke-callbacks", []binding{{Type: "queueTrigger", Direction: "in", Name: "message", QueueName: "%CALLBACK_QUEUE%", Connection: "AzureWebJobsStorage"}}},
		// The handle is the route's only credential, so the platform must not ask for a key.
		{"revoke-status", []binding{{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "anonymous", Methods: []string{"get"}, Route: "revoke/status/{handle}"}, {Type: "http", Direction: "out", Name: "res"}}},
		// Daily at 03:30 UTC (NCRONTAB with seconds), when revocations are rare.
		{"state-cleanup", []binding{{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "0 30 3 * * *"}}},
	}
	want := map[string]bool{}
	for _, tt := range tests {
		want[tt.dir] = true
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
	// Every folder with a function.json is deployed (scripts/package.sh ships them all), so each
	// must be one of the functions above.
	found, err := filepath.Glob(filepath.Join("*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if dir := filepath.Dir(f); !want[dir] {
			t.Errorf("%s is a function folder this test does not name", dir)
		}
		delete(want, filepath.Dir(f))
	}
	for dir := range want {
		t.Errorf("no %s/function.json", dir)
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
	} else if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_")); s != "" && (err != nil || len(key) < 24 || len(key) > 64) {
		t.Errorf("the demo secret decodes to %d bytes (%v); the handler wants 24 to 64", len(key), err)
	}
	// Azurite serves both the queue and the table service: with storage set, state is shared in
	// Azurite's table as it is in Azure.
	if st := ls.Values["STATE_STORE"]; st != "" && st != "auto" && st != "table" {
		t.Errorf("local.settings.json STATE_STORE = %q; want auto or table (Azurite's table service)", st)
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

// TestReadmeLayoutListsEveryPackage: the README's layout table names every package under
// internal/ (a nested one, such as internal/graph/graphtest, by its name) and every function folder.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(b), "## Repository layout")
	if !ok {
		t.Fatal("README.md has no Repository layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	err = filepath.WalkDir("internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if gofiles, _ := filepath.Glob(filepath.Join(path, "*.go")); len(gofiles) == 0 {
			return nil
		}
		want := "`" + filepath.ToSlash(path) + "`"
		if strings.Count(filepath.ToSlash(path), "/") > 1 {
			want = "`" + d.Name() + "`" // a helper package inside another, named in its parent's row
		}
		if !strings.Contains(layout, want) {
			t.Errorf("README.md's layout table does not list %s (want %s)", path, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	functions, _ := filepath.Glob(filepath.Join("*", "function.json"))
	for _, f := range functions {
		if dir := filepath.Dir(f); !strings.Contains(layout, "`"+dir+"/`") {
			t.Errorf("README.md's layout table does not list the function folder %s/", dir)
		}
	}
}

// TestDocLinks: every relative link in the deployment docs and the README reaches a file of the
// repository and, with a #fragment into a Markdown file, one of its headings (GitHub's anchors)
// or an explicit <a id>.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	docs := []string{"README.md", "docs/deploy.md", "docs/entra-auth.md", "docs/troubleshooting.md", "infra/README.md"}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, target)
				continue
			}
			if frag == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			if !slices.Contains(anchors(t, path), frag) {
				t.Errorf("%s links to %s: %s has no heading with anchor #%s", doc, target, path, frag)
			}
		}
	}
}

// anchors returns the anchors GitHub gives the headings of a Markdown file (lower case, spaces
// to hyphens, punctuation dropped, duplicates numbered), and explicit <a id="…"> anchors.
func anchors(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]int{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		for _, m := range regexp.MustCompile(`<a id="([^"]+)"></a>`).FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		s := slug.String()
		if n := seen[s]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", s, n))
		} else {
			out = append(out, s)
		}
		seen[s]++
	}
	return out
}

// TestWorkflows: CI runs the README's test command on every push and pull request; a v* tag
// runs make release and publishes every release file; every action is pinned to a commit.
func TestWorkflows(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(".github", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ci, release := read("ci.yml"), read("release.yml")
	for _, want := range []string{"\n  push:\n", "\n  pull_request:\n", "run: make test\n", "run: make release-check\n"} {
		if !strings.Contains(ci, want) {
			t.Errorf("ci.yml does not contain %q", want)
		}
	}
	for _, want := range []string{"tags: ['v*']", "make release VERSION=", "make release-check VERSION=", "run: make test\n",
		"gh release create", "contents: write", "entra-revoke.zip", "handler-linux-amd64", "handler-linux-arm64",
		"handler-darwin-arm64", "handler-windows-amd64.exe", "SHA256SUMS"} {
		if !strings.Contains(release, want) {
			t.Errorf("release.yml does not contain %q", want)
		}
	}
	uses := regexp.MustCompile(`uses: ([^\s@]+)@(\S+)`)
	for name, wf := range map[string]string{"ci.yml": ci, "release.yml": release} {
		for _, m := range uses.FindAllStringSubmatch(wf, -1) {
			if !strings.HasPrefix(m[1], "actions/") || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(m[2]) {
				t.Errorf("%s uses %s@%s; want an official actions/ action pinned to a full commit SHA", name, m[1], m[2])
			}
		}
	}
}
