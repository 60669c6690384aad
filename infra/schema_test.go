package infra_test

// Every ARM resource we deploy is validated against Microsoft's published resource schema for
// its type and apiVersion (copied into schemas/, see schemas/README.md), with one addition the
// published schemas leave out: a property the schema does not define is an error. The schemas
// say nothing about unknown properties (they never set additionalProperties), so a misspelt or
// misplaced property would pass them and be dropped or refused by Azure; closing every object
// that lists its properties makes the check as strict as the resource provider.
//
// ARM template expressions ("[parameters('x')]") need nothing special: the schemas themselves
// accept an expression wherever a property may be one (oneOf the value's schema or
// common/definitions.json#/definitions/expression), and that is all the check allows.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaTemplates are the ARM templates whose resources are checked.
var schemaTemplates = []string{
	"azuredeploy.json",
	"alerts.json",
	"../integrations/sentinel/azuredeploy.json",
	"../integrations/logic-apps/azuredeploy.json",
}

// schemaUnpublished lists resource types with no published schema at the apiVersion we use, and
// what checks them instead.
var schemaUnpublished = map[string]string{
	// The newest Microsoft.Logic schema is 2017-07-01, whose workflow definition is a free object.
	"Microsoft.Logic/workflows@2019-05-01": "no published schema; integrations/workflow_check_test.go checks the definition",
}

// schemaAmendments are properties Microsoft documents for a resource but its published schema
// lacks. Each is added to the schema for exactly that object, with the values documented, so
// nothing else is let through.
var schemaAmendments = []struct {
	file, pointer, property string // pointer: the object schema, within file
	schema                  map[string]any
	why                     string
}{
	{
		"2016-06-01/Microsoft.Web.json", "/resourceDefinitions/connections", "kind",
		map[string]any{"enum": []any{"V1", "V2"}},
		"an API connection that authenticates with a managed identity sets kind V1 (Consumption): " +
			"learn.microsoft.com/azure/logic-apps/authenticate-with-managed-identity#arm-template-for-api-connections-and-managed-identities",
	},
	{
		"2016-06-01/Microsoft.Web.json", "/definitions/ApiConnectionDefinitionProperties", "parameterValueType",
		map[string]any{"enum": []any{"Alternative"}},
		"and parameterValueType Alternative; same page (also in every Microsoft Sentinel playbook that " +
			"connects with a managed identity, e.g. Azure/Azure-Sentinel Block-AADUser)",
	},
}

// schemaDiscriminated are definitions whose published form lost the subtypes Microsoft documents
// for them (a discriminated union: the subtype is chosen by one member's value). Each is replaced,
// in memory, by oneOf its subtypes as the published file defines them, each subtype given the
// members every subtype has; the files on disk stay as published.
var schemaDiscriminated = []struct {
	file, definition string
	subtypes         []string       // definitions in file, one per discriminator value
	common           map[string]any // members of every subtype, with their schemas
	why              string
}{
	{
		"2023-02-01/Microsoft.SecurityInsights.json", "AutomationRuleCondition",
		[]string{"PropertyConditionProperties", "PropertyArrayChangedConditionProperties", "PropertyChangedConditionProperties"},
		nil,
		"published as a bare object, so any condition passed; conditionType selects the subtype: " +
			"learn.microsoft.com/azure/templates/microsoft.securityinsights/2023-02-01/automationrules#automationrulecondition-objects",
	},
	{
		"2023-02-01/Microsoft.SecurityInsights.json", "AutomationRuleAction",
		[]string{"AutomationRuleModifyPropertiesAction", "AutomationRuleRunPlaybookAction"},
		map[string]any{"order": map[string]any{"oneOf": []any{
			map[string]any{"type": "integer"},
			map[string]any{"$ref": "https://schema.management.azure.com/schemas/common/definitions.json#/definitions/expression"},
		}}},
		"published as allOf a closed {order, actionType} and the subtypes, which refuses every action's " +
			"actionConfiguration; actionType selects the subtype and every action has an order: " +
			"learn.microsoft.com/azure/templates/microsoft.securityinsights/2023-02-01/automationrules#automationruleaction-objects",
	},
}

