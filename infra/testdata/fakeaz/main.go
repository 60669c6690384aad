// Command fakeaz stands in for the Azure CLI (az) and curl in the tests of infra/deploy.sh: run as
// "az" or "curl" (by the name it is called with), it logs every call to $FAKE_LOG and answers the
// calls deploy.sh and grant-graph-permissions.sh make from a JSON state file ($FAKE_STATE), which
// it updates as Azure would. Anything else fails loudly ("fake az: unexpected call"), so a script
// cannot quietly depend on a call the fake does not model.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

const (
	subscription = "00000000-1111-2222-3333-444444444444"
	graphSP      = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	principal    = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	vault        = "kv-fake"
	appName      = "entra-revoke-fake"
	// The Azure Security Insights app (Sentinel's automation) and its service principal here.
	securityInsightsApp = "98785600-1bb7-4fb9-b9fa-19afe2c8a360"
	securityInsightsSP  = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"
	playbookPrincipal   = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
)

var graphRoles = map[string]string{
	"User.RevokeSessions.All": "77f3a031-c388-4f99-b373-dc68676a979e",
	"User.Read.All":           "df021288-bdef-4463-88db-98f22de89214",
}

// State is the fake tenant and subscription.
type State struct {
	Groups       map[string]string          `json:"groups"`       // name -> location
	Apps         []App                      `json:"apps"`         // app registrations
	SPs          []SP                       `json:"sps"`          // service principals of the apps
	Deployments  map[string]json.RawMessage `json:"deployments"`  // resource group (entra-revoke) or group/name -> deployment properties
	Deploys      int                        `json:"deploys"`      // template deployments made
	Secrets      map[string]string          `json:"secrets"`      // vault/name -> value
	SecretWrites int                        `json:"secretWrites"` // secrets written by deployments
	Deleted      [][2]string                `json:"deleted"`      // soft-deleted vaults: name, vault ID
	Assignments  []Assignment               `json:"assignments"`  // app role assignments
	Version      string                     `json:"version"`      // the release the app runs
	ZipVersion   string                     `json:"zipVersion"`   // what a zip deployment makes it run
	ZipDeploys   int                        `json:"zipDeploys"`
	Restarts     int                        `json:"restarts"`
	Requests     []string                   `json:"requests"`    // bodies sent to /api/revoke
	RoleAssigns  [][3]string                `json:"roleAssigns"` // Azure role assignments: principal, role, scope
	Next         int                        `json:"next"`        // for new IDs
}

type App struct {
	AppID, DisplayName string
	URIs               []string
	Roles              []struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	}
}

type SP struct {
	ID, AppID string
	Required  bool
}

type Assignment struct{ ID, PrincipalID, ResourceID, AppRoleID string }

func main() {
	tool := filepath.Base(os.Args[0])
	args := os.Args[1:]
	logCall(tool, args)
	st := load()
	code := 0
	if tool == "curl" {
		code = curl(st, args)
	} else {
		code = az(st, args)
	}
	save(st)
	os.Exit(code)
}

