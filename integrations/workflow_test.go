package integrations_test

// A small interpreter for the Logic Apps workflow definitions in this folder, so that the tests
// can run a playbook against the real HTTP handler instead of only reading its JSON.
//
// It implements the part of the Workflow Definition Language the definitions use, with the
// documented semantics, and is stricter than Logic Apps where that is cheap:
//   - a definition is first held to the language's shape (checkDefinition): a member Logic Apps
//     does not define, such as retryPolicy beside inputs, fails the test before anything runs;
//   - every argument of a function is evaluated, including both branches of if() (Logic Apps
//     does not promise to skip the branch not taken), and concat/toLower/replace refuse null and
//     non-strings;
//   - outputs() and body() of an action that has no outputs (skipped, or an HTTP call that got no
//     answer) fail the expression, as Logic Apps does ("property 'outputs' doesn't exist");
//     actions('x')?['outputs'] is the null-safe way;
//   - an unknown function, action type or trigger accessor fails the test, so a definition cannot
//     silently use something the tests do not cover.
// Actions run in runAfter order inside each container (workflow, Scope, Foreach iteration, If
// branch); loops run sequentially (the definitions set concurrency 1). A container's status
// follows the documented rule (see containerStatus); the Foreach fails when an iteration fails.
// HTTP actions follow the asynchronous request-reply pattern unless DisableAsyncPattern is set
// (see runHTTP), on a virtual clock: the emulator records the waits instead of sleeping. Retry
// policies are checked but not simulated: one attempt each.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
)

// wfStatus values, as Logic Apps reports them.
const (
	wfSucceeded = "Succeeded"
	wfFailed    = "Failed"
	wfSkipped   = "Skipped"
	wfTimedOut  = "TimedOut"
)

// wfRun is one run of a workflow definition.
type wfRun struct {
	t          testing.TB
	definition map[string]any
	params     map[string]any // workflow parameter values ($connections included)
	trigger    map[string]any // triggerOutputs(): {"headers": ..., "body": ...}
	name       string         // workflow()['name']
	runName    string         // workflow()['run']['name']

	// Token returns an access token for the managed identity (authentication ManagedServiceIdentity).
	token func(audience string) string
	// api answers ApiConnection actions (managed connectors): path, method and evaluated body.
	api func(path, method string, body any) (status int, respBody any)
	// beforePoll, when set, runs before each poll of an asynchronous HTTP action (n counts from
	// 1), so a test can let the server make progress between polls.
	beforePoll func(action string, n int)

	vars       map[string]any
	actions    map[string]*wfAction // the latest result of every action, by name
	loopItems  map[string]any       // items('<loop>')
	item       any                  // item() in Query/Select
	hasItem    bool
	terminated string // runStatus of a Terminate action
	response   *wfResponse
	http       *http.Client
	waits      []time.Duration // the Retry-After waits of asynchronous polls, in order (virtual clock)
	polls      []*http.Request // every poll request sent, in order
}

// wfAction is the result of one action run.
type wfAction struct {
	Name       string
	Type       string
	Status     string
	Code       string
	Inputs     any
	Outputs    any
	HasOutputs bool // false for skipped actions and HTTP calls that got no answer
	Error      map[string]any
	Children   []string // for Scope: the names of its direct actions, for result()
}

// wfResponse is what a Response action returned to the trigger's caller.
type wfResponse struct {
	Status  int
	Headers map[string]any
	Body    any
	// Async is the Response action's "Asynchronous response" setting: the caller got 202 with a
	// Location at once and reads this response by polling it.
	Async bool
}

// wfError is an expression or action error; it fails the action, as in Logic Apps.
type wfError struct{ msg string }

func (e *wfError) Error() string { return e.msg }

func wfErrorf(format string, args ...any) error { return &wfError{fmt.Sprintf(format, args...)} }

// newWFRun prepares a run of definition with the given parameter values and trigger outputs.
func newWFRun(t testing.TB, definition map[string]any, params map[string]any, trigger map[string]any) *wfRun {
	t.Helper()
	return &wfRun{
		t: t, definition: definition, params: params, trigger: trigger,
		name: "workflow", runName: "08584562340012345678901234567CU12",
		vars: map[string]any{}, actions: map[string]*wfAction{}, loopItems: map[string]any{},
		http: &http.Client{Timeout: 30 * time.Second},
	}
}

// run checks the definition, executes its actions and returns the run status.
func (r *wfRun) run() string {
	r.t.Helper()
	if problems := checkDefinition(r.definition); len(problems) > 0 {
		r.t.Fatalf("Logic Apps would refuse this workflow:\n  %s", strings.Join(problems, "\n  "))
	}
	actions, _ := r.definition["actions"].(map[string]any)
	st := r.runContainer(actions)
	if r.terminated != "" {
		return r.terminated
	}
	return st
}

