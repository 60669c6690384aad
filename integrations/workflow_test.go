package integrations_test

// A small interpreter for the Logic Apps workflow definitions in this folder, so that the tests
// can run a playbook against the real HTTP handler instead of only reading its JSON.
//
// It implements the part of the Workflow Definition Language the definitions use, with the
// documented semantics, and is stricter than Logic Apps where that is cheap:
//   - every argument of a function is evaluated, including both branches of if() (Logic Apps does
//     not promise short-circuiting), and concat/toLower/replace refuse null and non-strings;
//   - an unknown function, action type or trigger accessor fails the test, so a definition cannot
//     silently use something the tests do not cover.
// Actions run in runAfter order inside each container (workflow, Scope, Foreach iteration, If
// branch); loops run sequentially (the definitions set concurrency 1). A container fails when one
// of its actions failed and no other action of the container runs after that failure; the
// Foreach fails when an iteration fails. Retry policies are not simulated: one attempt each.

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

	vars       map[string]any
	actions    map[string]*wfAction // the latest result of every action, by name
	loopItems  map[string]any       // items('<loop>')
	item       any                  // item() in Query/Select
	hasItem    bool
	terminated string // runStatus of a Terminate action
	response   *wfResponse
	http       *http.Client
}

// wfAction is the result of one action run.
type wfAction struct {
	Name     string
	Type     string
	Status   string
	Code     string
	Inputs   any
	Outputs  any
	Error    map[string]any
	Children []string // for Scope: the names of its direct actions, for result()
}

// wfResponse is what a Response action returned to the trigger's caller.
type wfResponse struct {
	Status int
	Body   any
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

// run executes the workflow's actions and returns the run status.
func (r *wfRun) run() string {
	r.t.Helper()
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
	// Failed unless every failure is handled by an action that runs after it on failure.
	for name, st := range status {
		if st != wfFailed && st != wfTimedOut {
			continue
		}
		handled := false
		for other := range actions {
			after, _ := mustObject(r.t, actions[other], other)["runAfter"].(map[string]any)
			if allowed, ok := after[name]; ok && slices.Contains(toStrings(r.t, allowed), st) {
				handled = true
			}
		}
		if !handled {
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
		res.Outputs = out
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
		res.Outputs = map[string]any{"statusCode": float64(code), "body": body}
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
		var kept []any
		for _, it := range mustSlice(r.t, from, name) {
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
		res.Outputs = map[string]any{"body": orEmpty(kept)}
	case "Select":
		in := mustObject(r.t, a["inputs"], name)
		from, err := r.eval(in["from"])
		if err != nil {
			return fail(err)
		}
		var out []any
		for _, it := range mustSlice(r.t, from, name) {
			r.item, r.hasItem = it, true
			v, err := r.eval(in["select"])
			r.item, r.hasItem = nil, false
			if err != nil {
				return fail(err)
			}
			out = append(out, v)
		}
		res.Outputs = map[string]any{"body": orEmpty(out)}
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
		r.response = &wfResponse{Status: int(code), Body: m["body"]}
	case "Terminate":
		in := mustObject(r.t, a["inputs"], name)
		r.terminated, _ = in["runStatus"].(string)
	default:
		r.t.Fatalf("action %s: type %q is not supported by the test interpreter", name, typ)
	}
	return res.Status
}

// runHTTP sends an Http action's request.
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, uri, body)
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
	resp, err := r.http.Do(req)
	if err != nil {
		// No answer: Logic Apps reports the action failed without a status code.
		res.Status, res.Outputs = wfFailed, map[string]any{}
		res.Error = map[string]any{"code": "ServiceUnavailable", "message": "no response: " + err.Error()}
		return wfFailed
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("%s: read response: %v", res.Name, err)
	}
	headers := map[string]any{}
	for k := range resp.Header {
		headers[k] = resp.Header.Get(k)
	}
	var parsed any = string(raw)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &parsed); err != nil {
			r.t.Fatalf("%s: response is not JSON: %v: %s", res.Name, err, raw)
		}
	}
	res.Outputs = map[string]any{"statusCode": float64(resp.StatusCode), "headers": headers, "body": parsed}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Status, res.Code = wfFailed, strconv.Itoa(resp.StatusCode)
		res.Error = map[string]any{"code": strconv.Itoa(resp.StatusCode), "message": string(raw)}
	}
	return res.Status
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
	case "outputs":
		a, err := action()
		if err != nil {
			return nil, err
		}
		return a.Outputs, nil
	case "body":
		a, err := action()
		if err != nil {
			return nil, err
		}
		switch a.Type {
		case "Http", "ApiConnection", "Query", "Select":
			m, _ := a.Outputs.(map[string]any)
			return m["body"], nil
		}
		return a.Outputs, nil
	case "result":
		a, err := action()
		if err != nil {
			return nil, err
		}
		var out []any
		for _, child := range a.Children {
			c, ok := r.actions[child]
			if !ok {
				continue
			}
			item := map[string]any{"name": c.Name, "status": c.Status}
			if c.Code != "" {
				item["code"] = c.Code
			}
			if c.Error != nil {
				item["error"] = c.Error
			}
			out = append(out, item)
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
		if !ok {
			return nil, wfErrorf("take: count is %T", args[1])
		}
		switch v := args[0].(type) {
		case string:
			rs := []rune(v)
			return string(rs[:min(len(rs), int(n))]), nil
		case []any:
			return v[:min(len(v), int(n))], nil
		}
		return nil, wfErrorf("take: %T", args[0])
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
