package graphtest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BasePath is the version segment the fake serves under, as Graph v1.0 does.
const BasePath = "/v1.0"

// contentType is what Graph sends with every JSON answer.
const contentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// User is a directory user of the fake.
type User struct {
	ID                string // object ID
	UPN               string
	UserType          string    // "Member" or "Guest"; "" answers "Member"
	SessionsValidFrom time.Time // signInSessionsValidFromDateTime; zero answers null
}

// Response is a scripted answer. The zero Response means "answer normally".
type Response struct {
	Status     int           // HTTP status; 0 answers as Graph would
	Code       string        // error.code; defaults from Status (e.g. 429 "TooManyRequests")
	Message    string        // error.message; defaults from Status
	RetryAfter string        // Retry-After header, seconds or an HTTP date
	Location   string        // Location header, for a redirect
	Challenge  string        // WWW-Authenticate header, for a 401 (see ClaimsChallenge)
	Body       string        // raw body instead of the generated one
	Delay      time.Duration // extra latency before answering
	Method     string        // answer only requests with this method ("" = any); others pass by
}

// TooManyRequests is Graph's 429 with the given Retry-After ("" for none).
func TooManyRequests(retryAfter string) Response {
	return Response{Status: http.StatusTooManyRequests, RetryAfter: retryAfter}
}

// ClaimsChallenge is the 401 a CAE-enabled resource answers when the token was revoked (a
// continuous access evaluation event): WWW-Authenticate carries the claims, base64-encoded, that
// the next token must satisfy.
func ClaimsChallenge(claims string) Response {
	return Response{
		Status:  http.StatusUnauthorized,
		Code:    "InvalidAuthenticationToken",
		Message: "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
		Challenge: `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", ` +
			`client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="` +
			base64.StdEncoding.EncodeToString([]byte(claims)) + `"`,
	}
}

// ServiceUnavailable is Graph's 503.
func ServiceUnavailable() Response { return Response{Status: http.StatusServiceUnavailable} }

// Forbidden is Graph's 403 Authorization_RequestDenied (missing permission, privileged target).
func Forbidden() Response { return Response{Status: http.StatusForbidden} }

// NoContent is a bare 204; a 2xx scripted answer still applies the revocation.
func NoContent() Response { return Response{Status: http.StatusNoContent} }

// OK answers normally; use it to spell out "then 200" in a script.
func OK() Response { return Response{} }

// Request is one request the fake received.
type Request struct {
	Time             time.Time
	Method           string
	RawPath          string // escaped path as it came, e.g. /v1.0/users/jane_x.com%23EXT%23%40y.com/revokeSignInSessions
	Path             string // decoded path
	User             string // decoded user segment ("" when the path has none)
	Action           string // "revokeSignInSessions", or "" for the user itself
	Query            url.Values
	RawQuery         string
	HasAuthorization bool
	Authorization    string // the header as received, e.g. "Bearer <token>"
	ClientRequestID  string
	Status           int    // what the fake answered
	RequestID        string // the request-id header the fake answered with
}

// Graph is a fake of Microsoft Graph v1.0 serving /users/{id | userPrincipalName} (GET with
// $select) and /users/{…}/revokeSignInSessions (POST), with Graph's real bodies and headers.
type Graph struct {
	srv *httptest.Server

	mu            sync.Mutex
	users         []*User
	scripts       map[string][]Response // by lower-case user reference
	latency       time.Duration
	refuseLookups bool
	token         string // required bearer token, "" = any
	requests      []Request
	revocations   map[*User]int

	// Sign-in logs (signins.go): GET /auditLogs/signIns.
	signIns       []SignIn
	signInScripts []Response
	signInTimes   []time.Time // when each sign-in log request arrived, kept even by load tests

	// Added for load tests (tenant.go): an index so that a directory of thousands answers at
	// once, and a switch that keeps no Request records, which a load test would pile up by the
	// hundred thousand.
	index       map[string]*User // by lower-case ID and UPN; the first user added keeps a key
	forgetsReqs bool
}

// NewGraph starts an empty Graph fake. Its URL() is the GRAPH_BASE_URL to use.
func NewGraph(t testing.TB) *Graph {
	t.Helper()
	g := &Graph{scripts: map[string][]Response{}, revocations: map[*User]int{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

// URL is the base URL, e.g. http://127.0.0.1:41234/v1.0.
func (g *Graph) URL() string { return g.srv.URL + BasePath }

// Host is the fake's host:port.
func (g *Graph) Host() string { return strings.TrimPrefix(g.srv.URL, "http://") }

// AddUser adds users to the directory.
func (g *Graph) AddUser(users ...User) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, u := range users {
		g.users = append(g.users, &u)
		g.indexUser(&u)
	}
}

// User returns the directory user with this object ID or UPN (case-insensitive).
func (g *Graph) User(ref string) (User, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.find(ref); u != nil {
		return *u, true
	}
	return User{}, false
}

// Revocations counts the successful revocations of the directory user with this object ID or UPN.
func (g *Graph) Revocations(ref string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.revocations[g.find(ref)]
}

// Script queues answers for the next requests about user (matched case-insensitively against
// the reference in the path, and against the ID and UPN of the directory user it names). Each
// request consumes one answer; when the script runs out the fake answers normally again. For
// example Script("alice@contoso.com", TooManyRequests("1"), OK()).
func (g *Graph) Script(user string, rs ...Response) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := strings.ToLower(user)
	g.scripts[k] = append(g.scripts[k], rs...)
}

// SetLatency delays every answer by d (or until the client gives up).
func (g *Graph) SetLatency(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.latency = d
}

// RefuseLookups makes every GET answer 403 Authorization_RequestDenied (an app without
// User.Read.All); revocations still work.
func (g *Graph) RefuseLookups(refuse bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuseLookups = refuse
}

// RequireToken makes the fake accept only "Bearer <token>"; by default any bearer token passes.
func (g *Graph) RequireToken(token string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.token = token
}

// Requests returns every request received so far, in order.
func (g *Graph) Requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Request, len(g.requests))
	for i, r := range g.requests {
		r.Query = cloneValues(r.Query)
		out[i] = r
	}
	return out
}