// runContainer runs the actions of one container in runAfter order and returns its status.
func (r *wfRun) runContainer(actions map[string]any) string {
	r.t.Helper()
	status := map[string]string{}
	names := slices.Sorted(maps.Keys(actions))
	for len(status) < len(actions) && r.terminated == "" {
		progressed := false
		for _, name := range names {
			if _, done := status[name]; done {
				continue
			}
			a := mustObject(r.t, actions[name], name)
			after, _ := a["runAfter"].(map[string]any)
			ready, skip := true, false
			for dep, allowed := range after {
				if _, ok := actions[dep]; !ok {
					r.t.Fatalf("action %s runs after %s, which is not in the same container", name, dep)
				}
				st, done := status[dep]
				if !done {
					ready = false
					break
				}
				if !slices.Contains(toStrings(r.t, allowed), st) {
					skip = true
				}
			}
			if !ready {
				continue
			}
			progressed = true
			if skip {
				status[name] = wfSkipped
				r.actions[name] = &wfAction{Name: name, Type: typeOf(actions[name]), Status: wfSkipped}
				continue
			}
			status[name] = r.runAction(name, a)
			if r.terminated != "" {
				break
			}
		}
		if !progressed && r.terminated == "" {
			r.t.Fatalf("runAfter cycle or dangling dependency among %v", names)
		}
	}
	return containerStatus(r.t, actions, status)
}

// containerStatus applies Logic Apps' documented rule for the status of a run or of a scope
// (learn.microsoft.com/azure/logic-apps/error-exception-handling, "Manage the run after
// behavior"): "If this behavior happens for an action that has parallel branches, the Azure Logic
// Apps engine follows the other branches to determine their completion statuses. For example, if
// a branch ends with a Skipped action, that branch's completion status is based on that skipped
// action's predecessor status. After the workflow run completes, the engine determines the entire
// run's status by evaluating all the branch statuses. If any branch ends in failure, the entire
// workflow run is marked Failed." The same page: a scope is checked "using the same criteria" as
// a run. A branch ends in an action that no other action of the container runs after. A skipped
// action with several predecessors takes the worst of theirs (the documentation names one
// predecessor; the worst is the reading under which a passing test still passes in Azure).
func containerStatus(t testing.TB, actions map[string]any, status map[string]string) string {
	t.Helper()
	followed := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(actions)) {
		after, _ := mustObject(t, actions[name], name)["runAfter"].(map[string]any)
		for dep := range after {
			followed[dep] = true
		}
	}
	var effective func(name string, seen map[string]bool) string
	effective = func(name string, seen map[string]bool) string {
		st, ran := status[name]
		if !ran {
			return wfSucceeded // not reached because a Terminate action ended the run
		}
		if st != wfSkipped {
			return st
		}
		if seen[name] {
			return wfSucceeded
		}
		seen[name] = true
		worst := wfSucceeded
		after, _ := mustObject(t, actions[name], name)["runAfter"].(map[string]any)
		for _, dep := range slices.Sorted(maps.Keys(after)) {
			if e := effective(dep, seen); e == wfFailed || e == wfTimedOut {
				worst = wfFailed
			}
		}
		return worst
	}
	for _, name := range slices.Sorted(maps.Keys(actions)) {
		if followed[name] {
			continue
		}
		if e := effective(name, map[string]bool{}); e == wfFailed || e == wfTimedOut {
			return wfFailed
		}
	}
	return wfSucceeded
}