// schemaExtensionResources are resource types whose published file defines only their properties:
// Microsoft.SecurityInsights' resources are extension resources of a workspace, and its files
// carry no resource definition for them (no name, type or apiVersion). The definition is made
// here, in memory, from the members the resource reference documents and the file's own
// definitions for the body: members, or one branch per kind (each a definition of file).
var schemaExtensionResources = []struct {
	file, typ, apiVersion string
	members               map[string]any // the body's members, besides name, type, apiVersion and etag
	kinds                 []string       // or definitions, one per kind, each giving kind and properties
	why                   string
}{
	{
		"2023-02-01/Microsoft.SecurityInsights.json", "Microsoft.SecurityInsights/automationRules", "2023-02-01",
		map[string]any{"properties": map[string]any{"$ref": "#/definitions/AutomationRuleProperties"}}, nil,
		"learn.microsoft.com/azure/templates/microsoft.securityinsights/2023-02-01/automationrules (name, etag, properties)",
	},
	{
		"2023-02-01/Microsoft.SecurityInsights.json", "Microsoft.SecurityInsights/alertRules", "2023-02-01",
		nil, []string{"ScheduledAlertRule", "FusionAlertRule", "MicrosoftSecurityIncidentCreationAlertRule"},
		"learn.microsoft.com/azure/templates/microsoft.securityinsights/2023-02-01/alertrules (name, etag, kind and its properties)",
	},
}

// uiSchemaDir holds the portal form's schemas (createUiDefinition.json), which describe no ARM
// resource: createuidefinition_test.go uses them.
const uiSchemaDir = "0.1.2-preview"

// schemaEngineKeys are resource members the deployment engine itself reads, defined for every
// resource by deploymentTemplate.json (resourceBase) rather than by the resource's schema.
var schemaEngineKeys = []string{"condition", "dependsOn", "copy", "comments", "scope"}

const schemaBase = "https://schema.management.azure.com/schemas/"

// schemaSet is the copied schemas, closed and compiled on demand.
type schemaSet struct {
	c    *jsonschema.Compiler
	docs map[string]map[string]any // by path under schemas/, e.g. "2024-04-01/Microsoft.Web.json"
}