// find returns the user named by ref; g.mu must be held.
func (g *Graph) find(ref string) *User {
	if u := g.index[strings.ToLower(ref)]; u != nil {
		return u
	}
	for _, u := range g.users {
		if strings.EqualFold(u.ID, ref) || strings.EqualFold(u.UPN, ref) {
			return u
		}
	}
	return nil
}

// nextScripted pops the next scripted answer for the request, if any; g.mu must be held.
func (g *Graph) nextScripted(method, ref string, u *User) (Response, bool) {
	keys := []string{strings.ToLower(ref)}
	if u != nil {
		keys = append(keys, strings.ToLower(u.ID), strings.ToLower(u.UPN))
	}
	for _, k := range keys {
		q := g.scripts[k]
		if len(q) == 0 || (q[0].Method != "" && !strings.EqualFold(q[0].Method, method)) {
			continue
		}
		g.scripts[k] = q[1:]
		return q[0], true
	}
	return Response{}, false
}

func (g *Graph) serve(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	clientReqID := r.Header.Get("client-request-id")
	if clientReqID == "" {
		clientReqID = reqID
	}
	w.Header().Set("request-id", reqID)
	w.Header().Set("client-request-id", clientReqID)

	auth, hasAuth := r.Header.Get("Authorization"), len(r.Header.Values("Authorization")) > 0
	rec := Request{
		Time:             time.Now(),
		Method:           r.Method,
		RawPath:          r.URL.EscapedPath(),
		Path:             r.URL.Path,
		Query:            cloneValues(r.URL.Query()),
		RawQuery:         r.URL.RawQuery,
		HasAuthorization: hasAuth,
		Authorization:    auth,
		ClientRequestID:  r.Header.Get("client-request-id"),
		RequestID:        reqID,
	}
	user, action, routeOK := route(rec.RawPath)
	rec.User, rec.Action = user, action

	g.mu.Lock()
	idx := len(g.requests)
	if !g.forgetsReqs {
		g.requests = append(g.requests, rec)
	}
	latency, token, refuse := g.latency, g.token, g.refuseLookups
	dirUser := g.find(user)
	scripted, isScripted := Response{}, false
	if routeOK {
		scripted, isScripted = g.nextScripted(r.Method, user, dirUser)
	}
	g.mu.Unlock()

	status := func(code int) {
		g.mu.Lock()
		if idx < len(g.requests) {
			g.requests[idx].Status = code
		}
		g.mu.Unlock()
	}
	reply := func(code int, body []byte) {
		status(code)
		if len(body) > 0 {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(code)
		_, _ = w.Write(body)
	}
	fail := func(code int, errCode, msg string) {
		reply(code, errorBody(errCode, msg, reqID, clientReqID))
	}
	failStd := func(code int) {
		errCode, msg := defaultError(code, user)
		fail(code, errCode, msg)
	}

	if !wait(r, latency+scripted.Delay) {
		status(0)
		return
	}

	switch {
	case !hasAuth || !strings.HasPrefix(auth, "Bearer ") || strings.TrimPrefix(auth, "Bearer ") == "":
		fail(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return
	case token != "" && auth != "Bearer "+token:
		fail(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	case isSignIns(rec.RawPath):
		code, body := g.serveSignIns(w, r)
		reply(code, body)
		return
	case !routeOK:
		fail(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+lastSegment(rec.Path)+"'.")
		return
	}

	if isScripted && scripted.Status != 0 {
		if scripted.RetryAfter != "" {
			w.Header().Set("Retry-After", scripted.RetryAfter)
		}
		if scripted.Location != "" {
			w.Header().Set("Location", scripted.Location)
		}
		if scripted.Challenge != "" {
			w.Header().Set("WWW-Authenticate", scripted.Challenge)
		}
		code := scripted.Status
		if code >= 200 && code < 300 {
			if action == "revokeSignInSessions" && r.Method == http.MethodPost && dirUser != nil {
				g.revoke(dirUser)
			}
			reply(code, []byte(scripted.Body))
			return
		}
		if scripted.Body != "" {
			reply(code, []byte(scripted.Body))
			return
		}
		errCode, msg := defaultError(code, user)
		if scripted.Code != "" {
			errCode = scripted.Code
		}
		if scripted.Message != "" {
			msg = scripted.Message
		}
		fail(code, errCode, msg)
		return
	}

	switch {
	case action == "revokeSignInSessions" && r.Method == http.MethodPost:
		if dirUser == nil {
			failStd(http.StatusNotFound)
			return
		}
		g.revoke(dirUser)
		reply(http.StatusOK, []byte(`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean","value":true}`))
	case action == "" && r.Method == http.MethodGet:
		if refuse {
			failStd(http.StatusForbidden)
			return
		}
		if dirUser == nil {
			failStd(http.StatusNotFound)
			return
		}
		g.mu.Lock()
		u := *dirUser
		g.mu.Unlock()
		body, bad := userBody(u, rec.Query.Get("$select"))
		if bad != "" {
			fail(http.StatusBadRequest, "BadRequest", "Could not find a property named '"+bad+"' on type 'microsoft.graph.user'.")
			return
		}
		reply(http.StatusOK, body)
	default:
		fail(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
	}
}

func (g *Graph) revoke(u *User) {
	g.mu.Lock()
	defer g.mu.Unlock()
	u.SessionsValidFrom = time.Now().UTC().Truncate(time.Second)
	g.revocations[u]++
}

// route splits /v1.0/users/{user}[/revokeSignInSessions], unescaping the user segment on its own
// so that an encoded "/" stays part of the user.
func route(rawPath string) (user, action string, ok bool) {
	rest, found := strings.CutPrefix(rawPath, BasePath+"/users/")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	u, err := url.PathUnescape(parts[0])
	if err != nil || u == "" {
		return "", "", false
	}
	switch {
	case len(parts) == 1:
		return u, "", true
	case len(parts) == 2 && parts[1] == "revokeSignInSessions":
		return u, parts[1], true
	}
	return u, "", false
}

// defaultError is Graph's code and message for a status.
func defaultError(status int, user string) (string, string) {
	switch status {
	case http.StatusNotFound:
		return "Request_ResourceNotFound", "Resource '" + user + "' does not exist or one of its queried reference-property objects are not present."
	case http.StatusForbidden:
		return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests."
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable", "Service is temporarily unavailable. Please try again later."
	case http.StatusGatewayTimeout:
		return "GatewayTimeout", "The gateway did not receive a timely response."
	case http.StatusBadRequest:
		return "BadRequest", "Bad request."
	}
	return "UnknownError", ""
}

// errorBody is Graph's error envelope.
func errorBody(code, msg, reqID, clientReqID string) []byte {
	b, _ := json.Marshal(map[string]any{
		"error": map[string]any{
			"code":    code,
			"message": msg,
			"innerError": map[string]string{
				"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
				"request-id":        reqID,
				"client-request-id": clientReqID,
			},
		},
	})
	return b
}

// userProperties are the properties the fake knows, in Graph's casing.
var userProperties = []string{"id", "userPrincipalName", "userType", "signInSessionsValidFromDateTime", "displayName", "mail", "accountEnabled"}

// userBody renders u with the $select'ed properties (Graph's default set when none), or names
// the first unknown property.
func userBody(u User, sel string) ([]byte, string) {
	props := []string{"id", "userPrincipalName", "displayName", "mail"}
	if sel != "" {
		props = props[:0]
		for _, p := range strings.Split(sel, ",") {
			p = strings.TrimSpace(p)
			known := ""
			for _, k := range userProperties {
				if strings.EqualFold(k, p) {
					known = k
				}
			}
			if known == "" {
				return nil, p
			}
			props = append(props, known)
		}
	}
	userType := u.UserType
	if userType == "" {
		userType = "Member"
	}
	var validFrom any
	if !u.SessionsValidFrom.IsZero() {
		validFrom = u.SessionsValidFrom.UTC().Format(time.RFC3339)
	}
	values := map[string]any{
		"id":                              u.ID,
		"userPrincipalName":               u.UPN,
		"userType":                        userType,
		"signInSessionsValidFromDateTime": validFrom,
		"displayName":                     nil,
		"mail":                            nil,
		"accountEnabled":                  true,
	}
	ctx := "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
	if sel != "" {
		ctx = "https://graph.microsoft.com/v1.0/$metadata#users(" + strings.Join(props, ",") + ")/$entity"
	}
	// Keep Graph's order: @odata.context first, then the properties as selected.
	var b strings.Builder
	b.WriteString(`{"@odata.context":`)
	writeJSON(&b, ctx)
	for _, p := range props {
		b.WriteString(",")
		writeJSON(&b, p)
		b.WriteString(":")
		writeJSON(&b, values[p])
	}
	b.WriteString("}")
	return []byte(b.String()), ""
}

func writeJSON(b *strings.Builder, v any) {
	j, _ := json.Marshal(v)
	b.Write(j)
}

// wait sleeps d unless the client goes away first; it reports whether to answer.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func lastSegment(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