// runAction runs one action and records its result.
func (r *wfRun) runAction(name string, a map[string]any) string {
	r.t.Helper()
	res := &wfAction{Name: name, Type: typeOf(a), Status: wfSucceeded}
	r.actions[name] = res
	fail := func(err error) string {
		res.Status = wfFailed
		res.Code = "ActionFailed"
		res.Error = map[string]any{"code": "ActionFailed", "message": err.Error()}
		return wfFailed
	}
	setOutputs := func(v any) { res.Outputs, res.HasOutputs = v, true }
	typ, _ := a["type"].(string)
	switch typ {
	case "InitializeVariable":
		in, err := r.eval(a["inputs"])
		if err != nil {
			return fail(err)
		}
		for _, v := range mustSlice(r.t, mustObject(r.t, in, name)["variables"], name) {
			v := mustObject(r.t, v, name)
			r.vars[v["name"].(string)] = v["value"]
		}
	case "SetVariable":
		in, err := r.eval(a["inputs"])
		if err != nil {
			return fail(err)
		}
		m := mustObject(r.t, in, name)
		vn, _ := m["name"].(string)
		if _, ok := r.vars[vn]; !ok {
			return fail(wfErrorf("variable %q is not initialized", vn))
		}
		r.vars[vn] = m["value"]
	case "AppendToArrayVariable":
		in, err := r.eval(a["inputs"])
		if err != nil {
			return fail(err)
		}
		m := mustObject(r.t, in, name)
		vn, _ := m["name"].(string)
		arr, ok := r.vars[vn].([]any)
		if !ok {
			return fail(wfErrorf("variable %q is not an initialized array", vn))
		}
		r.vars[vn] = append(arr, m["value"])
	case "Compose":
		out, err := r.eval(a["inputs"])
		if err != nil {
			return fail(err)
		}
		setOutputs(out)
	case "Scope":
		inner := mustObject(r.t, a["actions"], name)
		res.Children = slices.Sorted(maps.Keys(inner))
		res.Status = r.runContainer(inner)
		if res.Status == wfFailed {
			res.Code = "ActionFailed"
			res.Error = map[string]any{"code": "ActionFailed", "message": "An action failed. No dependent actions succeeded."}
		}
	case "Foreach":
		list, err := r.eval(a["foreach"])
		if err != nil {
			return fail(err)
		}
		items, ok := list.([]any)
		if !ok {
			return fail(wfErrorf("the foreach expression of %s evaluated to %T, not an array", name, list))
		}
		inner := mustObject(r.t, a["actions"], name)
		for _, it := range items {
			// Each iteration sees only its own actions' results.
			for _, n := range nestedActionNames(r.t, inner) {
				delete(r.actions, n)
			}
			r.loopItems[name] = it
			if r.runContainer(inner) == wfFailed {
				res.Status = wfFailed
			}
			if r.terminated != "" {
				break
			}
		}
		delete(r.loopItems, name)
	case "If":
		ok, err := r.condition(a["expression"])
		if err != nil {
			return fail(err)
		}
		branch := a["actions"]
		if !ok {
			branch = nil
			if e, _ := a["else"].(map[string]any); e != nil {
				branch = e["actions"]
			}
		}
		if branch != nil {
			res.Status = r.runContainer(mustObject(r.t, branch, name))
		}
	case "Http":
		return r.runHTTP(res, a)
	case "ApiConnection":
		in, err := r.eval(a["inputs"])
		if err != nil {
			return fail(err)
		}
		m := mustObject(r.t, in, name)
		res.Inputs = m
		path, _ := m["path"].(string)
		method, _ := m["method"].(string)
		code, body := r.api(path, method, m["body"])
		setOutputs(map[string]any{"statusCode": float64(code), "body": body})
		if code < 200 || code > 299 {
			res.Status = wfFailed
			res.Code = strconv.Itoa(code)
			res.Error = map[string]any{"code": strconv.Itoa(code), "message": fmt.Sprint(body)}
		}
	case "Query":
		in := mustObject(r.t, a["inputs"], name)
		from, err := r.eval(in["from"])
		if err != nil {
			return fail(err)
		}
		fromList, ok := from.([]any)
		if !ok {
			return fail(wfErrorf("%s: from is %T, not an array", name, from))
		}
		var kept []any
		for _, it := range fromList {
			r.item, r.hasItem = it, true
			keep, err := r.eval(in["where"])
			r.item, r.hasItem = nil, false
			if err != nil {
				return fail(err)
			}
			if keep == true {
				kept = append(kept, it)
			}
		}
		setOutputs(map[string]any{"body": orEmpty(kept)})
	case "Select":
		in := mustObject(r.t, a["inputs"], name)
		from, err := r.eval(in["from"])
		if err != nil {
			return fail(err)
		}
		fromList, ok := from.([]any)
		if !ok {
			return fail(wfErrorf("%s: from is %T, not an array", name, from))
		}
		var out []any
		for _, it := range fromList {
			r.item, r.hasItem = it, true
			v, err := r.eval(in["select"])
			r.item, r.hasItem = nil, false
			if err != nil {
				return fail(err)
			}
			out = append(out, v)
		}
		setOutputs(map[string]any{"body": orEmpty(out)})
	case "Response":
		in, err := r.eval(a["inputs"])
		if err != nil {
			return fail(err)
		}
		m := mustObject(r.t, in, name)
		code, ok := m["statusCode"].(float64)
		if !ok {
			return fail(wfErrorf("Response statusCode is %T, not a number", m["statusCode"]))
		}
		headers, _ := m["headers"].(map[string]any)
		async := hasOperationOption(a, "Asynchronous")
		r.response = &wfResponse{Status: int(code), Headers: headers, Body: m["body"], Async: async}
	case "Terminate":
		in := mustObject(r.t, a["inputs"], name)
		r.terminated, _ = in["runStatus"].(string)
	default:
		r.t.Fatalf("action %s: type %q is not supported by the test interpreter", name, typ)
	}
	return res.Status
}

// hasOperationOption reports whether an action's operationOptions list option.
func hasOperationOption(a map[string]any, option string) bool {
	s, _ := a["operationOptions"].(string)
	for _, o := range strings.Split(s, ",") {
		if strings.EqualFold(strings.TrimSpace(o), option) {
			return true
		}
	}
	return false
}

// wfMaxPolls bounds the polls of an asynchronous action without limit.timeout, so that a server
// that never stops answering 202 fails the test instead of hanging it.
const wfMaxPolls = 1000

