package infra_test

// The Sentinel template's portal form (integrations/sentinel/createUiDefinition.json) is checked
// against Microsoft's published CreateUIDefinition schema (schemas/0.1.2-preview, copied unchanged)
// and against the template it fills in: every output is a template parameter, every parameter the
// template cannot do without is an output, and every output reads an element the form has.

import (
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const (
	sentinelForm     = "../integrations/sentinel/createUiDefinition.json"
	sentinelTemplate = "../integrations/sentinel/azuredeploy.json"
)

// mustCompileFormSchema compiles CreateUIDefinition.MultiVm.json with the two files it refers to.
// Their "$schema" is the unversioned http://json-schema.org/schema#, which names no draft; they
// were written for draft 4 (they use "id"), and are compiled as such.
func mustCompileFormSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	for _, name := range []string{"CreateUIDefinition.MultiVm.json", "CreateUIDefinition.CommonControl.json", "CreateUIDefinition.ProviderControl.json"} {
		f, err := os.Open(filepath.Join("schemas", uiSchemaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := doc.(map[string]any)
		if id := strings.TrimSuffix(m["id"].(string), "#"); id != schemaBase+uiSchemaDir+"/"+name {
			t.Fatalf("%s has id %s; want %s (keep the repository's layout)", name, id, schemaBase+uiSchemaDir+"/"+name)
		}
		delete(m, "$schema") // in memory only: the draft is DefaultDraft's
		if err := c.AddResource(schemaBase+uiSchemaDir+"/"+name, m); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile(schemaBase + uiSchemaDir + "/CreateUIDefinition.MultiVm.json")
	if err != nil {
		t.Fatalf("compile the CreateUIDefinition schema: %v", err)
	}
	return sch
}

func mustLoadJSONAny(t *testing.T, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestSentinelFormMatchesSchemaAndTemplate: the portal form is valid, and it fills in exactly the
// template's parameters.
func TestSentinelFormMatchesSchemaAndTemplate(t *testing.T) {
	t.Parallel()
	sch := mustCompileFormSchema(t)
	form := mustLoadJSONAny(t, sentinelForm)
	if err := sch.Validate(form); err != nil {
		t.Fatalf("%s does not match CreateUIDefinition.MultiVm.json:\n%v", sentinelForm, err)
	}
	f := form.(map[string]any)
	if f["$schema"] != schemaBase+uiSchemaDir+"/CreateUIDefinition.MultiVm.json#" || f["handler"] != "Microsoft.Azure.CreateUIDef" {
		t.Errorf("form $schema %v, handler %v; want the 0.1.2-preview schema and Microsoft.Azure.CreateUIDef (a form for a template)", f["$schema"], f["handler"])
	}
	params := f["parameters"].(map[string]any)

	// The form's elements, by where an output reads them: basics('x') or steps('s').x.
	elements := map[string]map[string]any{}
	var collect func(where string, list []any)
	collect = func(where string, list []any) {
		for _, e := range list {
			el := e.(map[string]any)
			name, _ := el["name"].(string)
			if _, dup := elements[where+name]; dup {
				t.Errorf("two elements named %s", where+name)
			}
			elements[where+name] = el
			if nested, ok := el["elements"].([]any); ok { // a section: its elements are read through it
				collect(where+name+".", nested)
			}
		}
	}
	collect("basics.", params["basics"].([]any))
	for _, s := range params["steps"].([]any) {
		step := s.(map[string]any)
		collect("steps."+step["name"].(string)+".", step["elements"].([]any))
	}

	tmpl := mustReadJSON(t, sentinelTemplate)
	tparams := tmpl["parameters"].(map[string]any)
	outputs := params["outputs"].(map[string]any)
	ref := regexp.MustCompile(`^\[(?:basics\('([^']+)'\)|steps\('([^']+)'\)\.([A-Za-z0-9_]+))\]$`)
	for _, name := range slices.Sorted(maps.Keys(outputs)) {
		p, ok := tparams[name]
		if !ok {
			t.Errorf("output %s is no parameter of %s (the deployment would fail)", name, sentinelTemplate)
			continue
		}
		expr, _ := outputs[name].(string)
		m := ref.FindStringSubmatch(expr)
		if m == nil {
			t.Errorf("output %s = %q; want one element of the form, basics('x') or steps('s').x", name, expr)
			continue
		}
		key := "basics." + m[1]
		if m[1] == "" {
			key = "steps." + m[2] + "." + m[3]
		}
		el, ok := elements[key]
		if !ok {
			t.Errorf("output %s reads %s, which the form does not have", name, key)
			continue
		}
		// A text box's own check must accept the template's default, where it offers one.
		c, _ := el["constraints"].(map[string]any)
		re, _ := c["regex"].(string)
		if re != "" {
			rx, err := regexp.Compile(re)
			if err != nil {
				t.Errorf("element %s: regex %q: %v", key, re, err)
				continue
			}
			if d, ok := el["defaultValue"].(string); ok && !rx.MatchString(d) {
				t.Errorf("element %s: its default %q does not match its own regex %q", key, d, re)
			}
			if def, ok := p.(map[string]any)["defaultValue"].(string); ok && !strings.HasPrefix(def, "[") && c["required"] == false && !rx.MatchString(def) {
				t.Errorf("element %s is optional but refuses the template's default %q", key, def)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tparams)) {
		if _, hasDefault := tparams[name].(map[string]any)["defaultValue"]; !hasDefault {
			if _, ok := outputs[name]; !ok {
				t.Errorf("parameter %s has no default and the form does not fill it in", name)
			}
		}
	}
}

// TestSentinelFormChecks: the text boxes accept what the template takes and refuse the rest.
func TestSentinelFormChecks(t *testing.T) {
	t.Parallel()
	form := mustReadJSON(t, sentinelForm)
	regex := map[string]*regexp.Regexp{}
	params := form["parameters"].(map[string]any)
	all := params["basics"].([]any)
	for _, s := range params["steps"].([]any) {
		all = append(all, s.(map[string]any)["elements"].([]any)...)
	}
	for _, e := range all {
		el := e.(map[string]any)
		if c, ok := el["constraints"].(map[string]any); ok {
			regex[el["name"].(string)] = regexp.MustCompile(c["regex"].(string))
		}
	}
	tests := []struct {
		element, value string
		want           bool
	}{
		{"testUserUpn", "", true},
		{"testUserUpn", "test.user@contoso.com", true},
		{"testUserUpn", "o'neil@contoso.com", true},
		{"testUserUpn", "test.user", false},
		{"testUserUpn", `a"b@contoso.com`, false}, // the analytics rule's query quotes it
		{"testUserUpn", "a b@contoso.com", false},
		{"automationPrincipalId", "", true},
		{"automationPrincipalId", "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", true},
		{"automationPrincipalId", "98785600", false},
		{"apiAudience", "api://0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", true},
		{"apiAudience", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", false},
		{"workspaceName", "ws-soc", true},
		{"workspaceName", "-ws", false},
	}
	for _, tt := range tests {
		re, ok := regex[tt.element]
		if !ok {
			t.Fatalf("the form has no checked element %s", tt.element)
		}
		if got := re.MatchString(tt.value); got != tt.want {
			t.Errorf("%s accepts %q = %v; want %v", tt.element, tt.value, got, tt.want)
		}
	}
}

// TestFormSchemaRefusesMistakes: the published schema, as compiled here, catches the mistakes a
// hand-written form makes.
func TestFormSchemaRefusesMistakes(t *testing.T) {
	t.Parallel()
	sch := mustCompileFormSchema(t)
	base := func(element string) any {
		var v any
		doc := `{"$schema":"https://schema.management.azure.com/schemas/0.1.2-preview/CreateUIDefinition.MultiVm.json#","handler":"Microsoft.Azure.CreateUIDef","version":"0.1.2-preview",
			"parameters":{"basics":[` + element + `],"steps":[],"outputs":{}}}`
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, element string
		valid         bool
	}{
		{"text box", `{"name":"a","type":"Microsoft.Common.TextBox","label":"A","constraints":{"required":true,"regex":"^a$","validationMessage":"m"}}`, true},
		{"misspelt member", `{"name":"a","type":"Microsoft.Common.TextBox","label":"A","tooltip":"t"}`, false},
		{"unknown control", `{"name":"a","type":"Microsoft.Common.TextBoxx","label":"A"}`, false},
		{"missing label", `{"name":"a","type":"Microsoft.Common.TextBox"}`, false},
		{"info box without text", `{"name":"a","type":"Microsoft.Common.InfoBox","options":{"icon":"Info"}}`, false},
	}
	for _, tt := range tests {
		err := sch.Validate(base(tt.element))
		if (err == nil) != tt.valid {
			t.Errorf("%s: Validate = %v; want valid %v", tt.name, err, tt.valid)
		}
	}
}

// TestSentinelDeployButton: the Sentinel page's "Deploy to Azure" button opens the template and
// its form from one release tag (never a branch, whose template may have moved on), and both
// files exist at those paths in the repository.
func TestSentinelDeployButton(t *testing.T) {
	t.Parallel()
	page := string(mustRead(t, "../integrations/sentinel/README.md"))
	button := regexp.MustCompile(`\(https://portal\.azure\.com/#create/Microsoft\.Template/uri/([^/)]+)/createUIDefinitionUri/([^/)]+)\)`)
	m := button.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("integrations/sentinel/README.md has no Deploy to Azure button with a createUIDefinitionUri")
	}
	raw := regexp.MustCompile(`^https://raw\.githubusercontent\.com/entra-revoke/entra-revoke/(v[0-9]+\.[0-9]+\.[0-9]+)/(.+)$`)
	var tags []string
	for i, want := range []string{"integrations/sentinel/azuredeploy.json", "integrations/sentinel/createUiDefinition.json"} {
		u, err := url.PathUnescape(m[i+1])
		if err != nil {
			t.Fatal(err)
		}
		p := raw.FindStringSubmatch(u)
		if p == nil || p[2] != want {
			t.Errorf("button URL %d = %s; want raw.githubusercontent.com/entra-revoke/entra-revoke/<release tag>/%s", i+1, u, want)
			continue
		}
		if _, err := os.Stat("../" + p[2]); err != nil {
			t.Errorf("the button opens %s: %v", p[2], err)
		}
		tags = append(tags, p[1])
	}
	if len(tags) == 2 && tags[0] != tags[1] {
		t.Errorf("the button's template is of %s, its form of %s; want one release", tags[0], tags[1])
	}
}
