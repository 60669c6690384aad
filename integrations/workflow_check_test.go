package integrations_test

// checkDefinition holds a workflow definition to the shape the Workflow Definition Language
// defines, before anything runs. Logic Apps refuses a workflow with a member it does not know
// (the whole ARM deployment fails, e.g. "InvalidRequestContent … Could not find member
// 'retryPolicy' on object of type 'FlowTemplateAction'", Azure/LogicAppsUX#6010), and
// Microsoft.Logic/workflows has no published JSON schema, so these lists are the check we have.
//
// Sources (learn.microsoft.com/azure/logic-apps/…):
//   - logic-apps-workflow-definition-language: the definition's top-level members and parameter types;
//   - logic-apps-workflow-actions-triggers: the members of a trigger and of an action, each action
//     type's own members (Foreach/If/Switch/Until/Scope), "Change asynchronous duration"
//     (limit.timeout on HTTP-based actions), "Runtime configuration settings" and "Operation options";
//   - error-exception-handling: retryPolicy lives inside inputs, its types, count 1–90 and
//     intervals from PT5S to P1D (Consumption);
//   - two operation options missing from that reference's table are what the designer writes for
//     its own settings: "Asynchronous" (the Response action's "Asynchronous response", which
//     answers the caller 202 with a Location to poll) and "EnableSchemaValidation" (the Request
//     trigger's "Schema validation", which answers 400 to a body that does not match).
// A list here is deliberately no wider than what our workflows need from what is documented: a
// member missing from it fails the test, and whoever adds it checks the documentation first.

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	wfDefinitionKeys = []string{"$schema", "contentVersion", "parameters", "triggers", "actions", "outputs", "staticResults"}
	wfParameterKeys  = []string{"type", "defaultValue", "allowedValues", "metadata"}
	wfParameterTypes = []string{"Array", "Bool", "Float", "Int", "Object", "SecureObject", "SecureString", "String"}

	wfTriggerKeys = []string{"type", "kind", "inputs", "recurrence", "conditions", "runtimeConfiguration", "splitOn", "operationOptions", "limit"}
	// wfTriggerOptions: the operation options each trigger type accepts.
	wfTriggerOptions = map[string][]string{
		"Request":              {"EnableSchemaValidation", "SingleInstance", "IncludeAuthorizationHeadersInOutputs", "SuppressWorkflowHeadersOnResponse"},
		"ApiConnectionWebhook": {"SingleInstance"},
		"ApiConnection":        {"SingleInstance"},
		"Http":                 {"SingleInstance"},
		"HttpWebhook":          {"SingleInstance", "IncludeAuthorizationHeadersInOutputs", "SuppressWorkflowHeadersOnResponse"},
		"Recurrence":           {"SingleInstance"},
	}

	// wfActionCommonKeys are the members every action may have; wfActionKeys adds each type's own.
	wfActionCommonKeys = []string{"type", "runAfter", "runtimeConfiguration", "operationOptions", "trackedProperties"}
	wfActionKeys       = map[string][]string{
		"Http":                  {"inputs", "limit"},
		"ApiConnection":         {"inputs", "limit"},
		"ApiConnectionWebhook":  {"inputs", "limit"},
		"Response":              {"kind", "inputs"},
		"Compose":               {"inputs"},
		"InitializeVariable":    {"inputs"},
		"AppendToArrayVariable": {"inputs"},
		"SetVariable":           {"inputs"},
		"Query":                 {"inputs"},
		"Select":                {"inputs"},
		"Terminate":             {"inputs"},
		"Scope":                 {"actions"},
		"Foreach":               {"foreach", "actions"},
		"If":                    {"expression", "actions", "else"},
		"Switch":                {"expression", "cases", "default"},
		"Until":                 {"expression", "limit", "actions"},
	}
	wfActionOptions = map[string][]string{
		"Http":          {"DisableAsyncPattern", "SuppressWorkflowHeaders"},
		"ApiConnection": {"DisableAsyncPattern"},
		"Response":      {"Asynchronous", "DisableAsyncPattern"},
		"Foreach":       {"Sequential"},
	}
	// wfRetryInputs are the action types whose inputs may carry a retryPolicy.
	wfRetryInputs   = []string{"Http", "ApiConnection", "ApiConnectionWebhook"}
	wfHTTPInputKeys = []string{"method", "uri", "headers", "queries", "body", "authentication", "retryPolicy", "cookie"}
	wfRetryKeys     = []string{"type", "count", "interval", "minimumInterval", "maximumInterval"}
	wfRetryTypes    = []string{"default", "none", "fixed", "exponential"}
	wfRunAfter      = []string{wfSucceeded, wfFailed, wfSkipped, wfTimedOut}
	wfRuntimeKeys   = []string{"concurrency", "secureData", "paginationPolicy", "staticResult"}
)

