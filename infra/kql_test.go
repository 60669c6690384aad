package infra_test

// Every KQL query in the repository — the workbook's panels and parameters, the alert rules', and
// the ```kusto/```kql blocks and `az monitor app-insights query` commands of the Markdown files —
// is checked by Kusto's own language service (@kusto/language-service-next, run by
// testdata/node/kql-check.mjs) against the Application Insights tables it reads
// (testdata/kql/tables.json, Microsoft's documented columns). A query passes when it has no
// syntax or semantic error and every customDimensions/customMeasurements key it reads is one
// the handler writes for the events the query names (testdata/telemetry/keys.json, which the
// telemetry and end-to-end tests compare with what the handler really sends).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// kqlQuery is one query and where it was found.
type kqlQuery struct {
	ID   string `json:"id"` // file and position, for the failure message
	Text string `json:"text"`
}

// kqlResult is what kql-check.mjs says about one query.
type kqlResult struct {
	ID          string `json:"id"`
	Diagnostics []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		Start    int    `json:"start"`
		Length   int    `json:"length"`
	} `json:"diagnostics"`
	Reads []struct {
		Bag string `json:"bag"`
		Key string `json:"key"`
	} `json:"reads"`
	Strings []string `json:"strings"`
}

// telemetryKeys is testdata/telemetry/keys.json.
type telemetryKeys struct {
	Events       map[string]itemKeys `json:"events"`
	Dependencies itemKeys            `json:"dependencies"`
}

type itemKeys struct {
	CustomDimensions   []string `json:"customDimensions"`
	CustomMeasurements []string `json:"customMeasurements"`
}

func (k itemKeys) bag(name string) []string {
	if name == "customMeasurements" {
		return k.CustomMeasurements
	}
	return k.CustomDimensions
}

func mustKeys(t *testing.T) telemetryKeys {
	t.Helper()
	var k telemetryKeys
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "telemetry", "keys.json"))
	if err == nil {
		err = json.Unmarshal(b, &k)
	}
	if err != nil || len(k.Events) == 0 {
		t.Fatalf("testdata/telemetry/keys.json: %v (%d events)", err, len(k.Events))
	}
	return k
}

// kqlNode returns testdata/node, or skips in -short mode when the Node tooling is missing (a full
// run needs it: a missing tool must not pass as a skip).
func kqlNode(t *testing.T) string {
	t.Helper()
	dir, err := testenv.NodeDir(testenv.RepoRoot(t))
	if err != nil {
		if testing.Short() {
			t.Skipf("KQL not checked: %v", err)
		}
		t.Fatal(err)
	}
	return dir
}

// runKQL checks queries with the language service.
func runKQL(t *testing.T, queries []kqlQuery) map[string]kqlResult {
	t.Helper()
	dir := kqlNode(t)
	var tables struct {
		Tables map[string]string `json:"tables"`
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "kql", "tables.json"))
	if err == nil {
		err = json.Unmarshal(b, &tables)
	}
	if err != nil {
		t.Fatalf("testdata/kql/tables.json: %v", err)
	}
	in, err := json.Marshal(map[string]any{"tables": tables.Tables, "queries": queries})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "kql-check.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node kql-check.mjs: %v\n%s", err, stderr.String())
	}
	var results []kqlResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("kql-check.mjs output: %v\n%s", err, out)
	}
	byID := map[string]kqlResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	if len(byID) != len(queries) {
		t.Fatalf("kql-check.mjs answered for %d of %d queries", len(byID), len(queries))
	}
	return byID
}

var dependenciesTable = regexp.MustCompile(`\bdependencies\b`)