func loadSchemas(t *testing.T) *schemaSet {
	t.Helper()
	s := &schemaSet{c: jsonschema.NewCompiler(), docs: map[string]map[string]any{}}
	s.c.UseRegexpEngine(schemaRegexp)
	err := filepath.WalkDir("schemas", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
			if err == nil && d.IsDir() && d.Name() == uiSchemaDir {
				return fs.SkipDir
			}
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, "schemas"+string(filepath.Separator)))
		m, ok := doc.(map[string]any)
		if !ok {
			return fmt.Errorf("%s is not a JSON object", path)
		}
		if id := strings.TrimSuffix(fmt.Sprint(m["id"]), "#"); id != schemaBase+rel {
			return fmt.Errorf("%s has id %s; want %s (keep the repository's layout)", path, id, schemaBase+rel)
		}
		s.docs[rel] = m
		return nil
	})
	if err != nil {
		t.Fatalf("load schemas: %v", err)
	}
	for _, a := range schemaAmendments {
		obj, err := schemaPointer(s.docs[a.file], a.pointer)
		if err != nil {
			t.Fatalf("amendment %s#%s: %v", a.file, a.pointer, err)
		}
		props := obj["properties"].(map[string]any)
		if _, exists := props[a.property]; exists {
			t.Fatalf("amendment %s#%s/%s: the published schema defines it now; drop the amendment", a.file, a.pointer, a.property)
		}
		props[a.property] = a.schema
	}
	for _, ds := range schemaDiscriminated {
		defs, _ := s.docs[ds.file]["definitions"].(map[string]any)
		if _, ok := defs[ds.definition].(map[string]any); !ok {
			t.Fatalf("discriminated %s#/definitions/%s: no such definition", ds.file, ds.definition)
		}
		var branches []any
		for _, sub := range ds.subtypes {
			st, ok := defs[sub].(map[string]any)
			if !ok {
				t.Fatalf("discriminated %s: no subtype %s", ds.definition, sub)
			}
			props, _ := st["properties"].(map[string]any)
			for name, sch := range ds.common {
				if _, exists := props[name]; !exists {
					props[name] = sch
				}
			}
			branches = append(branches, map[string]any{"$ref": "#/definitions/" + sub})
		}
		defs[ds.definition] = map[string]any{"oneOf": branches}
	}
	for _, er := range schemaExtensionResources {
		doc := s.docs[er.file]
		if doc == nil {
			t.Fatalf("extension resource %s: no schemas/%s", er.typ, er.file)
		}
		defs, _ := doc["definitions"].(map[string]any)
		_, path, _ := strings.Cut(er.typ, "/")
		props := map[string]any{
			"name":       map[string]any{"type": "string"},
			"type":       map[string]any{"type": "string", "enum": []any{er.typ}},
			"apiVersion": map[string]any{"type": "string", "enum": []any{er.apiVersion}},
			"etag":       map[string]any{"type": "string"},
		}
		rd := map[string]any{"type": "object", "properties": props, "required": []any{"name", "type", "apiVersion"}}
		maps.Copy(props, er.members)
		var branches []any
		for _, kind := range er.kinds {
			kd, ok := defs[kind].(map[string]any)
			if !ok {
				t.Fatalf("extension resource %s: no definition %s", er.typ, kind)
			}
			branches = append(branches, map[string]any{"type": "object", "properties": maps.Clone(kd["properties"].(map[string]any)), "required": kd["required"]})
		}
		if len(branches) > 0 {
			rd["oneOf"] = branches
		}
		rds, _ := doc["resourceDefinitions"].(map[string]any)
		if rds == nil {
			rds = map[string]any{}
			doc["resourceDefinitions"] = rds
		}
		if _, exists := rds[strings.ReplaceAll(path, "/", "_")]; exists {
			t.Fatalf("extension resource %s: %s defines it now; drop it from schemaExtensionResources", er.typ, er.file)
		}
		rds[strings.ReplaceAll(path, "/", "_")] = rd
	}
	// Of the deployment template's schema only the definitions of a resource's common members
	// are used; the rest refers to every provider's schemas, which are not copied.
	tmpl := s.docs["2019-04-01/deploymentTemplate.json"]
	defs, _ := tmpl["definitions"].(map[string]any)
	s.docs["2019-04-01/deploymentTemplate.json"] = map[string]any{
		"id": tmpl["id"], "$schema": tmpl["$schema"],
		"definitions": map[string]any{
			"ARMResourceBase": defs["ARMResourceBase"], "resourceBase": defs["resourceBase"],
			"resourceLocations": defs["resourceLocations"], "resourceCopy": defs["resourceCopy"],
		},
	}
	for _, rel := range slices.Sorted(maps.Keys(s.docs)) {
		doc := s.docs[rel]
		if rel != "2019-04-01/deploymentTemplate.json" { // its members are the envelope's, checked by schemaEnvelope
			closeDefinitions(doc)
		}
		if err := s.c.AddResource(schemaBase+rel, doc); err != nil {
			t.Fatalf("add %s: %v", rel, err)
		}
	}
	return s
}

// schemaPointer follows a JSON pointer made of object members.
func schemaPointer(doc map[string]any, pointer string) (map[string]any, error) {
	node := doc
	for _, p := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		next, ok := node[p].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("no object at %q", p)
		}
		node = next
	}
	return node, nil
}