// runHTTP sends an Http action's request and, unless the action sets DisableAsyncPattern,
// follows the asynchronous request-reply pattern as documented for the HTTP action
// (learn.microsoft.com/azure/connectors/connectors-native-http, "Asynchronous request-response
// behavior"): on 202 with a Location header, poll that URL with GET until the answer is not 202;
// the last answer is the action's outputs. Each wait is the answer's Retry-After, on a virtual
// clock; once the waits exceed the action's limit.timeout the action ends TimedOut with code
// ActionTimedOut and no outputs ("Change asynchronous duration"). What Logic Apps sends with a
// poll besides the URL is not documented, so the emulator sends nothing else: a status link must
// be its own credential. A 202 without Location or without Retry-After fails the test (Logic Apps'
// behaviour then is not documented; entra-revoke always sends both).
func (r *wfRun) runHTTP(res *wfAction, a map[string]any) string {
	r.t.Helper()
	in, err := r.eval(a["inputs"])
	if err != nil {
		res.Status, res.Error = wfFailed, map[string]any{"code": "InvalidTemplate", "message": err.Error()}
		return wfFailed
	}
	m := mustObject(r.t, in, res.Name)
	res.Inputs = m
	method, _ := m["method"].(string)
	uri, _ := m["uri"].(string)
	var body io.Reader
	if b, ok := m["body"]; ok {
		if s, isString := b.(string); isString {
			body = strings.NewReader(s)
		} else {
			raw, err := json.Marshal(b)
			if err != nil {
				r.t.Fatalf("%s: body: %v", res.Name, err)
			}
			body = bytes.NewReader(raw)
		}
	}
	req, err := http.NewRequest(method, uri, body)
	if err != nil {
		r.t.Fatalf("%s: request: %v", res.Name, err)
	}
	if h, ok := m["headers"].(map[string]any); ok {
		for k, v := range h {
			s, isString := v.(string)
			if !isString {
				r.t.Fatalf("%s: header %s is %T, not a string", res.Name, k, v)
			}
			req.Header.Set(k, s)
		}
	}
	if auth, ok := m["authentication"].(map[string]any); ok {
		if auth["type"] != "ManagedServiceIdentity" {
			r.t.Fatalf("%s: authentication type %v is not supported by the test interpreter", res.Name, auth["type"])
		}
		audience, _ := auth["audience"].(string)
		req.Header.Set("Authorization", "Bearer "+r.token(audience))
	}
	noAnswer := func(err error) string {
		// Logic Apps reports the action failed, without a status code or outputs.
		res.Status, res.Outputs, res.HasOutputs = wfFailed, nil, false
		res.Error = map[string]any{"code": "ServiceUnavailable", "message": "no response: " + err.Error()}
		return wfFailed
	}
	status, headers, raw, err := r.send(req)
	if err != nil {
		return noAnswer(err)
	}

	var timeout time.Duration
	if l, ok := a["limit"].(map[string]any); ok {
		timeout, _ = parseISODuration(fmt.Sprint(l["timeout"]))
	}
	var waited time.Duration
	for n := 1; status == http.StatusAccepted && !hasOperationOption(a, "DisableAsyncPattern"); n++ {
		loc := headers.Get("Location")
		if loc == "" {
			r.t.Fatalf("%s: 202 without Location: what Logic Apps does then is not documented", res.Name)
		}
		wait, err := retryAfter(headers.Get("Retry-After"))
		if err != nil {
			r.t.Fatalf("%s: 202 with Location but Retry-After %q: %v", res.Name, headers.Get("Retry-After"), err)
		}
		next, err := req.URL.Parse(loc)
		if err != nil {
			r.t.Fatalf("%s: Location %q: %v", res.Name, loc, err)
		}
		r.waits = append(r.waits, wait)
		waited += wait
		if timeout > 0 && waited > timeout {
			res.Status, res.Code, res.Outputs, res.HasOutputs = wfTimedOut, "ActionTimedOut", nil, false
			res.Error = map[string]any{"code": "ActionTimedOut", "message": fmt.Sprintf("the asynchronous operation did not finish within %s", timeout)}
			return wfTimedOut
		}
		if timeout == 0 && n > wfMaxPolls {
			r.t.Fatalf("%s: still 202 after %d polls and the action has no limit.timeout", res.Name, wfMaxPolls)
		}
		if r.beforePoll != nil {
			r.beforePoll(res.Name, n)
		}
		req, err = http.NewRequest(http.MethodGet, next.String(), nil)
		if err != nil {
			r.t.Fatalf("%s: poll: %v", res.Name, err)
		}
		r.polls = append(r.polls, req)
		status, headers, raw, err = r.send(req)
		if err != nil {
			return noAnswer(err)
		}
	}

	hm := map[string]any{}
	for k := range headers {
		hm[k] = headers.Get(k)
	}
	var parsed any = string(raw)
	switch {
	case len(raw) == 0:
		parsed = nil
	case strings.HasPrefix(headers.Get("Content-Type"), "application/json"):
		if err := json.Unmarshal(raw, &parsed); err != nil {
			r.t.Fatalf("%s: response is not JSON: %v: %s", res.Name, err, raw)
		}
	}
	res.Outputs, res.HasOutputs = map[string]any{"statusCode": float64(status), "headers": hm, "body": parsed}, true
	if status < 200 || status > 299 {
		res.Status, res.Code = wfFailed, strconv.Itoa(status)
		res.Error = map[string]any{"code": strconv.Itoa(status), "message": string(raw)}
	}
	return res.Status
}

