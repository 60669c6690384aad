package infra_test

// A small evaluator for the ARM template expressions the templates here use, so that the tests
// can render the Function App's settings with given parameters and hand them to the handler's own
// settings parser, as App Service would hand them over as environment variables.
//
// Functions that ask Azure (reference, subscription, resourceGroup) return fixed, realistic
// values. An unknown function fails the test, so a template cannot quietly use something the
// tests do not understand.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

const (
	fakeTenantID       = "8d3e6b1a-5c2f-4e7a-9b1d-0f2c3a4b5c6d"
	fakeSubscriptionID = "00000000-1111-2222-3333-444444444444"
	fakeResourceGroup  = "rg-entra-revoke"
	fakeConnection     = "InstrumentationKey=0d4c5a6b-7e8f-4a1b-9c2d-3e4f5a6b7c8d;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
)

// armContext evaluates expressions of one template for one set of parameter values.
type armContext struct {
	t      testing.TB
	tmpl   map[string]any
	params map[string]any
	vars   map[string]any
	cloud  map[string]any // environment(); nil is the public cloud
}

// newARM resolves the template's parameters: the given values, else the defaults.
func newARM(t testing.TB, tmpl map[string]any, values map[string]any) *armContext {
	t.Helper()
	c := &armContext{t: t, tmpl: tmpl, params: map[string]any{}, vars: map[string]any{}}
	decl, _ := tmpl["parameters"].(map[string]any)
	for name := range values {
		if _, ok := decl[name]; !ok {
			t.Fatalf("parameter %q is not declared by the template", name)
		}
	}
	for name, d := range decl {
		if v, ok := values[name]; ok {
			c.params[name] = v
			continue
		}
		def, ok := d.(map[string]any)["defaultValue"]
		if !ok {
			t.Fatalf("parameter %q has no default and no value", name)
		}
		c.params[name] = c.value(def)
	}
	return c
}

// value evaluates every expression in v.
func (c *armContext) value(v any) any {
	c.t.Helper()
	switch v := v.(type) {
	case string:
		if strings.HasPrefix(v, "[[") {
			return v[1:]
		}
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			p := &armParser{src: v[1 : len(v)-1]}
			n := p.expr(c.t)
			p.space()
			if p.pos != len(p.src) {
				c.t.Fatalf("unexpected %q in %q", p.src[p.pos:], v)
			}
			return c.eval(n)
		}
		return v
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = c.value(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = c.value(x)
		}
		return out
	}
	return v
}

type armNode struct {
	lit   any
	isLit bool
	fn    string
	args  []*armNode
	of    *armNode // property or index access on of
	prop  string
	index *armNode
}

type armParser struct {
	src string
	pos int
}

func (p *armParser) space() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

func (p *armParser) consume(s string) bool {
	p.space()
	if strings.HasPrefix(p.src[p.pos:], s) {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *armParser) ident() string {
	p.space()
	start := p.pos
	for p.pos < len(p.src) && (unicode.IsLetter(rune(p.src[p.pos])) || unicode.IsDigit(rune(p.src[p.pos])) || p.src[p.pos] == '_') {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *armParser) expr(t testing.TB) *armNode {
	t.Helper()
	p.space()
	var n *armNode
	switch c := p.src[p.pos]; {
	case c == '\'':
		var b strings.Builder
		for p.pos++; ; p.pos++ {
			if p.pos >= len(p.src) {
				t.Fatalf("unterminated string in %q", p.src)
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos++
					continue
				}
				p.pos++
				break
			}
			b.WriteByte(p.src[p.pos])
		}
		n = &armNode{lit: b.String(), isLit: true}
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		for p.pos++; p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9'; p.pos++ {
		}
		f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			t.Fatalf("bad number in %q", p.src)
		}
		n = &armNode{lit: f, isLit: true}
	default:
		name := p.ident()
		if name == "" || !p.consume("(") {
			t.Fatalf("expected a function call at %d in %q", p.pos, p.src)
		}
		n = &armNode{fn: name}
		if !p.consume(")") {
			for {
				n.args = append(n.args, p.expr(t))
				if p.consume(")") {
					break
				}
				if !p.consume(",") {
					t.Fatalf("expected , or ) at %d in %q", p.pos, p.src)
				}
			}
		}
	}
	for {
		switch {
		case p.consume("."):
			n = &armNode{of: n, prop: p.ident()}
		case p.consume("["):
			idx := p.expr(t)
			if !p.consume("]") {
				t.Fatalf("expected ] in %q", p.src)
			}
			n = &armNode{of: n, index: idx}
		default:
			return n
		}
	}
}