// closeDefinitions makes every object schema of doc that lists its properties refuse others.
// A resource definition's own level stays open: its members are checked against the union of
// the resource's and the deployment engine's (schemaEnvelope), as deploymentTemplate.json
// composes them.
func closeDefinitions(doc map[string]any) {
	for key, v := range doc {
		defs, ok := v.(map[string]any)
		if !ok {
			continue
		}
		switch {
		case key == "definitions":
			for _, d := range defs {
				closeSchema(d)
			}
		case strings.HasSuffix(key, "resourceDefinitions"):
			for _, d := range defs {
				rd, _ := d.(map[string]any)
				for _, p := range schemaMembers(rd) {
					closeSchema(p)
				}
				for _, branch := range schemaBranches(rd) {
					for _, p := range schemaMembers(branch) {
						closeSchema(p)
					}
				}
			}
		}
	}
}

// closeSchema sets additionalProperties false on node and on every schema nested in it, where
// the object lists its properties and says nothing about others. An object whose oneOf/anyOf
// branches list properties of their own is closed branch by branch instead, each branch
// allowing its own members and the object's.
func closeSchema(v any) {
	node, ok := v.(map[string]any)
	if !ok {
		return
	}
	props, hasProps := node["properties"].(map[string]any)
	_, hasAdditional := node["additionalProperties"]
	_, hasPattern := node["patternProperties"]
	_, hasAllOf := node["allOf"]
	if hasProps && !hasAdditional && !hasPattern && !hasAllOf {
		branches := schemaBranches(node)
		if len(branches) == 0 {
			node["additionalProperties"] = false
		}
		for _, b := range branches {
			bp, _ := b["properties"].(map[string]any)
			for name := range props {
				if _, ok := bp[name]; !ok {
					bp[name] = map[string]any{}
				}
			}
			if _, ok := b["additionalProperties"]; !ok {
				b["additionalProperties"] = false
			}
		}
	}
	for _, p := range schemaMembers(node) {
		closeSchema(p)
	}
	if ap, ok := node["additionalProperties"].(map[string]any); ok {
		closeSchema(ap)
	}
	switch items := node["items"].(type) {
	case map[string]any:
		closeSchema(items)
	case []any:
		for _, it := range items {
			closeSchema(it)
		}
	}
	for _, k := range []string{"oneOf", "anyOf", "allOf"} {
		list, _ := node[k].([]any)
		for _, b := range list {
			closeSchema(b)
		}
	}
	closeSchema(node["not"])
}

// schemaMembers returns the schemas of an object schema's properties.
func schemaMembers(node map[string]any) []any {
	props, _ := node["properties"].(map[string]any)
	return slices.Collect(maps.Values(props))
}

// schemaBranches returns node's inline oneOf/anyOf branches that list properties.
func schemaBranches(node map[string]any) []map[string]any {
	var out []map[string]any
	for _, k := range []string{"oneOf", "anyOf"} {
		list, _ := node[k].([]any)
		for _, b := range list {
			if bm, ok := b.(map[string]any); ok {
				if _, ok := bm["properties"].(map[string]any); ok {
					out = append(out, bm)
				}
			}
		}
	}
	return out
}

// definition finds the schema of typ at apiVersion: the resource definition named after the
// type's path (Microsoft.Web/sites/config -> sites_config) in a copied file of that apiVersion
// and provider. It returns the file and the definition's key.
func (s *schemaSet) definition(typ, apiVersion string) (file, key string, ok bool) {
	provider, path, _ := strings.Cut(typ, "/")
	key = strings.ReplaceAll(path, "/", "_")
	for _, rel := range slices.Sorted(maps.Keys(s.docs)) {
		dir, name := filepath.Split(rel)
		if strings.TrimSuffix(dir, "/") != apiVersion || !strings.HasPrefix(strings.ToLower(name), strings.ToLower(provider)+".") {
			continue
		}
		for _, section := range []string{"resourceDefinitions", "subscription_resourceDefinitions"} {
			defs, _ := s.docs[rel][section].(map[string]any)
			rd, found := defs[key].(map[string]any)
			if !found {
				continue
			}
			// The type's case must match the schema's (ARM is case-insensitive; we are not).
			tp, _ := rd["properties"].(map[string]any)["type"].(map[string]any)
			if enum, _ := tp["enum"].([]any); slices.Contains(enum, any(typ)) {
				return rel, "/" + section + "/" + key, true
			}
		}
	}
	return "", "", false
}