// send does one HTTP exchange and reads the whole answer.
func (r *wfRun) send(req *http.Request) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := r.http.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("%s %s: read response: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, resp.Header, raw, nil
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string) (time.Duration, error) {
	if v == "" {
		return 0, fmt.Errorf("missing")
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, fmt.Errorf("neither seconds nor an HTTP date")
	}
	return max(time.Until(t), 0), nil
}

// condition evaluates an If action's expression: an object of and/or/not/equals/greater, or an
// expression string.
func (r *wfRun) condition(c any) (bool, error) {
	switch c := c.(type) {
	case string:
		v, err := r.eval(c)
		if err != nil {
			return false, err
		}
		b, ok := v.(bool)
		if !ok {
			return false, wfErrorf("condition %q is %T, not a boolean", c, v)
		}
		return b, nil
	case map[string]any:
		if len(c) != 1 {
			return false, wfErrorf("condition object must have one operator: %v", c)
		}
		for op, arg := range c {
			switch op {
			case "and", "or":
				for _, sub := range mustSlice(r.t, arg, op) {
					b, err := r.condition(sub)
					if err != nil {
						return false, err
					}
					if op == "and" && !b {
						return false, nil
					}
					if op == "or" && b {
						return true, nil
					}
				}
				return op == "and", nil
			case "not":
				b, err := r.condition(arg)
				return !b, err
			case "equals", "greater":
				pair := mustSlice(r.t, arg, op)
				if len(pair) != 2 {
					return false, wfErrorf("%s takes two operands", op)
				}
				x, err := r.eval(pair[0])
				if err != nil {
					return false, err
				}
				y, err := r.eval(pair[1])
				if err != nil {
					return false, err
				}
				if op == "equals" {
					return wfEqual(x, y), nil
				}
				xf, ok1 := x.(float64)
				yf, ok2 := y.(float64)
				if !ok1 || !ok2 {
					return false, wfErrorf("greater needs numbers")
				}
				return xf > yf, nil
			default:
				r.t.Fatalf("condition operator %q is not supported by the test interpreter", op)
			}
		}
	}
	return false, wfErrorf("condition of type %T", c)
}

// eval evaluates every expression in v: strings starting with @ (whole expressions) or holding
// @{...} (interpolation), recursively through objects and arrays.
func (r *wfRun) eval(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return r.evalString(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			e, err := r.eval(x)
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			e, err := r.eval(x)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return v, nil
}

func (r *wfRun) evalString(s string) (any, error) {
	switch {
	case strings.HasPrefix(s, "@@"):
		return s[1:], nil
	case strings.HasPrefix(s, "@") && !strings.HasPrefix(s, "@{"):
		return r.evalExpr(s[1:])
	case !strings.Contains(s, "@{"):
		return s, nil
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "@{")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		p := &wfParser{src: rest[i+2:]}
		node, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.consume("}") {
			return nil, wfErrorf("interpolation in %q is not closed", s)
		}
		val, err := r.evalNode(node)
		if err != nil {
			return nil, err
		}
		b.WriteString(wfString(val))
		rest = p.src[p.pos:]
	}
}

func (r *wfRun) evalExpr(src string) (any, error) {
	p := &wfParser{src: src}
	node, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.src) {
		return nil, wfErrorf("unexpected %q after expression %q", p.src[p.pos:], src)
	}
	return r.evalNode(node)
}

// wfNode is a parsed expression: a literal, a function call, or an index/property access.
type wfNode struct {
	lit      any
	isLit    bool
	fn       string
	args     []*wfNode
	target   *wfNode // for access
	index    *wfNode
	optional bool // ?[...]
}

type wfParser struct {
	src string
	pos int
}

func (p *wfParser) space() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