// checkDefinition returns every way definition departs from the Workflow Definition Language.
func checkDefinition(def map[string]any) []string {
	var c wfChecker
	c.keys("definition", def, wfDefinitionKeys)
	params, _ := def["parameters"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		p, ok := params[name].(map[string]any)
		if !ok {
			c.addf("parameter %s is not an object", name)
			continue
		}
		c.keys("parameter "+name, p, wfParameterKeys)
		if typ, _ := p["type"].(string); !slices.Contains(wfParameterTypes, typ) {
			c.addf("parameter %s: type %q is not one of %v", name, p["type"], wfParameterTypes)
		}
	}
	triggers, _ := def["triggers"].(map[string]any)
	if len(triggers) != 1 {
		c.addf("a Consumption workflow has exactly one trigger; this one has %d", len(triggers))
	}
	for _, name := range slices.Sorted(maps.Keys(triggers)) {
		c.trigger(name, triggers[name])
	}
	actions, ok := def["actions"].(map[string]any)
	if !ok {
		c.addf("definition has no actions object")
	}
	c.container("actions", actions)
	return c.problems
}

type wfChecker struct{ problems []string }

func (c *wfChecker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// keys reports every member of obj that allowed does not list.
func (c *wfChecker) keys(where string, obj map[string]any, allowed []string) {
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(allowed, k) {
			c.addf("%s: member %q is not defined by the Workflow Definition Language here (allowed: %v)", where, k, allowed)
		}
	}
}

func (c *wfChecker) trigger(name string, v any) {
	tr, ok := v.(map[string]any)
	if !ok {
		c.addf("trigger %s is not an object", name)
		return
	}
	where := "trigger " + name
	c.keys(where, tr, wfTriggerKeys)
	typ, _ := tr["type"].(string)
	opts, known := wfTriggerOptions[typ]
	if !known {
		c.addf("%s: trigger type %q is not one the checker knows", where, tr["type"])
	}
	if _, ok := tr["kind"]; ok && (typ != "Request" || tr["kind"] != "Http") {
		c.addf("%s: kind %v is only defined for the Request trigger (kind Http)", where, tr["kind"])
	}
	c.options(where, tr["operationOptions"], opts)
	c.runtime(where, tr["runtimeConfiguration"], []string{"runs", "maximumWaitingRuns"})
	if in, ok := tr["inputs"].(map[string]any); ok {
		c.retry(where, in["retryPolicy"])
	}
	if l, ok := tr["limit"]; ok {
		c.limit(where, l, false)
	}
}

// container checks the actions of one container and their runAfter references.
func (c *wfChecker) container(where string, actions map[string]any) {
	for _, name := range slices.Sorted(maps.Keys(actions)) {
		a, ok := actions[name].(map[string]any)
		if !ok {
			c.addf("action %s is not an object", name)
			continue
		}
		c.action(name, a)
		after, ok := a["runAfter"].(map[string]any)
		if _, present := a["runAfter"]; present && !ok {
			c.addf("action %s: runAfter is not an object", name)
		}
		for _, dep := range slices.Sorted(maps.Keys(after)) {
			if _, ok := actions[dep]; !ok {
				c.addf("action %s runs after %s, which is not in the same container (%s)", name, dep, where)
			}
			statuses, ok := after[dep].([]any)
			if !ok || len(statuses) == 0 {
				c.addf("action %s: runAfter %s must be a non-empty array of statuses", name, dep)
				continue
			}
			for _, s := range statuses {
				if str, _ := s.(string); !slices.Contains(wfRunAfter, str) {
					c.addf("action %s: runAfter %s status %v is not one of %v", name, dep, s, wfRunAfter)
				}
			}
		}
	}
}

func (c *wfChecker) action(name string, a map[string]any) {
	where := "action " + name
	typ, _ := a["type"].(string)
	own, known := wfActionKeys[typ]
	if !known {
		c.addf("%s: action type %q is not one the checker knows", where, a["type"])
		return
	}
	if _, misplaced := a["retryPolicy"]; misplaced {
		c.addf("%s: retryPolicy sits beside inputs; Logic Apps wants it inside inputs and rejects the workflow "+
			"(InvalidRequestContent: Could not find member 'retryPolicy' on object of type 'FlowTemplateAction')", where)
	}
	c.keys(where, a, append(slices.Clone(wfActionCommonKeys), append(own, "retryPolicy")...)) // retryPolicy: reported above
	c.options(where, a["operationOptions"], wfActionOptions[typ])
	concurrency := []string(nil)
	if typ == "Foreach" {
		concurrency = []string{"repetitions"}
	}
	c.runtime(where, a["runtimeConfiguration"], concurrency)
	if l, ok := a["limit"]; ok && slices.Contains(own, "limit") {
		c.limit(where, l, typ == "Until")
	}
	in, _ := a["inputs"].(map[string]any)
	if in != nil {
		if _, ok := in["retryPolicy"]; ok && !slices.Contains(wfRetryInputs, typ) {
			c.addf("%s: a %s action has no retry policy", where, typ)
		}
		c.retry(where, in["retryPolicy"])
	}
	switch typ {
	case "Http":
		if in == nil {
			c.addf("%s: an Http action needs inputs", where)
			break
		}
		c.keys(where+" inputs", in, wfHTTPInputKeys)
	case "Response":
		if k, ok := a["kind"]; ok && k != "Http" {
			c.addf("%s: kind %v; a Response action's kind is Http", where, k)
		}
	case "Scope", "Foreach", "Until":
		inner, ok := a["actions"].(map[string]any)
		if !ok {
			c.addf("%s: a %s action needs an actions object", where, typ)
		}
		c.container(name, inner)
	case "If":
		inner, _ := a["actions"].(map[string]any)
		c.container(name, inner)
		if e, ok := a["else"]; ok {
			em, ok := e.(map[string]any)
			if !ok {
				c.addf("%s: else is not an object", where)
				break
			}
			c.keys(where+" else", em, []string{"actions"})
			inner, _ := em["actions"].(map[string]any)
			c.container(name+" (else)", inner)
		}
	case "Switch":
		cases, _ := a["cases"].(map[string]any)
		for _, cn := range slices.Sorted(maps.Keys(cases)) {
			cm, _ := cases[cn].(map[string]any)
			c.keys(where+" case "+cn, cm, []string{"case", "actions"})
			inner, _ := cm["actions"].(map[string]any)
			c.container(name+" ("+cn+")", inner)
		}
		if d, ok := a["default"].(map[string]any); ok {
			c.keys(where+" default", d, []string{"actions"})
			inner, _ := d["actions"].(map[string]any)
			c.container(name+" (default)", inner)
		}
	}
}