// schemaEnvelope returns the members a resource of this definition may have: the deployment
// engine's (deploymentTemplate.json's resourceBase) and the definition's, its branches' included.
func (s *schemaSet) schemaEnvelope(t *testing.T, file, key string) []string {
	t.Helper()
	tmpl := s.docs["2019-04-01/deploymentTemplate.json"]
	defs := tmpl["definitions"].(map[string]any)
	var allowed []string
	collect := func(node map[string]any) {
		for name := range node["properties"].(map[string]any) {
			allowed = append(allowed, name)
		}
	}
	collect(defs["ARMResourceBase"].(map[string]any))
	for _, part := range defs["resourceBase"].(map[string]any)["allOf"].([]any) {
		if p, ok := part.(map[string]any); ok && p["properties"] != nil {
			collect(p)
		}
	}
	rd, err := schemaPointer(s.docs[file], key)
	if err != nil {
		t.Fatalf("%s#%s: %v", file, key, err)
	}
	collect(rd)
	for _, b := range schemaBranches(rd) {
		collect(b)
	}
	slices.Sort(allowed)
	return slices.Compact(allowed)
}

// TestResourcesMatchPublishedSchemas validates every resource of our ARM templates against the
// published schema for its type and apiVersion, refusing properties the schema does not define.
func TestResourcesMatchPublishedSchemas(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	base, err := s.c.Compile(schemaBase + "2019-04-01/deploymentTemplate.json#/definitions/resourceBase")
	if err != nil {
		t.Fatalf("compile resourceBase: %v", err)
	}
	checked := map[string]bool{}
	for _, path := range schemaTemplates {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var visit func(where string, resources []any)
		visit = func(where string, resources []any) {
			for i, r := range resources {
				res, ok := r.(map[string]any)
				if !ok {
					t.Errorf("%s resource %d is not an object", where, i)
					continue
				}
				typ, _ := res["type"].(string)
				apiVersion, _ := res["apiVersion"].(string)
				at := fmt.Sprintf("%s: %s@%s %v", where, typ, apiVersion, res["name"])
				if nested, ok := res["resources"].([]any); ok {
					visit(at, nested)
				}
				// An inline nested template's resources are deployed too: validate them as well.
				if props, ok := res["properties"].(map[string]any); ok && typ == "Microsoft.Resources/deployments" {
					if inner, ok := props["template"].(map[string]any); ok {
						if nested, ok := inner["resources"].([]any); ok {
							visit(at+" (nested template)", nested)
						}
					}
				}
				if _, skip := schemaUnpublished[typ+"@"+apiVersion]; skip {
					continue
				}
				file, key, found := s.definition(typ, apiVersion)
				if !found {
					t.Errorf("%s: no schema in schemas/ for this type and apiVersion; copy it (see schemas/README.md)", at)
					continue
				}
				checked[typ+"@"+apiVersion] = true
				allowed := s.schemaEnvelope(t, file, key)
				for _, k := range slices.Sorted(maps.Keys(res)) {
					if !slices.Contains(allowed, k) {
						t.Errorf("%s: member %q is defined neither by the resource's schema nor by the deployment engine (allowed: %v)", at, k, allowed)
					}
				}
				if err := base.Validate(res); err != nil {
					t.Errorf("%s: does not match deploymentTemplate.json resourceBase:\n%v", at, err)
				}
				sch, err := s.c.Compile(schemaBase + file + "#" + key)
				if err != nil {
					t.Fatalf("%s: compile %s#%s: %v", at, file, key, err)
				}
				inst := maps.Clone(res)
				for _, k := range schemaEngineKeys {
					delete(inst, k)
				}
				delete(inst, "resources")
				if err := sch.Validate(inst); err != nil {
					// The schemas constrain concrete names (a container's length, which of two
					// branches an "app/ftp" policy is); an expression is no name, and where the
					// schema offers no expression branch for it, the name it stands for is what
					// the schema checks. Only the name: it never depends on deployed resources.
					name, _ := inst["name"].(string)
					if !isARMExpression(name) {
						t.Errorf("%s: does not match %s#%s:\n%v", at, file, key, err)
						continue
					}
					inst["name"] = armName(t, doc.(map[string]any), name)
					if err2 := sch.Validate(inst); err2 != nil {
						t.Errorf("%s: does not match %s#%s, neither with its name expression:\n%v\nnor with the name it evaluates to (%v):\n%v",
							at, file, key, err, inst["name"], err2)
					}
				}
			}
		}
		resources, _ := doc.(map[string]any)["resources"].([]any)
		visit(path, resources)
	}
	// Every copied schema is needed by some resource (a copy nobody validates against is dead
	// weight); the deployment template's own schema and the shared definitions are always needed.
	used := map[string]bool{"2019-04-01/deploymentTemplate.json": true, "common/definitions.json": true}
	for ta := range checked {
		typ, apiVersion, _ := strings.Cut(ta, "@")
		file, _, _ := s.definition(typ, apiVersion)
		used[file] = true
	}
	for rel := range s.docs {
		if !used[rel] {
			t.Errorf("schemas/%s validates no resource of our templates; remove it", rel)
		}
	}
}