func (p *wfParser) consume(tok string) bool {
	p.space()
	if strings.HasPrefix(p.src[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *wfParser) expr() (*wfNode, error) {
	p.space()
	if p.pos >= len(p.src) {
		return nil, wfErrorf("expression ends early: %q", p.src)
	}
	var n *wfNode
	c := p.src[p.pos]
	switch {
	case c == '\'':
		var b strings.Builder
		p.pos++
		for {
			if p.pos >= len(p.src) {
				return nil, wfErrorf("unterminated string in %q", p.src)
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos += 2
					continue
				}
				p.pos++
				break
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
		n = &wfNode{lit: b.String(), isLit: true}
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && (p.src[p.pos] == '.' || (p.src[p.pos] >= '0' && p.src[p.pos] <= '9')) {
			p.pos++
		}
		f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			return nil, wfErrorf("bad number in %q", p.src)
		}
		n = &wfNode{lit: f, isLit: true}
	case unicode.IsLetter(rune(c)) || c == '_':
		start := p.pos
		for p.pos < len(p.src) && (unicode.IsLetter(rune(p.src[p.pos])) || unicode.IsDigit(rune(p.src[p.pos])) || p.src[p.pos] == '_') {
			p.pos++
		}
		name := p.src[start:p.pos]
		switch name {
		case "true", "false":
			n = &wfNode{lit: name == "true", isLit: true}
		case "null":
			n = &wfNode{isLit: true}
		default:
			if !p.consume("(") {
				return nil, wfErrorf("%s is not followed by ( in %q", name, p.src)
			}
			n = &wfNode{fn: name}
			if !p.consume(")") {
				for {
					arg, err := p.expr()
					if err != nil {
						return nil, err
					}
					n.args = append(n.args, arg)
					if p.consume(")") {
						break
					}
					if !p.consume(",") {
						return nil, wfErrorf("expected , or ) in %q at %d", p.src, p.pos)
					}
				}
			}
		}
	default:
		return nil, wfErrorf("unexpected %q in %q", c, p.src)
	}
	for {
		switch {
		case p.consume("?["):
			idx, err := p.expr()
			if err != nil {
				return nil, err
			}
			if !p.consume("]") {
				return nil, wfErrorf("expected ] in %q", p.src)
			}
			n = &wfNode{target: n, index: idx, optional: true}
		case p.consume("["):
			idx, err := p.expr()
			if err != nil {
				return nil, err
			}
			if !p.consume("]") {
				return nil, wfErrorf("expected ] in %q", p.src)
			}
			n = &wfNode{target: n, index: idx}
		default:
			return n, nil
		}
	}
}

func (r *wfRun) evalNode(n *wfNode) (any, error) {
	if n.isLit {
		return n.lit, nil
	}
	if n.target != nil {
		base, err := r.evalNode(n.target)
		if err != nil {
			return nil, err
		}
		idx, err := r.evalNode(n.index)
		if err != nil {
			return nil, err
		}
		return wfIndex(base, idx, n.optional)
	}
	args := make([]any, len(n.args))
	for i, a := range n.args {
		v, err := r.evalNode(a) // all arguments, always: Logic Apps does not promise to skip any
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return r.call(n.fn, args)
}

// wfIndex reads obj[key] or arr[i]. Property names match case-insensitively, as in Logic Apps.
func wfIndex(base, idx any, optional bool) (any, error) {
	if base == nil {
		if optional {
			return nil, nil
		}
		return nil, wfErrorf("cannot select %v of null", idx)
	}
	switch b := base.(type) {
	case map[string]any:
		k, ok := idx.(string)
		if !ok {
			return nil, wfErrorf("object index %v is not a string", idx)
		}
		if v, ok := b[k]; ok {
			return v, nil
		}
		for kk, v := range b {
			if strings.EqualFold(kk, k) {
				return v, nil
			}
		}
		if optional {
			return nil, nil
		}
		return nil, wfErrorf("property %q does not exist", k)
	case []any:
		f, ok := idx.(float64)
		if !ok {
			return nil, wfErrorf("array index %v is not a number", idx)
		}
		i := int(f)
		if i < 0 || i >= len(b) {
			if optional {
				return nil, nil
			}
			return nil, wfErrorf("index %d out of range", i)
		}
		return b[i], nil
	}
	return nil, wfErrorf("cannot index %T", base)
}

func (r *wfRun) call(fn string, args []any) (any, error) {
	want := func(n int) error {
		if len(args) != n {
			return wfErrorf("%s takes %d arguments, got %d", fn, n, len(args))
		}
		return nil
	}
	str := func(i int) (string, error) {
		s, ok := args[i].(string)
		if !ok {
			return "", wfErrorf("%s: argument %d is %T, not a string", fn, i+1, args[i])
		}
		return s, nil
	}
	action := func() (*wfAction, error) {
		if err := want(1); err != nil {
			return nil, err
		}
		name, err := str(0)
		if err != nil {
			return nil, err
		}
		a, ok := r.actions[name]
		if !ok {
			return nil, wfErrorf("%s(%q): the action has not run", fn, name)
		}
		return a, nil
	}
	switch fn {
	case "parameters":
		if err := want(1); err != nil {
			return nil, err
		}
		name, err := str(0)
		if err != nil {
			return nil, err
		}
		v, ok := r.params[name]
		if !ok {
			return nil, wfErrorf("parameter %q has no value", name)
		}
		return v, nil
	case "triggerBody":
		return r.trigger["body"], want(0)
	case "triggerOutputs":
		return r.trigger, want(0)
	case "workflow":
		return map[string]any{"name": r.name, "run": map[string]any{"name": r.runName}}, want(0)
	case "listCallbackUrl":
		return "https://prod-00.westeurope.logic.azure.com/workflows/callback", want(0)
	case "items":
		if err := want(1); err != nil {
			return nil, err
		}
		name, err := str(0)
		if err != nil {
			return nil, err
		}
		v, ok := r.loopItems[name]
		if !ok {
			return nil, wfErrorf("items(%q) outside that loop", name)
		}
		return v, nil
	case "item":
		if !r.hasItem {
			return nil, wfErrorf("item() outside Query/Select")
		}
		return r.item, want(0)
	case "variables":
		if err := want(1); err != nil {
			return nil, err
		}
		name, err := str(0)
		if err != nil {
			return nil, err
		}
		v, ok := r.vars[name]
		if !ok {
			return nil, wfErrorf("variable %q is not initialized", name)
		}
		return v, nil
	case "outputs", "body":
		a, err := action()
		if err != nil {
			return nil, err
		}
		if !a.HasOutputs {
			// Logic Apps: "… cannot be evaluated because property 'outputs' doesn't exist".
			return nil, wfErrorf("%s(%q): the action (%s) has no outputs", fn, a.Name, a.Status)
		}
		if fn == "outputs" {
			return a.Outputs, nil
		}
		switch a.Type {
		case "Http", "ApiConnection", "Query", "Select":
			m, _ := a.Outputs.(map[string]any)
			return m["body"], nil
		}
		return a.Outputs, nil
	case "actions":
		a, err := action()
		if err != nil {
			return nil, err
		}
		return actionResult(a), nil
	case "result":
		a, err := action()
		if err != nil {
			return nil, err
		}
		var out []any
		for _, child := range a.Children {
			if c, ok := r.actions[child]; ok {
				out = append(out, actionResult(c))
			}
		}
		return orEmpty(out), nil
	case "if":
		if err := want(3); err != nil {
			return nil, err
		}
		b, ok := args[0].(bool)
		if !ok {
			return nil, wfErrorf("if: condition is %T", args[0])
		}
		if b {
			return args[1], nil
		}
		return args[2], nil
	case "empty":
		if err := want(1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case nil:
			return true, nil
		case string:
			return v == "", nil
		case []any:
			return len(v) == 0, nil
		case map[string]any:
			return len(v) == 0, nil
		}
		return false, nil
	case "not":
		if err := want(1); err != nil {
			return nil, err
		}
		b, ok := args[0].(bool)
		if !ok {
			return nil, wfErrorf("not: %T", args[0])
		}
		return !b, nil
	case "and", "or":
		if len(args) < 2 {
			return nil, wfErrorf("%s needs two or more arguments", fn)
		}
		res := fn == "and"
		for _, a := range args {
			b, ok := a.(bool)
			if !ok {
				return nil, wfErrorf("%s: %T", fn, a)
			}
			if fn == "and" {
				res = res && b
			} else {
				res = res || b
			}
		}
		return res, nil
	case "equals":
		if err := want(2); err != nil {
			return nil, err
		}
		return wfEqual(args[0], args[1]), nil
	case "concat":
		var b strings.Builder
		for i := range args {
			s, err := str(i)
			if err != nil {
				return nil, err
			}
			b.WriteString(s)
		}
		return b.String(), nil
	case "coalesce":
		for _, a := range args {
			if a != nil {
				return a, nil
			}
		}
		return nil, nil
	case "createArray":
		return slices.Clone(args), nil
	case "chunk":
		// chunk(collection, length): the collection cut into arrays of at most length items.
		if err := want(2); err != nil {
			return nil, err
		}
		list, ok := args[0].([]any)
		n, okN := args[1].(float64)
		if !ok || !okN || n < 1 || n != float64(int(n)) {
			return nil, wfErrorf("chunk(%T, %v): want an array and a positive whole number", args[0], args[1])
		}
		out := []any{}
		for c := range slices.Chunk(list, int(n)) {
			out = append(out, slices.Clone(c))
		}
		return out, nil
	case "union":
		// union(collection1, collection2, ...): the items of all, each once (first occurrence first).
		var out []any
		for _, a := range args {
			list, ok := a.([]any)
			if !ok {
				return nil, wfErrorf("union: %T is not an array", a)
			}
			for _, v := range list {
				if !slices.ContainsFunc(out, func(o any) bool { return wfEqual(o, v) }) {
					out = append(out, v)
				}
			}
		}
		return orEmpty(out), nil
	case "string":
		if err := want(1); err != nil {
			return nil, err
		}
		return wfString(args[0]), nil
	case "toLower":
		if err := want(1); err != nil {
			return nil, err
		}
		s, err := str(0)
		return strings.ToLower(s), err
	case "take":
		if err := want(2); err != nil {
			return nil, err
		}
		n, ok := args[1].(float64)
		if !ok || n < 0 || n != float64(int(n)) {
			return nil, wfErrorf("take: count %v is not a non-negative whole number", args[1])
		}
		switch v := args[0].(type) {
		case string:
			u := utf16.Encode([]rune(v))
			return string(utf16.Decode(u[:min(len(u), int(n))])), nil
		case []any:
			return v[:min(len(v), int(n))], nil
		}
		return nil, wfErrorf("take: %T", args[0])
	case "length":
		if err := want(1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case string:
			return float64(len(utf16.Encode([]rune(v)))), nil // .NET counts UTF-16 code units
		case []any:
			return float64(len(v)), nil
		}
		return nil, wfErrorf("length: %T is neither a string nor an array", args[0])
	case "lastIndexOf", "indexOf":
		if err := want(2); err != nil {
			return nil, err
		}
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		sub, err := str(1)
		if err != nil {
			return nil, err
		}
		i := strings.Index(s, sub)
		if fn == "lastIndexOf" {
			i = strings.LastIndex(s, sub)
		}
		if i < 0 {
			return float64(-1), nil
		}
		return float64(len(utf16.Encode([]rune(s[:i])))), nil
	case "max", "min", "add", "sub":
		if len(args) < 2 || (fn != "max" && fn != "min" && len(args) != 2) {
			return nil, wfErrorf("%s: wrong number of arguments (%d)", fn, len(args))
		}
		nums := make([]float64, len(args))
		for i, a := range args {
			f, ok := a.(float64)
			if !ok {
				return nil, wfErrorf("%s: argument %d is %T, not a number", fn, i+1, a)
			}
			nums[i] = f
		}
		switch fn {
		case "max":
			return slices.Max(nums), nil
		case "min":
			return slices.Min(nums), nil
		case "add":
			return nums[0] + nums[1], nil
		}
		return nums[0] - nums[1], nil
	case "less", "lessOrEquals", "greater", "greaterOrEquals":
		if err := want(2); err != nil {
			return nil, err
		}
		x, ok1 := args[0].(float64)
		y, ok2 := args[1].(float64)
		if !ok1 || !ok2 {
			return nil, wfErrorf("%s needs two numbers, got %T and %T", fn, args[0], args[1])
		}
		switch fn {
		case "less":
			return x < y, nil
		case "lessOrEquals":
			return x <= y, nil
		case "greater":
			return x > y, nil
		}
		return x >= y, nil
	case "startsWith":
		if err := want(2); err != nil {
			return nil, err
		}
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		p, err := str(1)
		if err != nil {
			return nil, err
		}
		return strings.HasPrefix(strings.ToLower(s), strings.ToLower(p)), nil // case-insensitive, as documented
	case "join":
		if err := want(2); err != nil {
			return nil, err
		}
		arr, ok := args[0].([]any)
		if !ok {
			return nil, wfErrorf("join: %T is not an array", args[0])
		}
		sep, err := str(1)
		if err != nil {
			return nil, err
		}
		parts := make([]string, len(arr))
		for i, a := range arr {
			parts[i] = wfString(a)
		}
		return strings.Join(parts, sep), nil
	case "replace":
		if err := want(3); err != nil {
			return nil, err
		}
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		old, err := str(1)
		if err != nil {
			return nil, err
		}
		repl, err := str(2)
		if err != nil {
			return nil, err
		}
		return strings.ReplaceAll(s, old, repl), nil
	case "decodeUriComponent":
		if err := want(1); err != nil {
			return nil, err
		}
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		return url.PathUnescape(s)
	case "json":
		if err := want(1); err != nil {
			return nil, err
		}
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, wfErrorf("json: %v", err)
		}
		return v, nil
	}
	r.t.Fatalf("function %s() is not supported by the test interpreter", fn)
	return nil, nil
}

// actionResult is an action's result as actions() and result() return it: name, status, code
// and error, and outputs only when the action has them.
func actionResult(a *wfAction) map[string]any {
	item := map[string]any{"name": a.Name, "status": a.Status}
	if a.Code != "" {
		item["code"] = a.Code
	}
	if a.Error != nil {
		item["error"] = a.Error
	}
	if a.HasOutputs {
		item["outputs"] = a.Outputs
	}
	return item
}

func typeOf(a any) string {
	m, _ := a.(map[string]any)
	s, _ := m["type"].(string)
	return s
}

// nestedActionNames lists the names of actions and of every action nested in them.
func nestedActionNames(t testing.TB, actions map[string]any) []string {
	t.Helper()
	var out []string
	for name, a := range actions {
		out = append(out, name)
		m := mustObject(t, a, name)
		if inner, ok := m["actions"].(map[string]any); ok {
			out = append(out, nestedActionNames(t, inner)...)
		}
		if e, ok := m["else"].(map[string]any); ok {
			if inner, ok := e["actions"].(map[string]any); ok {
				out = append(out, nestedActionNames(t, inner)...)
			}
		}
	}
	return out
}

func wfEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// wfString converts a value as string interpolation does: strings as they are, null as "",
// numbers without a trailing .0, objects and arrays as JSON.
func wfString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func mustObject(t testing.TB, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: want a JSON object, got %T", what, v)
	}
	return m
}

func mustSlice(t testing.TB, v any, what string) []any {
	t.Helper()
	s, ok := v.([]any)
	if !ok {
		t.Fatalf("%s: want a JSON array, got %T", what, v)
	}
	return s
}

func toStrings(t testing.TB, v any) []string {
	t.Helper()
	var out []string
	for _, x := range mustSlice(t, v, "runAfter statuses") {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("runAfter status %v is not a string", x)
		}
		out = append(out, s)
	}
	return out
}