// options checks operationOptions: a comma-separated list of the options allowed.
func (c *wfChecker) options(where string, v any, allowed []string) {
	if v == nil {
		return
	}
	s, ok := v.(string)
	if !ok {
		c.addf("%s: operationOptions is %T, not a string", where, v)
		return
	}
	for _, o := range strings.Split(s, ",") {
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, strings.TrimSpace(o)) }) {
			c.addf("%s: operation option %q is not defined here (allowed: %v)", where, strings.TrimSpace(o), allowed)
		}
	}
}

// runtime checks runtimeConfiguration; concurrency lists the concurrency members allowed here.
func (c *wfChecker) runtime(where string, v any, concurrency []string) {
	if v == nil {
		return
	}
	rc, ok := v.(map[string]any)
	if !ok {
		c.addf("%s: runtimeConfiguration is not an object", where)
		return
	}
	c.keys(where+" runtimeConfiguration", rc, wfRuntimeKeys)
	if cc, ok := rc["concurrency"].(map[string]any); ok {
		c.keys(where+" runtimeConfiguration.concurrency", cc, concurrency)
	}
	if sd, ok := rc["secureData"].(map[string]any); ok {
		c.keys(where+" runtimeConfiguration.secureData", sd, []string{"properties"})
		props, _ := sd["properties"].([]any)
		for _, p := range props {
			if p != "inputs" && p != "outputs" {
				c.addf("%s: secureData property %v is not inputs or outputs", where, p)
			}
		}
	}
}

// retry checks a retryPolicy found inside inputs.
func (c *wfChecker) retry(where string, v any) {
	if v == nil {
		return
	}
	rp, ok := v.(map[string]any)
	if !ok {
		c.addf("%s: retryPolicy is not an object", where)
		return
	}
	c.keys(where+" retryPolicy", rp, wfRetryKeys)
	typ, _ := rp["type"].(string)
	if !slices.Contains(wfRetryTypes, typ) {
		c.addf("%s: retryPolicy type %q is not one of %v", where, rp["type"], wfRetryTypes)
	}
	if typ == "fixed" || typ == "exponential" {
		n, ok := rp["count"].(float64)
		if !ok || n != float64(int(n)) || n < 1 || n > 90 {
			c.addf("%s: retryPolicy count %v; want a whole number from 1 to 90", where, rp["count"])
		}
		if _, ok := rp["interval"]; !ok {
			c.addf("%s: a %s retry policy needs an interval", where, typ)
		}
	}
	for _, k := range []string{"interval", "minimumInterval", "maximumInterval"} {
		s, ok := rp[k].(string)
		if _, present := rp[k]; !present {
			continue
		}
		d, err := parseISODuration(s)
		if !ok || err != nil || d < 5*time.Second || d > 24*time.Hour {
			c.addf("%s: retryPolicy %s %v; want an ISO 8601 duration from PT5S to P1D (%v)", where, k, rp[k], err)
		}
	}
}

// limit checks limit: timeout (ISO 8601) on HTTP-based actions and Until, count only on Until.
func (c *wfChecker) limit(where string, v any, until bool) {
	l, ok := v.(map[string]any)
	if !ok {
		c.addf("%s: limit is not an object", where)
		return
	}
	allowed := []string{"timeout"}
	if until {
		allowed = append(allowed, "count")
	}
	c.keys(where+" limit", l, allowed)
	if s, ok := l["timeout"]; ok {
		str, _ := s.(string)
		if d, err := parseISODuration(str); err != nil || d <= 0 {
			c.addf("%s: limit.timeout %v is not a positive ISO 8601 duration (%v)", where, s, err)
		}
	}
}

var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// parseISODuration reads the ISO 8601 durations Logic Apps uses (days, hours, minutes, seconds).
func parseISODuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, err := strconv.Atoi(m[i+1])
			if err != nil {
				return 0, err
			}
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		f, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return 0, err
		}
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}