func isARMExpression(s string) bool {
	return strings.HasPrefix(s, "[") && !strings.HasPrefix(s, "[[") && strings.HasSuffix(s, "]")
}

// armName evaluates a resource name expression with the template's defaults, and a placeholder
// for each parameter that has none.
func armName(t *testing.T, tmpl map[string]any, expr string) any {
	t.Helper()
	values := map[string]any{}
	params, _ := tmpl["parameters"].(map[string]any)
	for name, p := range params {
		if _, ok := p.(map[string]any)["defaultValue"]; !ok {
			values[name] = "placeholder-" + strings.ToLower(name)
		}
	}
	return newARM(t, tmpl, values).value(expr)
}

// TestSchemaCheckRefusesWhatAzureWould: the check is as strict as it claims, on resources that
// are wrong in the ways a template goes wrong.
func TestSchemaCheckRefusesWhatAzureWould(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	tests := []struct {
		name     string
		resource string
		want     string // a fragment of the error; empty: valid
	}{
		{"valid queue", `{"type":"Microsoft.Storage/storageAccounts/queueServices/queues","apiVersion":"2023-05-01","name":"[concat('st', '/default/q')]","properties":{"metadata":{"a":"b"}}}`, ""},
		{"misspelt property", `{"type":"Microsoft.Storage/storageAccounts","apiVersion":"2023-05-01","name":"st","location":"westeurope","sku":{"name":"Standard_LRS"},"kind":"StorageV2","properties":{"allowSharedKeyAcess":false}}`, "allowSharedKeyAcess"},
		{"expression where the schema allows one", `{"type":"Microsoft.KeyVault/vaults","apiVersion":"2023-07-01","name":"kv-entra","location":"westeurope","properties":{"tenantId":"[subscription().tenantId]","sku":{"family":"A","name":"standard"},"enablePurgeProtection":"[parameters('p')]"}}`, ""},
		{"string where the schema wants a boolean", `{"type":"Microsoft.KeyVault/vaults","apiVersion":"2023-07-01","name":"kv-entra","location":"westeurope","properties":{"tenantId":"[subscription().tenantId]","sku":{"family":"A","name":"standard"},"enablePurgeProtection":"yes"}}`, "enablePurgeProtection"},
		{"bad enum", `{"type":"Microsoft.Storage/storageAccounts","apiVersion":"2023-05-01","name":"st","location":"westeurope","sku":{"name":"Standard_LRS"},"kind":"StorageV3","properties":{}}`, "kind"},
		{"queue name with a double hyphen (a lookahead pattern)", `{"type":"Microsoft.Storage/storageAccounts/queueServices/queues","apiVersion":"2023-05-01","name":"bad--queue"}`, "/name"},
		{"queue name without", `{"type":"Microsoft.Storage/storageAccounts/queueServices/queues","apiVersion":"2023-05-01","name":"good-queue"}`, ""},
		{"unknown branch member", `{"type":"Microsoft.Web/sites/basicPublishingCredentialsPolicies","apiVersion":"2023-12-01","name":"app/ftp","properties":{"allow":false,"deny":true}}`, "deny"},
		{"automation rule running a playbook", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"0d5b8f3e-1c2a-4b7d-9e6f-3a2b1c0d9e8f","properties":{"displayName":"r","order":100,"triggeringLogic":{"isEnabled":false,"triggersOn":"Incidents","triggersWhen":"Created","conditions":[{"conditionType":"Property","conditionProperties":{"propertyName":"IncidentRelatedAnalyticRuleIds","operator":"Contains","propertyValues":["/subscriptions/x/rule"]}}]},"actions":[{"order":1,"actionType":"RunPlaybook","actionConfiguration":{"logicAppResourceId":"/subscriptions/x/playbook","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}]}}`, ""},
		{"automation rule: unknown condition type", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"0d5b8f3e-1c2a-4b7d-9e6f-3a2b1c0d9e8f","properties":{"displayName":"r","order":100,"triggeringLogic":{"isEnabled":false,"triggersOn":"Incidents","triggersWhen":"Created","conditions":[{"conditionType":"Propery","conditionProperties":{"propertyName":"IncidentRelatedAnalyticRuleIds","operator":"Contains","propertyValues":["/subscriptions/x/rule"]}}]},"actions":[{"order":1,"actionType":"RunPlaybook","actionConfiguration":{"logicAppResourceId":"/subscriptions/x/playbook","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}]}}`, "conditionType"},
		{"automation rule: misspelt condition member", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"0d5b8f3e-1c2a-4b7d-9e6f-3a2b1c0d9e8f","properties":{"displayName":"r","order":100,"triggeringLogic":{"isEnabled":false,"triggersOn":"Incidents","triggersWhen":"Created","conditions":[{"conditionType":"Property","conditionPropertes":{"propertyName":"IncidentRelatedAnalyticRuleIds","operator":"Contains","propertyValues":["/subscriptions/x/rule"]}}]},"actions":[{"order":1,"actionType":"RunPlaybook","actionConfiguration":{"logicAppResourceId":"/subscriptions/x/playbook","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}]}}`, "conditionPropertes"},
		{"automation rule: unknown property to compare", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"0d5b8f3e-1c2a-4b7d-9e6f-3a2b1c0d9e8f","properties":{"displayName":"r","order":100,"triggeringLogic":{"isEnabled":false,"triggersOn":"Incidents","triggersWhen":"Created","conditions":[{"conditionType":"Property","conditionProperties":{"propertyName":"IncidentRuleIds","operator":"Contains","propertyValues":["/subscriptions/x/rule"]}}]},"actions":[{"order":1,"actionType":"RunPlaybook","actionConfiguration":{"logicAppResourceId":"/subscriptions/x/playbook","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}]}}`, "propertyName"},
		{"automation rule: misspelt playbook member", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"0d5b8f3e-1c2a-4b7d-9e6f-3a2b1c0d9e8f","properties":{"displayName":"r","order":100,"triggeringLogic":{"isEnabled":false,"triggersOn":"Incidents","triggersWhen":"Created","conditions":[{"conditionType":"Property","conditionProperties":{"propertyName":"IncidentRelatedAnalyticRuleIds","operator":"Contains","propertyValues":["/subscriptions/x/rule"]}}]},"actions":[{"order":1,"actionType":"RunPlaybook","actionConfiguration":{"logicAppId":"/subscriptions/x/playbook","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}]}}`, "logicAppId"},
		{"automation rule: unknown action type", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"0d5b8f3e-1c2a-4b7d-9e6f-3a2b1c0d9e8f","properties":{"displayName":"r","order":100,"triggeringLogic":{"isEnabled":false,"triggersOn":"Incidents","triggersWhen":"Created","conditions":[{"conditionType":"Property","conditionProperties":{"propertyName":"IncidentRelatedAnalyticRuleIds","operator":"Contains","propertyValues":["/subscriptions/x/rule"]}}]},"actions":[{"order":1,"actionType":"RunLogicApp","actionConfiguration":{"logicAppResourceId":"/subscriptions/x/playbook","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}]}}`, "actionType"},
		{"automation rule without triggering logic", `{"type":"Microsoft.SecurityInsights/automationRules","apiVersion":"2023-02-01","name":"x","properties":{"displayName":"r","order":1,"actions":[]}}`, "triggeringLogic"},
		{"scheduled analytics rule", `{"type":"Microsoft.SecurityInsights/alertRules","apiVersion":"2023-02-01","name":"r1","kind":"Scheduled","properties":{"displayName":"t","enabled":false,"suppressionDuration":"PT5H","suppressionEnabled":false,"query":"print 1","entityMappings":[{"entityType":"Account","fieldMappings":[{"identifier":"Name","columnName":"A"}]}]}}`, ""},
		{"analytics rule of an unknown kind", `{"type":"Microsoft.SecurityInsights/alertRules","apiVersion":"2023-02-01","name":"r1","kind":"Sheduled","properties":{"displayName":"t","enabled":false,"suppressionDuration":"PT5H","suppressionEnabled":false,"query":"print 1","entityMappings":[{"entityType":"Account","fieldMappings":[{"identifier":"Name","columnName":"A"}]}]}}`, "kind"},
		{"analytics rule: misspelt member", `{"type":"Microsoft.SecurityInsights/alertRules","apiVersion":"2023-02-01","name":"r1","kind":"Scheduled","properties":{"displayName":"t","enabled":false,"suppressionDuration":"PT5H","suppressionEnabled":false,"query":"print 1","entityMappings":[{"entityType":"Account","fieldMappings":[{"identifier":"Name","columnName":"A"}]}],"enable":true}}`, "enable"},
		{"analytics rule: unknown entity type", `{"type":"Microsoft.SecurityInsights/alertRules","apiVersion":"2023-02-01","name":"r1","kind":"Scheduled","properties":{"displayName":"t","enabled":false,"suppressionDuration":"PT5H","suppressionEnabled":false,"query":"print 1","entityMappings":[{"entityType":"Acount","fieldMappings":[{"identifier":"Name","columnName":"A"}]}]}}`, "entityType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res map[string]any
			if err := json.Unmarshal([]byte(tt.resource), &res); err != nil {
				t.Fatal(err)
			}
			file, key, ok := s.definition(res["type"].(string), res["apiVersion"].(string))
			if !ok {
				t.Fatalf("no schema for %v", res["type"])
			}
			sch, err := s.c.Compile(schemaBase + file + "#" + key)
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(res)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate(%s) = %v; want nil", tt.resource, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate(%s) = %v; want an error naming %q", tt.resource, err, tt.want)
			}
		})
	}
}

// schemaRegexp compiles the schemas' patterns. Go's regexp has no lookahead, which one storage
// name pattern uses; it is rewritten to an equivalent RE2 pattern plus a substring test. Any
// other pattern Go cannot compile fails the test rather than being skipped.
func schemaRegexp(pattern string) (jsonschema.Regexp, error) {
	if re, err := regexp.Compile(pattern); err == nil {
		return re, nil
	}
	// Lowercase letters, digits and hyphens, 3-63 long, starting and ending with a letter or
	// digit, no two hyphens in a row (container, queue and share names).
	if pattern == `^[a-z0-9]([a-z0-9]|(-(?!-))){1,61}[a-z0-9]$` {
		return noDoubleHyphen{regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`), pattern}, nil
	}
	return nil, errors.New("pattern " + pattern + " is not RE2 and has no equivalent in schemaRegexp")
}

type noDoubleHyphen struct {
	re       *regexp.Regexp
	original string
}

func (n noDoubleHyphen) MatchString(s string) bool {
	return n.re.MatchString(s) && !strings.Contains(s, "--")
}

func (n noDoubleHyphen) String() string { return n.original }