func (c *armContext) eval(n *armNode) any {
	c.t.Helper()
	if n.isLit {
		return n.lit
	}
	if n.of != nil {
		base := c.eval(n.of)
		key := n.prop
		if n.index != nil {
			switch i := c.eval(n.index).(type) {
			case string:
				key = i
			case float64:
				arr, ok := base.([]any)
				if !ok || int(i) >= len(arr) {
					c.t.Fatalf("index %v of %v", i, base)
				}
				return arr[int(i)]
			}
		}
		m, ok := base.(map[string]any)
		if !ok {
			c.t.Fatalf("property %s of %T", key, base)
		}
		for k, v := range m {
			if strings.EqualFold(k, key) { // ARM property names are case-insensitive
				return v
			}
		}
		c.t.Fatalf("property %s does not exist in %v", key, m)
	}
	if strings.EqualFold(n.fn, "if") {
		// Like ARM, evaluate only the branch the condition selects.
		if len(n.args) != 3 {
			c.t.Fatalf("if() takes 3 arguments, got %d", len(n.args))
		}
		cond, ok := c.eval(n.args[0]).(bool)
		if !ok {
			c.t.Fatalf("if(): the condition is not a boolean")
		}
		if cond {
			return c.eval(n.args[1])
		}
		return c.eval(n.args[2])
	}
	args := make([]any, len(n.args))
	for i, a := range n.args {
		args[i] = c.eval(a)
	}
	str := func(i int) string {
		s, ok := args[i].(string)
		if !ok {
			c.t.Fatalf("%s: argument %d is %T, not a string", n.fn, i+1, args[i])
		}
		return s
	}
	switch strings.ToLower(n.fn) {
	case "parameters":
		v, ok := c.params[str(0)]
		if !ok {
			c.t.Fatalf("parameters(%q): not declared", str(0))
		}
		return v
	case "variables":
		name := str(0)
		if v, ok := c.vars[name]; ok {
			return v
		}
		decl, _ := c.tmpl["variables"].(map[string]any)
		raw, ok := decl[name]
		if !ok {
			c.t.Fatalf("variables(%q): not declared", name)
		}
		v := c.value(raw)
		c.vars[name] = v
		return v
	case "string":
		switch v := args[0].(type) {
		case string:
			return v
		case bool:
			if v {
				return "True" // ARM formats booleans as .NET does
			}
			return "False"
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				c.t.Fatal(err)
			}
			return string(b)
		}
	case "tolower":
		return strings.ToLower(str(0))
	case "concat":
		if _, isArr := args[0].([]any); isArr {
			var out []any
			for _, a := range args {
				out = append(out, a.([]any)...)
			}
			return out
		}
		var b strings.Builder
		for i := range args {
			b.WriteString(str(i))
		}
		return b.String()
	case "equals":
		return fmt.Sprint(args[0]) == fmt.Sprint(args[1]) && fmt.Sprintf("%T", args[0]) == fmt.Sprintf("%T", args[1])
	case "contains":
		switch v := args[0].(type) {
		case string:
			return strings.Contains(v, str(1)) // ARM: case-sensitive for strings
		case []any:
			for _, x := range v {
				if x == args[1] {
					return true
				}
			}
			return false
		}
		c.t.Fatalf("contains(%T, …) is not supported by the test evaluator", args[0])
	case "and", "or":
		want := strings.EqualFold(n.fn, "or")
		for i, a := range args {
			b, ok := a.(bool)
			if !ok {
				c.t.Fatalf("%s: argument %d is %T, not a boolean", n.fn, i+1, a)
			}
			if b == want {
				return want
			}
		}
		return !want
	case "empty":
		switch v := args[0].(type) {
		case nil:
			return true
		case string:
			return v == ""
		case []any:
			return len(v) == 0
		case map[string]any:
			return len(v) == 0
		}
		return false
	case "not":
		return !args[0].(bool)
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	case "createobject":
		if len(args)%2 != 0 {
			c.t.Fatalf("createObject() takes key-value pairs, got %d arguments", len(args))
		}
		out := map[string]any{}
		for i := 0; i < len(args); i += 2 {
			out[str(i)] = args[i+1]
		}
		return out
	case "createarray":
		return append([]any{}, args...)
	case "split":
		parts := strings.Split(str(0), str(1))
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out
	case "first", "last":
		arr, ok := args[0].([]any)
		if !ok || len(arr) == 0 {
			c.t.Fatalf("%s() of %v: the test evaluator takes a non-empty array", n.fn, args[0])
		}
		if strings.EqualFold(n.fn, "first") {
			return arr[0]
		}
		return arr[len(arr)-1]
	case "take":
		s := str(0)
		return s[:min(len(s), int(args[1].(float64)))]
	case "uniquestring", "guid":
		h := sha256.New()
		for i := range args {
			fmt.Fprintf(h, "%s|", str(i))
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if strings.EqualFold(n.fn, "guid") {
			return sum[0:8] + "-" + sum[8:12] + "-" + sum[12:16] + "-" + sum[16:20] + "-" + sum[20:32]
		}
		return sum[:13]
	case "environment":
		if c.cloud != nil {
			return c.cloud
		}
		// The public cloud's values (environment() of Azure Resource Manager).
		return map[string]any{"name": "AzureCloud", "suffixes": map[string]any{"storage": "core.windows.net"}}
	case "subscription":
		return map[string]any{"subscriptionId": fakeSubscriptionID, "tenantId": fakeTenantID,
			"id": "/subscriptions/" + fakeSubscriptionID}
	case "resourcegroup":
		return map[string]any{"name": fakeResourceGroup, "location": "westeurope",
			"id": "/subscriptions/" + fakeSubscriptionID + "/resourceGroups/" + fakeResourceGroup}
	case "resourceid":
		return "/subscriptions/" + fakeSubscriptionID + "/resourceGroups/" + fakeResourceGroup + "/providers/" + typedPath(c.t, str(0), args[1:])
	case "extensionresourceid":
		return str(0) + "/providers/" + typedPath(c.t, str(1), args[2:])
	case "subscriptionresourceid":
		return "/subscriptions/" + fakeSubscriptionID + "/providers/" + typedPath(c.t, str(0), args[1:])
	case "reference":
		return fakeReference(c.t, str(0))
	}
	c.t.Fatalf("ARM function %s() is not supported by the test evaluator", n.fn)
	return nil
}

