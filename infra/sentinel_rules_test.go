package infra_test

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestSentinelTemplateTestRules: with a test account, the Sentinel template creates two rules in
// the workspace, both disabled: an analytics rule whose incident names the account as an Account
// entity, and an automation rule that runs the playbook for that analytics rule's incidents only
// (never for every incident). Without a test account it creates neither.
func TestSentinelTemplateTestRules(t *testing.T) {
	t.Parallel()
	var tmpl map[string]any
	if err := json.Unmarshal(mustRead(t, "../integrations/sentinel/azuredeploy.json"), &tmpl); err != nil {
		t.Fatal(err)
	}
	params := map[string]any{"FunctionAppName": "entra-revoke-fake", "ApiAudience": "api://0f1e2d3c", "WorkspaceName": "ws-soc",
		"TestUserUpn": "test.user@contoso.com"}
	arm := newARM(t, tmpl, params)
	byType := map[string]map[string]any{}
	for _, r := range tmpl["resources"].([]any) {
		res := r.(map[string]any)
		byType[res["type"].(string)] = res
	}
	const (
		workspace = "/subscriptions/" + fakeSubscriptionID + "/resourceGroups/" + fakeResourceGroup + "/providers/Microsoft.OperationalInsights/workspaces/ws-soc"
		playbook  = "/subscriptions/" + fakeSubscriptionID + "/resourceGroups/" + fakeResourceGroup + "/providers/Microsoft.Logic/workflows/entra-revoke-incident"
	)
	ruleRes, autoRes := byType["Microsoft.SecurityInsights/alertRules"], byType["Microsoft.SecurityInsights/automationRules"]
	if ruleRes == nil || autoRes == nil {
		t.Fatalf("the template has no test analytics rule or no automation rule")
	}
	rule, auto := arm.value(ruleRes).(map[string]any), arm.value(autoRes).(map[string]any)
	for _, r := range []map[string]any{rule, auto} {
		if r["condition"] != true || r["scope"] != "Microsoft.OperationalInsights/workspaces/ws-soc" {
			t.Errorf("%s: condition %v, scope %v; want created, on the workspace", r["type"], r["condition"], r["scope"])
		}
	}

	rp := rule["properties"].(map[string]any)
	if rule["kind"] != "Scheduled" || rp["enabled"] != false {
		t.Errorf("analytics rule: kind %v, enabled %v; want a disabled scheduled rule", rule["kind"], rp["enabled"])
	}
	if want := `print AccountName = "test.user", AccountUPNSuffix = "contoso.com"`; rp["query"] != want {
		t.Errorf("analytics rule query = %q; want %q", rp["query"], want)
	}
	mappings, _ := json.Marshal(rp["entityMappings"])
	if want := `[{"entityType":"Account","fieldMappings":[{"columnName":"AccountName","identifier":"Name"},{"columnName":"AccountUPNSuffix","identifier":"UPNSuffix"}]}]`; string(mappings) != want {
		t.Errorf("analytics rule entity mappings = %s; want %s (the playbook reads Name@UPNSuffix)", mappings, want)
	}
	if ic := rp["incidentConfiguration"].(map[string]any); ic["createIncident"] != true {
		t.Errorf("analytics rule incident configuration = %v; want an incident", ic)
	}

	ruleID := workspace + "/providers/Microsoft.SecurityInsights/alertRules/" + rule["name"].(string)
	ap := auto["properties"].(map[string]any)
	logic := ap["triggeringLogic"].(map[string]any)
	if logic["isEnabled"] != false || logic["triggersOn"] != "Incidents" || logic["triggersWhen"] != "Created" {
		t.Errorf("automation rule trigger = %v; want disabled, on incidents created", logic)
	}
	conds, _ := json.Marshal(logic["conditions"])
	wantConds, _ := json.Marshal([]any{map[string]any{"conditionType": "Property", "conditionProperties": map[string]any{
		"propertyName": "IncidentRelatedAnalyticRuleIds", "operator": "Contains", "propertyValues": []any{ruleID}}}})
	if string(conds) != string(wantConds) {
		t.Errorf("automation rule conditions = %s; want %s (the test rule's incidents only)", conds, wantConds)
	}
	actions, _ := json.Marshal(ap["actions"])
	wantActions, _ := json.Marshal([]any{map[string]any{"order": 1, "actionType": "RunPlaybook",
		"actionConfiguration": map[string]any{"logicAppResourceId": playbook, "tenantId": fakeTenantID}}})
	if string(actions) != string(wantActions) {
		t.Errorf("automation rule actions = %s; want %s", actions, wantActions)
	}
	deps, _ := auto["dependsOn"].([]any)
	for _, want := range []string{ruleID, playbook, "/subscriptions/" + fakeSubscriptionID + "/resourceGroups/" + fakeResourceGroup + "/providers/Microsoft.Resources/deployments/entra-revoke-incident-roles"} {
		if !slices.Contains(deps, any(want)) {
			t.Errorf("automation rule dependsOn = %v; want %s (it names it, or needs Sentinel's permission to run it)", deps, want)
		}
	}

	// Another playbook in the same workspace gets rules of its own.
	other := newARM(t, tmpl, map[string]any{"FunctionAppName": "f", "ApiAudience": "a", "WorkspaceName": "ws-soc", "TestUserUpn": "x@contoso.com", "PlaybookName": "other"})
	if n := other.value(autoRes["name"]); n == auto["name"] || other.value(ruleRes["name"]) == rule["name"] {
		t.Errorf("two playbooks share the rule names %v; want names that include the playbook", n)
	}

	params["TestUserUpn"] = ""
	none := newARM(t, tmpl, params)
	for _, r := range []map[string]any{ruleRes, autoRes} {
		if c := none.value(r["condition"]); c != false {
			t.Errorf("%s without a test user: condition %v; want not created", r["type"], c)
		}
	}
}