// kqlProblems lists what is wrong with one checked query: errors of the language service, and
// keys read that the handler does not write for the events the query names (the event names
// among its string literals; the dependencies' keys when it reads the dependencies table).
func kqlProblems(q kqlQuery, r kqlResult, keys telemetryKeys) []string {
	var problems []string
	for _, d := range r.Diagnostics {
		if d.Severity != "Error" {
			continue
		}
		at := ""
		if d.Start >= 0 && d.Start+d.Length <= len(q.Text) {
			at = fmt.Sprintf(" at %q", q.Text[d.Start:d.Start+d.Length])
		}
		problems = append(problems, fmt.Sprintf("%s %s%s", d.Code, d.Message, at))
	}
	var named []string
	for _, s := range r.Strings {
		if _, ok := keys.Events[s]; ok && !slices.Contains(named, s) {
			named = append(named, s)
		}
	}
	deps := dependenciesTable.MatchString(q.Text)
	for _, read := range r.Reads {
		var allowed []string
		for _, e := range named {
			allowed = append(allowed, keys.Events[e].bag(read.Bag)...)
		}
		if deps {
			allowed = append(allowed, keys.Dependencies.bag(read.Bag)...)
		}
		switch {
		case len(named) == 0 && !deps:
			problems = append(problems, fmt.Sprintf("reads %s.%s but names no event of testdata/telemetry/keys.json (filter on name)", read.Bag, read.Key))
		case !slices.Contains(allowed, read.Key):
			what := strings.Join(named, ", ")
			if deps {
				what = strings.TrimPrefix(what+", dependencies", ", ")
			}
			problems = append(problems, fmt.Sprintf("reads %s.%s, which the handler never writes for %s (testdata/telemetry/keys.json)", read.Bag, read.Key, what))
		}
	}
	return problems
}

// repoQueries collects every KQL query in the repository, by source.
func repoQueries(t *testing.T) map[string][]kqlQuery {
	t.Helper()
	root := testenv.RepoRoot(t)
	out := map[string][]kqlQuery{}
	out["workbook"] = workbookQueries(t, mustReadJSON(t, workbookPath))
	out["alerts"] = alertQueries(t, mustReadJSON(t, alertsPath))

	ls := exec.Command("git", "ls-files", "*.md")
	ls.Dir = root
	files, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Fields(string(files)) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		out["markdown"] = append(out["markdown"], markdownQueries(f, string(b))...)
	}
	return out
}

var (
	fencedKQL = regexp.MustCompile("(?ms)^```(?:kusto|kql)[ \t]*\n(.*?)^```")
	// az monitor app-insights query … --analytics-query 'KQL' (the deployment guide's checks).
	analyticsQuery = regexp.MustCompile(`--analytics-query\s+(?:\\\n\s*)?'([^']*)'`)
)

func markdownQueries(file, md string) []kqlQuery {
	var out []kqlQuery
	line := func(off int) int { return strings.Count(md[:off], "\n") + 1 }
	for _, m := range fencedKQL.FindAllStringSubmatchIndex(md, -1) {
		out = append(out, kqlQuery{fmt.Sprintf("%s:%d", file, line(m[2])), md[m[2]:m[3]]})
	}
	for _, m := range analyticsQuery.FindAllStringSubmatchIndex(md, -1) {
		out = append(out, kqlQuery{fmt.Sprintf("%s:%d", file, line(m[2])), md[m[2]:m[3]]})
	}
	return out
}

// alertQueries are the scheduled query rules' queries, as deployed (expressions evaluated).
func alertQueries(t *testing.T, tmpl map[string]any) []kqlQuery {
	t.Helper()
	c := newARM(t, tmpl, map[string]any{"appInsightsName": "entra-revoke-x-ai"})
	var out []kqlQuery
	for _, r := range resources(t, tmpl, "Microsoft.Insights/scheduledQueryRules") {
		p := obj(t, c.value(r["properties"]), "rule properties")
		for i, crit := range arr(t, obj(t, p["criteria"], "criteria")["allOf"], "allOf") {
			out = append(out, kqlQuery{fmt.Sprintf("alerts.json %v criterion %d", p["displayName"], i), fmt.Sprint(obj(t, crit, "criterion")["query"])})
		}
	}
	return out
}

var workbookPlaceholder = regexp.MustCompile(`\{([A-Za-z][A-Za-z0-9_]*)(?::([a-z]+))?\}`)