// typedPath interleaves a resource type's segments with names:
// "Microsoft.Storage/storageAccounts/queueServices", [a, b] -> "Microsoft.Storage/storageAccounts/a/queueServices/b".
func typedPath(t testing.TB, typ string, names []any) string {
	t.Helper()
	segs := strings.Split(typ, "/")
	if len(segs)-1 != len(names) {
		t.Fatalf("resourceId(%s): %d names for %d type segments", typ, len(names), len(segs)-1)
	}
	out := segs[0]
	for i, n := range names {
		out += "/" + segs[i+1] + "/" + fmt.Sprint(n)
	}
	return out
}

var resourceName = regexp.MustCompile(`/providers/([^/]+/[^/]+)/([^/]+)$`)

// fakeReference answers reference() for the resource types the templates read at deployment.
func fakeReference(t testing.TB, id string) map[string]any {
	t.Helper()
	m := resourceName.FindStringSubmatch(id)
	if m == nil {
		t.Fatalf("reference(%q): not a resource ID", id)
	}
	switch name := m[2]; m[1] {
	case "Microsoft.Insights/components":
		return map[string]any{"ConnectionString": fakeConnection}
	case "Microsoft.Storage/storageAccounts":
		return map[string]any{"primaryEndpoints": map[string]any{
			"blob": "https://" + name + ".blob.core.windows.net/", "queue": "https://" + name + ".queue.core.windows.net/"}}
	case "Microsoft.Web/sites":
		return map[string]any{"defaultHostName": name + ".azurewebsites.net",
			"identity": map[string]any{"principalId": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "type": "SystemAssigned"}}
	}
	t.Fatalf("reference(%q): no fake for %s", id, m[1])
	return nil
}
