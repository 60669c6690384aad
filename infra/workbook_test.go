package infra_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// workbookPath is the workbook's source. ARM cannot read a file, so azuredeploy.json carries the
// same JSON as its workbook's serializedData string; TestWorkbookEmbedded keeps the two equal
// (go test ./infra -run TestWorkbookEmbedded -update-workbook rewrites that one line).
const workbookPath = "workbook.json"

var updateWorkbook = flag.Bool("update-workbook", false, "rewrite the workbook's serializedData in azuredeploy.json from workbook.json")

// wantPanels are the workbook's panels (item names), each a question an operator asks.
var wantPanels = []string{
	"revocations-by-status", "revocations-by-caller", "queued-to-final", "rejections-by-reason",
	"watch-findings", "callbacks", "callback-attempts", "state-fallbacks", "guard-rails", "graph-permission",
}

// TestWorkbookEmbedded: the template deploys workbook.json as it is, on the Application Insights
// resource, unless deployWorkbook is false, under a name that stays the same across deployments.
func TestWorkbookEmbedded(t *testing.T) {
	tmpl := mustReadJSON(t, deployPath)
	wb := only(t, tmpl, "Microsoft.Insights/workbooks")
	props := obj(t, wb["properties"], "workbook properties")

	src := mustRead(t, workbookPath)
	var compact bytes.Buffer
	if err := json.Compact(&compact, src); err != nil {
		t.Fatalf("%s: %v", workbookPath, err)
	}
	if got := fmt.Sprint(props["serializedData"]); got != compact.String() {
		if !*updateWorkbook {
			t.Fatalf("azuredeploy.json's workbook serializedData differs from %s; run: go test ./infra -run TestWorkbookEmbedded -update-workbook", workbookPath)
		}
		raw := string(mustRead(t, deployPath))
		line := regexp.MustCompile(`(?m)^(\s*"serializedData": )".*",?$`)
		if n := len(line.FindAllString(raw, -1)); n != 1 {
			t.Fatalf("azuredeploy.json has %d serializedData lines; want 1", n)
		}
		enc, err := json.Marshal(compact.String())
		if err != nil {
			t.Fatal(err)
		}
		enc = bytes.ReplaceAll(enc, []byte(`\u003c`), []byte("<"))
		enc = bytes.ReplaceAll(enc, []byte(`\u003e`), []byte(">"))
		enc = bytes.ReplaceAll(enc, []byte(`\u0026`), []byte("&"))
		raw = line.ReplaceAllLiteralString(raw, line.FindStringSubmatch(raw)[1]+string(enc))
		if err := os.WriteFile(deployPath, []byte(raw), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the workbook in %s", deployPath)
	}

	c := newARM(t, tmpl, nil)
	if got := c.value(wb["condition"]); got != true {
		t.Errorf("workbook condition with the defaults = %v; want deployed by default", got)
	}
	off := newARM(t, tmpl, map[string]any{"deployWorkbook": false})
	if got := off.value(wb["condition"]); got != false {
		t.Errorf("workbook condition with deployWorkbook false = %v; want skipped", got)
	}
	aiID := c.value("[variables('appInsightsId')]")
	if got := c.value(props["sourceId"]); got != aiID {
		t.Errorf("workbook sourceId = %v; want the Application Insights resource %v", got, aiID)
	}
	if name := fmt.Sprint(wb["name"]); !strings.HasPrefix(name, "[guid(") {
		t.Errorf("workbook name = %s; want a deterministic guid() (a workbook's name must be a GUID)", name)
	}
	if n := c.value(wb["name"]); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(fmt.Sprint(n)) {
		t.Errorf("workbook name evaluates to %v; want a GUID", n)
	}
	if wb["kind"] != "shared" || props["category"] != "workbook" {
		t.Errorf("workbook kind %v category %v; want a shared workbook", wb["kind"], props["category"])
	}

	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var deployed map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(props["serializedData"])), &deployed); err != nil {
		t.Fatalf("serializedData is not JSON: %v", err)
	}
	if !reflect.DeepEqual(doc, deployed) {
		t.Errorf("the deployed workbook differs from %s", workbookPath)
	}
	checkWorkbook(t, doc)
}

// checkWorkbook: the panels the operator needs, each following the time range; the panels over
// revocations and the watch follow the caller too.
func checkWorkbook(t *testing.T, doc map[string]any) {
	t.Helper()
	if doc["version"] != "Notebook/1.0" {
		t.Errorf("workbook version = %v; want Notebook/1.0", doc["version"])
	}
	var panels, params []string
	for _, it := range arr(t, doc["items"], "workbook items") {
		item := obj(t, it, "item")
		content := obj(t, item["content"], "content")
		switch fmt.Sprint(item["type"]) {
		case "3":
			name := fmt.Sprint(item["name"])
			panels = append(panels, name)
			if content["timeContextFromParameter"] != "TimeRange" {
				t.Errorf("panel %s does not follow the TimeRange parameter", name)
			}
			q := fmt.Sprint(content["query"])
			if strings.Contains(q, "customDimensions.caller") && !strings.Contains(q, "in ({Caller})") {
				t.Errorf("panel %s reads the caller but does not filter on the Caller parameter", name)
			}
			if content["resourceType"] != "microsoft.insights/components" {
				t.Errorf("panel %s resourceType = %v; want Application Insights", name, content["resourceType"])
			}
		case "9":
			for _, p := range arr(t, content["parameters"], "parameters") {
				params = append(params, fmt.Sprint(obj(t, p, "parameter")["name"]))
			}
		}
	}
	for _, want := range wantPanels {
		if !slices.Contains(panels, want) {
			t.Errorf("workbook has no panel %q (panels: %v)", want, panels)
		}
	}
	if !slices.Equal(params, []string{"TimeRange", "Caller"}) {
		t.Errorf("workbook parameters = %v; want TimeRange and Caller", params)
	}
}