// workbookQueries are the workbook's queries (panels and parameter lists, in groups too), with
// its parameters replaced as Azure Monitor would: a time range by a relative range, a list
// parameter by its "all" value. A placeholder that names no parameter stays and fails the check.
func workbookQueries(t *testing.T, wb map[string]any) []kqlQuery {
	t.Helper()
	params := map[string]map[string]any{}
	var raw []kqlQuery
	var walk func(items []any)
	walk = func(items []any) {
		for _, it := range items {
			item := obj(t, it, "workbook item")
			content, _ := item["content"].(map[string]any)
			name := fmt.Sprint(item["name"])
			if q, ok := content["query"].(string); ok {
				raw = append(raw, kqlQuery{"workbook.json " + name, q})
			}
			if ps, ok := content["parameters"].([]any); ok {
				for _, p := range ps {
					pm := obj(t, p, "parameter")
					params[fmt.Sprint(pm["name"])] = pm
					if q, ok := pm["query"].(string); ok {
						raw = append(raw, kqlQuery{fmt.Sprintf("workbook.json %s parameter %v", name, pm["name"]), q})
					}
				}
			}
			if nested, ok := content["items"].([]any); ok {
				walk(nested)
			}
		}
	}
	walk(arr(t, wb["items"], "workbook items"))
	for i, q := range raw {
		raw[i].Text = workbookPlaceholder.ReplaceAllStringFunc(q.Text, func(ph string) string {
			m := workbookPlaceholder.FindStringSubmatch(ph)
			p, ok := params[m[1]]
			if !ok {
				return ph
			}
			if fmt.Sprint(p["type"]) == "4" { // time range
				switch m[2] {
				case "start":
					return "datetime(2026-12-01T00:00:00Z)"
				case "end":
					return "datetime(2026-12-08T00:00:00Z)"
				default:
					return "> ago(7d)"
				}
			}
			quote, _ := p["quote"].(string)
			settings, _ := p["typeSettings"].(map[string]any)
			all, _ := settings["selectAllValue"].(string)
			return quote + all + quote
		})
	}
	return raw
}

// TestKQLQueriesRun: every query in the repository parses, binds against the Application
// Insights tables, and reads only keys the handler writes.
func TestKQLQueriesRun(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t)
	sources := repoQueries(t)
	// An extraction that finds nothing must not pass: each source has queries.
	want := map[string]int{"workbook": 9, "alerts": 5, "markdown": 8}
	var all []kqlQuery
	for _, src := range slices.Sorted(maps.Keys(want)) {
		if n := len(sources[src]); n < want[src] {
			t.Errorf("%s: found %d queries; want at least %d (is the extraction broken?)", src, n, want[src])
		}
		all = append(all, sources[src]...)
	}
	results := runKQL(t, all)
	for _, q := range all {
		for _, p := range kqlProblems(q, results[q.ID], keys) {
			t.Errorf("%s: %s\nquery:\n%s", q.ID, p, q.Text)
		}
	}
}

// TestKQLCheckCatchesTypos: the check fails on a misspelt column, table or key, and on a key of
// another event, in the repository's own queries.
func TestKQLCheckCatchesTypos(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t)
	sources := repoQueries(t)
	base := sources["workbook"][0]
	for _, q := range sources["workbook"] {
		if strings.Contains(q.Text, "customEvents") && strings.Contains(q.Text, "timestamp") &&
			strings.Contains(q.Text, "customDimensions.status") && strings.Contains(q.Text, `"SessionRevocation"`) {
			base = q
			break
		}
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"column", "timestamp", "timestmp", "KS142"},
		{"table", "customEvents", "customEvent", "KS204"},
		{"customDimensions key", "customDimensions.status", "customDimensions.stauts", "customDimensions.stauts"},
		{"key of another event", "customDimensions.status", "customDimensions.finding", "customDimensions.finding"},
		{"measurement key", "customDimensions.status", "tostring(customMeasurements.durationMS)", "customMeasurements.durationMS"},
		{"bracketed key", "customDimensions.status", `customDimensions["stauts"]`, "customDimensions.stauts"},
		{"syntax", "| where", "| wher", "KS"},
	}
	var queries []kqlQuery
	for _, tt := range tests {
		if !strings.Contains(base.Text, tt.from) {
			t.Fatalf("query %s has no %q to plant a typo in", base.ID, tt.from)
		}
		queries = append(queries, kqlQuery{tt.name, strings.Replace(base.Text, tt.from, tt.to, 1)})
	}
	queries = append(queries, kqlQuery{"unchanged", base.Text})
	results := runKQL(t, queries)
	if p := kqlProblems(queries[len(queries)-1], results["unchanged"], keys); len(p) > 0 {
		t.Fatalf("the unchanged query %s fails: %v", base.ID, p)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := kqlProblems(queries[i], results[tt.name], keys)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("check(%q) = %v; want a problem naming %q", queries[i].Text, problems, tt.want)
			}
		})
	}
}