func logCall(tool string, args []string) {
	f, err := os.OpenFile(os.Getenv("FAKE_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Fprintln(f, tool+"\x1f"+strings.Join(args, "\x1f"))
}

func load() *State {
	st := &State{}
	if b, err := os.ReadFile(os.Getenv("FAKE_STATE")); err == nil {
		if err := json.Unmarshal(b, st); err != nil {
			panic(err)
		}
	}
	if st.Groups == nil {
		st.Groups = map[string]string{}
	}
	if st.Deployments == nil {
		st.Deployments = map[string]json.RawMessage{}
	}
	if st.Secrets == nil {
		st.Secrets = map[string]string{}
	}
	return st
}

func save(st *State) {
	b, _ := json.MarshalIndent(st, "", " ")
	if err := os.WriteFile(os.Getenv("FAKE_STATE"), b, 0o600); err != nil {
		panic(err)
	}
}

func flag(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func flags(args []string, name string) []string {
	var out []string
	for i, a := range args {
		if a == name && i+1 < len(args) {
			out = append(out, args[i+1])
		}
	}
	return out
}

func (st *State) newID() string {
	st.Next++
	return fmt.Sprintf("aaaaaaaa-0000-4000-8000-%012d", st.Next)
}

func fail(msg string) int {
	fmt.Fprintln(os.Stderr, "ERROR: "+msg)
	return 3
}

func unexpected(args []string) int {
	fmt.Fprintln(os.Stderr, "fake az: unexpected call: "+strings.Join(args, " "))
	return 3
}

var (
	quoted   = regexp.MustCompile(`'([^']*)'`)
	roleIDQ  = regexp.MustCompile(`appRoleId=='([^']*)'`)
	resIDQ   = regexp.MustCompile(`resourceId=='([^']*)'`)
	valueQ   = regexp.MustCompile(`value=='([^']*)'`)
	spAssign = regexp.MustCompile(`/v1\.0/servicePrincipals/([^/]+)/appRoleAssignments$`)
)

func az(st *State, args []string) int {
	if len(args) < 2 {
		return unexpected(args)
	}
	q := flag(args, "--query")
	switch args[0] + " " + args[1] {
	case "account show":
		if q == "id" {
			fmt.Println(subscription)
		}
		return 0
	case "group show":
		if _, ok := st.Groups[flag(args, "--name")]; !ok {
			return fail("(ResourceGroupNotFound) Resource group could not be found.")
		}
		fmt.Println(flag(args, "--name"))
		return 0
	case "group create":
		st.Groups[flag(args, "--name")] = flag(args, "--location")
		return 0
	case "deployment group":
		return deployment(st, args)
	case "ad app":
		return adApp(st, args)
	case "ad sp":
		return adSP(st, args)
	case "ad signed-in-user":
		fmt.Println("admin@contoso.com")
		return 0
	case "keyvault list-deleted":
		for _, d := range st.Deleted {
			fmt.Println(d[0] + "\t" + d[1])
		}
		return 0
	case "keyvault recover":
		st.Deleted = slices.DeleteFunc(st.Deleted, func(d [2]string) bool { return d[0] == flag(args, "--name") })
		return 0
	case "keyvault secret":
		v, ok := st.Secrets[flag(args, "--vault-name")+"/"+flag(args, "--name")]
		if !ok {
			return fail("(SecretNotFound)")
		}
		fmt.Println(v)
		return 0
	case "resource list":
		// The resource group's vault, when a deployment (even a failed one) made it.
		for name := range st.Secrets {
			if strings.HasPrefix(name, vault+"/") && !slices.ContainsFunc(st.Deleted, func(d [2]string) bool { return d[0] == vault }) {
				fmt.Println(vault)
				return 0
			}
		}
		return 0
	case "resource show":
		id := flag(args, "--ids")
		m := regexp.MustCompile(`/vaults/([^/]+)/secrets/([^/]+)$`).FindStringSubmatch(id)
		if m == nil {
			return unexpected(args)
		}
		if _, ok := st.Secrets[m[1]+"/"+m[2]]; !ok {
			return fail("(ResourceNotFound)")
		}
		fmt.Println(id)
		return 0
	case "functionapp function":
		fmt.Println("fake-function-key")
		return 0
	case "functionapp deployment":
		st.Version = st.ZipVersion
		st.ZipDeploys++
		return 0
	case "functionapp restart":
		st.Restarts++
		return 0
	case "rest --method":
		return rest(st, args)
	case "role assignment":
		a := [3]string{flag(args, "--assignee"), flag(args, "--role"), flag(args, "--scope")}
		switch args[2] {
		case "list":
			for i, r := range st.RoleAssigns {
				if r == a {
					fmt.Printf("role-assignment-%d\n", i)
				}
			}
			return 0
		case "create":
			a[0] = flag(args, "--assignee-object-id")
			if slices.Contains(st.RoleAssigns, a) {
				return fail("(RoleAssignmentExists) The role assignment already exists.")
			}
			st.RoleAssigns = append(st.RoleAssigns, a)
			return 0
		}
	}
	return unexpected(args)
}

// deploymentKey names a deployment in State.Deployments: entra-revoke's by its resource group
// alone, any other (the Sentinel playbook's) by group and name.
func deploymentKey(args []string) string {
	if name := flag(args, "-n"); name != "entra-revoke" {
		return flag(args, "-g") + "/" + name
	}
	return flag(args, "-g")
}

func deployment(st *State, args []string) int {
	rg := deploymentKey(args)
	switch args[2] {
	case "show":
		d, ok := st.Deployments[rg]
		if !ok {
			return fail("(DeploymentNotFound)")
		}
		fmt.Println(string(d))
		return 0
	case "create":
	default:
		return unexpected(args)
	}
	var tmpl struct {
		Parameters map[string]struct {
			Type    string `json:"type"`
			Default any    `json:"defaultValue"`
		} `json:"parameters"`
		Outputs map[string]any `json:"outputs"`
	}
	b, err := os.ReadFile(flag(args, "--template-file"))
	if err != nil || json.Unmarshal(b, &tmpl) != nil {
		return fail("cannot read the template")
	}
	given := map[string]any{}
	for _, p := range flags(args, "--parameters") {
		b, err := os.ReadFile(strings.TrimPrefix(p, "@"))
		if err != nil {
			return fail("cannot read " + p)
		}
		var m map[string]struct {
			Value any `json:"value"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return fail("parameters file " + p + ": " + err.Error())
		}
		for k, v := range m {
			if _, ok := tmpl.Parameters[k]; !ok {
				return fail("(InvalidTemplate) parameter " + k + " is not declared")
			}
			given[k] = v.Value
		}
	}
	params := map[string]map[string]any{}
	for name, p := range tmpl.Parameters {
		v, ok := given[name]
		if !ok {
			if p.Default == nil {
				return fail("(InvalidTemplate) parameter " + name + " has no value and no default")
			}
			v = p.Default
		}
		typ := map[string]string{"string": "String", "securestring": "SecureString", "bool": "Bool", "int": "Int"}[p.Type]
		if typ == "SecureString" {
			if s, _ := v.(string); s != "" {
				secret := map[string]string{"webhookSecrets": "webhook-secrets", "queueSecrets": "queue-secrets", "telemetryUpnSalt": "telemetry-upn-salt"}[name]
				st.Secrets[vault+"/"+secret] = s
				st.SecretWrites++
			}
			params[name] = map[string]any{"type": typ}
			continue
		}
		params[name] = map[string]any{"type": typ, "value": v}
	}
	outputs := map[string]any{
		"functionAppName": map[string]any{"type": "String", "value": appName},
		"principalId":     map[string]any{"type": "String", "value": principal},
		"healthUrl":       map[string]any{"type": "String", "value": "https://" + appName + ".azurewebsites.net/api/health"},
		"revokeUrl":       map[string]any{"type": "String", "value": "https://" + appName + ".azurewebsites.net/api/revoke"},
		"keyVaultName":    map[string]any{"type": "String", "value": vault},
		"functionKeyReaderRoleId": map[string]any{"type": "String",
			"value": "/subscriptions/" + subscription + "/providers/Microsoft.Authorization/roleDefinitions/bbbbbbbb-0000-4000-8000-000000000001"},
	}
	if _, ok := tmpl.Outputs["playbookPrincipalId"]; ok { // the Sentinel playbook's template
		outputs = map[string]any{"playbookPrincipalId": map[string]any{"type": "String", "value": playbookPrincipal}}
	}
	props := map[string]any{"parameters": params, "outputs": outputs}
	b, _ = json.Marshal(props)
	st.Deployments[rg] = b
	st.Deploys++
	fmt.Println(string(b))
	return 0
}

func (st *State) app(id string) *App {
	for i := range st.Apps {
		if st.Apps[i].AppID == id {
			return &st.Apps[i]
		}
	}
	return nil
}

func (st *State) sp(appID string) *SP {
	for i := range st.SPs {
		if st.SPs[i].AppID == appID {
			return &st.SPs[i]
		}
	}
	return nil
}

func adApp(st *State, args []string) int {
	switch args[2] {
	case "list":
		for _, a := range st.Apps {
			if a.DisplayName == flag(args, "--display-name") {
				fmt.Println(a.AppID)
				return 0
			}
		}
		return 0
	case "create":
		a := App{AppID: st.newID(), DisplayName: flag(args, "--display-name")}
		b, err := os.ReadFile(strings.TrimPrefix(flag(args, "--app-roles"), "@"))
		if err != nil || json.Unmarshal(b, &a.Roles) != nil {
			return fail("bad --app-roles")
		}
		st.Apps = append(st.Apps, a)
		fmt.Println(a.AppID)
		return 0
	case "show":
		if a := st.app(flag(args, "--id")); a != nil && len(a.URIs) > 0 {
			fmt.Println(a.URIs[0])
		}
		return 0
	case "update":
		a := st.app(flag(args, "--id"))
		if a == nil {
			return fail("no such app")
		}
		a.URIs = []string{flag(args, "--identifier-uris")}
		return 0
	}
	return unexpected(args)
}

func adSP(st *State, args []string) int {
	switch args[2] {
	case "list":
		m := quoted.FindStringSubmatch(flag(args, "--filter"))
		if m == nil {
			return unexpected(args)
		}
		if s := st.sp(m[1]); s != nil {
			fmt.Println(s.ID)
		}
		return 0
	case "create":
		if st.sp(flag(args, "--id")) != nil {
			return fail("service principal exists")
		}
		st.SPs = append(st.SPs, SP{ID: st.newID(), AppID: flag(args, "--id")})
		return 0
	case "show":
		if flag(args, "--id") == securityInsightsApp && flag(args, "--query") == "id" {
			fmt.Println(securityInsightsSP)
			return 0
		}
		s, a := st.sp(flag(args, "--id")), st.app(flag(args, "--id"))
		if s == nil || a == nil {
			return fail("no such service principal")
		}
		switch q := flag(args, "--query"); {
		case q == "appRoleAssignmentRequired":
			fmt.Println(map[bool]string{true: "True", false: "False"}[s.Required])
		case strings.Contains(q, "appRoles"):
			want := valueQ.FindStringSubmatch(q)
			for _, r := range a.Roles {
				if want != nil && r.Value == want[1] {
					fmt.Println(r.ID)
				}
			}
		default:
			return unexpected(args)
		}
		return 0
	case "update":
		s := st.sp(flag(args, "--id"))
		if s == nil || flag(args, "--set") != "appRoleAssignmentRequired=true" {
			return unexpected(args)
		}
		s.Required = true
		return 0
	}
	return unexpected(args)
}

func rest(st *State, args []string) int {
	url, q := flag(args, "--url"), flag(args, "--query")
	switch {
	case args[2] == "GET" && strings.HasSuffix(url, "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')?$select=id"):
		fmt.Println(graphSP)
		return 0
	case args[2] == "GET" && strings.HasSuffix(url, "/servicePrincipals/"+graphSP+"?$select=appRoles"):
		if m := valueQ.FindStringSubmatch(q); m != nil {
			fmt.Println(graphRoles[m[1]])
		}
		return 0
	}
	m := spAssign.FindStringSubmatch(url)
	if m == nil {
		return unexpected(args)
	}
	switch args[2] {
	case "GET":
		role, res := roleIDQ.FindStringSubmatch(q), resIDQ.FindStringSubmatch(q)
		if role == nil || res == nil {
			return unexpected(args)
		}
		for _, a := range st.Assignments {
			if a.PrincipalID == m[1] && a.AppRoleID == role[1] && a.ResourceID == res[1] {
				fmt.Println(a.ID)
			}
		}
		return 0
	case "POST":
		var body struct{ PrincipalID, ResourceID, AppRoleID string }
		if err := json.Unmarshal([]byte(flag(args, "--body")), &body); err != nil || body.PrincipalID != m[1] {
			return fail("bad body")
		}
		for _, a := range st.Assignments {
			if a.PrincipalID == body.PrincipalID && a.AppRoleID == body.AppRoleID && a.ResourceID == body.ResourceID {
				return fail("Permission being assigned already exists on the object")
			}
		}
		st.Assignments = append(st.Assignments, Assignment{st.newID(), body.PrincipalID, body.ResourceID, body.AppRoleID})
		return 0
	}
	return unexpected(args)
}

func curl(st *State, args []string) int {
	url := args[len(args)-1]
	out := flag(args, "-o")
	if out == "" {
		out = flag(args, "--output")
	}
	write := func(b []byte) {
		if out == "" {
			os.Stdout.Write(b)
			return
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			panic(err)
		}
	}
	switch {
	case strings.HasPrefix(url, "file://"):
		b, err := os.ReadFile(strings.TrimPrefix(url, "file://"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "curl: (37) Couldn't open file")
			return 37
		}
		write(b)
		return 0
	case strings.HasSuffix(url, "/api/health"):
		if st.Version == "" {
			fmt.Fprintln(os.Stderr, "curl: (22) The requested URL returned error: 404")
			return 22
		}
		graph := "missing_permission"
		for _, a := range st.Assignments {
			if a.PrincipalID == principal && a.AppRoleID == graphRoles["User.RevokeSessions.All"] {
				graph = "ok"
			}
		}
		write([]byte(`{"status":"ok","version":"` + st.Version + `","queue":true,"state":"table","graph":"` + graph + `"}`))
		return 0
	case strings.HasSuffix(url, "/api/revoke"):
		body, err := os.ReadFile(strings.TrimPrefix(flag(args, "--data-binary"), "@"))
		if err != nil {
			return 26
		}
		st.Requests = append(st.Requests, strings.TrimSpace(string(body)))
		var req struct {
			UPN    string `json:"upn"`
			DryRun bool   `json:"dryRun"`
		}
		_ = json.Unmarshal(body, &req)
		var props struct {
			Parameters map[string]struct {
				Value any `json:"value"`
			} `json:"parameters"`
		}
		for key, d := range st.Deployments {
			if !strings.Contains(key, "/") { // entra-revoke's, not a playbook's
				_ = json.Unmarshal(d, &props)
			}
		}
		status := "revoked"
		if req.DryRun || props.Parameters["dryRun"].Value == true {
			status = "dry_run"
		}
		write([]byte(`{"id":"x","status":"` + status + `","results":[{"upn":"` + req.UPN + `","status":"` + status + `"}]}`))
		if h := flag(args, "--dump-header"); h != "" {
			_ = os.WriteFile(h, []byte("HTTP/1.1 200 OK\r\n"), 0o600)
		}
		fmt.Print("200")
		return 0
	}
	fmt.Fprintln(os.Stderr, "fake curl: unexpected call: "+strings.Join(args, " "))
	return 3
}
