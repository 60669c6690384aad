package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestArchitectureDiagramMatchesImports: the Mermaid diagram in docs/architecture.md draws exactly
// the imports between the module's production packages — every arrow is an import, every import
// an arrow — so the picture a newcomer reads is the code's, not last year's.
func TestArchitectureDiagramMatchesImports(t *testing.T) {
	t.Parallel()
	const module = "github.com/entra-revoke/entra-revoke"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// name is how the diagram names a package: main for the root, else its path under internal/.
	name := func(p string) (string, bool) {
		if p == module {
			return "main", true
		}
		rest, ok := strings.CutPrefix(p, module+"/internal/")
		if !ok || rest == "testenv" || strings.HasSuffix(rest, "test") {
			return "", false // commands such as bench/, e2e/ and test kits are not the product
		}
		return rest, true
	}
	want := map[string]bool{}
	nodes := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		from, ok := name(f[0])
		if !ok {
			continue
		}
		nodes[from] = true
		for _, imp := range f[1:] {
			if to, ok := name(imp); ok {
				want[from+" --> "+to] = true
			}
		}
	}

	b, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "```mermaid\n")
	if !ok {
		t.Fatal("docs/architecture.md has no ```mermaid block")
	}
	block, _, _ = strings.Cut(block, "```")
	edge := regexp.MustCompile(`^\s*([A-Za-z][\w/]*)(?:\[[^\]]*\])?\s*-->\s*([A-Za-z][\w/]*)(?:\[[^\]]*\])?\s*$`)
	got := map[string]bool{}
	drawn := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		if m := edge.FindStringSubmatch(line); m != nil {
			got[m[1]+" --> "+m[2]] = true
			drawn[m[1]], drawn[m[2]] = true, true
		}
	}
	for e := range want {
		if !got[e] {
			t.Errorf("docs/architecture.md does not draw the import %s", e)
		}
	}
	for e := range got {
		if !want[e] {
			t.Errorf("docs/architecture.md draws %s, which is no import", e)
		}
	}
	var missing []string
	for n := range nodes {
		if !drawn[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	for _, n := range missing {
		// A package that imports nothing of ours and that nothing imports would be invisible.
		t.Errorf("docs/architecture.md does not show the package %s", n)
	}
}

// TestDependenciesPointInward: the adapters depend on the engine, never the other way, and the
// HTTP adapter reaches storage only through the engine's interfaces. A request's life is decided
// in internal/revoke; if internal/server could import internal/state, it would be decided there
// again sooner or later.
func TestDependenciesPointInward(t *testing.T) {
	t.Parallel()
	const module = "github.com/entra-revoke/entra-revoke/internal/"
	forbidden := map[string][]string{
		// The engine knows nothing of HTTP, the host, queues, tables or Graph's SDK.
		"revoke": {"net/http", module + "server", module + "state", module + "queue", module + "graph",
			module + "telemetry", module + "callback", module + "watch", module + "cli"},
		// The HTTP adapter translates; what is remembered is the lifecycle's business.
		"server": {module + "state", module + "graph", module + "cli"},
		// Adapters take what the settings parsed; only the wiring (cli) reads settings.
		"queue": {module + "settings", module + "server", module + "cli"},
		// The stores implement the engine's interfaces and know nothing of who calls them.
		"state": {module + "server", module + "queue", module + "graph", module + "cli"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-f", `{{range .Imports}}{{.}} {{end}}`, "./internal/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		imports := strings.Fields(string(out))
		for _, b := range bad {
			if slices.Contains(imports, b) {
				t.Errorf("internal/%s imports %s", pkg, b)
			}
		}
	}
}
