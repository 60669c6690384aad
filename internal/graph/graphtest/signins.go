package graphtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SignIn is one entry of the fake's sign-in log (GET /auditLogs/signIns).
type SignIn struct {
	UserID      string
	Created     time.Time // createdDateTime
	App         string    // appDisplayName
	IP          string
	City        string
	State       string
	Country     string // countryOrRegion
	ErrorCode   int    // status.errorCode; 0 is a success
	Interactive bool
}

// NoPremiumLicense is Graph's 403 for sign-in logs in a tenant without Entra ID P1/P2.
func NoPremiumLicense() Response {
	return Response{
		Status:  http.StatusForbidden,
		Code:    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
		Message: "Neither tenant is B2C or tenant doesn't have premium license",
	}
}

// AddSignIns adds entries to the sign-in log.
func (g *Graph) AddSignIns(s ...SignIn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.signIns = append(g.signIns, s...)
}

// ScriptSignIns queues answers for the next sign-in log requests, whoever they are about; each
// request consumes one, then the fake answers from the log again.
func (g *Graph) ScriptSignIns(rs ...Response) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.signInScripts = append(g.signInScripts, rs...)
}

// SignInRequests returns the sign-in log requests received so far, in order.
func (g *Graph) SignInRequests() []Request {
	var out []Request
	for _, r := range g.Requests() {
		if isSignIns(r.RawPath) {
			out = append(out, r)
		}
	}
	return out
}

// SignInTimes returns when each sign-in log request arrived, also when Requests keeps none.
func (g *Graph) SignInTimes() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.signInTimes)
}

const signInsPath = BasePath + "/auditLogs/signIns"

func isSignIns(rawPath string) bool { return rawPath == signInsPath }

// signInFilter is the only filter the fake understands, in Graph's syntax: a quoted GUID and an
// unquoted ISO 8601 UTC time. Anything else is Graph's 400 for a filter it cannot parse.
var signInFilter = regexp.MustCompile(`^userId eq '([0-9a-fA-F-]{36})' and createdDateTime ge (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)$`)

// serveSignIns answers GET /auditLogs/signIns as Graph does: newest first, $top per page (at
// most 1000), @odata.nextLink with a $skiptoken while more remain.
func (g *Graph) serveSignIns(w http.ResponseWriter, r *http.Request) (int, []byte) {
	reqID := w.Header().Get("request-id")
	clientReqID := w.Header().Get("client-request-id")
	g.mu.Lock()
	g.signInTimes = append(g.signInTimes, time.Now())
	var scripted *Response
	if len(g.signInScripts) > 0 {
		s := g.signInScripts[0]
		g.signInScripts = g.signInScripts[1:]
		scripted = &s
	}
	log := slices.Clone(g.signIns)
	g.mu.Unlock()

	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, errorBody("Request_BadRequest", "Specified HTTP method is not allowed for the request target.", reqID, clientReqID)
	}
	if scripted != nil && scripted.Status != 0 {
		if scripted.RetryAfter != "" {
			w.Header().Set("Retry-After", scripted.RetryAfter)
		}
		code, msg := defaultError(scripted.Status, "")
		if scripted.Code != "" {
			code = scripted.Code
		}
		if scripted.Message != "" {
			msg = scripted.Message
		}
		return scripted.Status, errorBody(code, msg, reqID, clientReqID)
	}

	q := r.URL.Query()
	m := signInFilter.FindStringSubmatch(q.Get("$filter"))
	if m == nil {
		return http.StatusBadRequest, errorBody("BadRequest", "Invalid filter clause", reqID, clientReqID)
	}
	since, err := time.Parse(time.RFC3339Nano, m[2])
	if err != nil {
		return http.StatusBadRequest, errorBody("BadRequest", "Invalid filter clause", reqID, clientReqID)
	}
	top := 1000
	if v := q.Get("$top"); v != "" {
		if top, err = strconv.Atoi(v); err != nil || top < 1 || top > 1000 {
			return http.StatusBadRequest, errorBody("BadRequest", "Invalid $top value", reqID, clientReqID)
		}
	}
	skip := 0
	if v := q.Get("$skiptoken"); v != "" {
		if skip, err = strconv.Atoi(v); err != nil || skip < 0 {
			return http.StatusBadRequest, errorBody("BadRequest", "Invalid $skiptoken", reqID, clientReqID)
		}
	}
	var match []SignIn
	for _, s := range log {
		if strings.EqualFold(s.UserID, m[1]) && !s.Created.Before(since) {
			match = append(match, s)
		}
	}
	slices.SortStableFunc(match, func(a, b SignIn) int { return b.Created.Compare(a.Created) })
	page := match[min(skip, len(match)):min(skip+top, len(match))]
	body := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns"}
	values := make([]any, 0, len(page))
	for _, s := range page {
		values = append(values, signInJSON(s))
	}
	body["value"] = values
	if skip+top < len(match) {
		next := q
		next.Set("$skiptoken", strconv.Itoa(skip+top))
		body["@odata.nextLink"] = "http://" + r.Host + signInsPath + "?" + next.Encode()
	}
	b, _ := json.Marshal(body)
	return http.StatusOK, b
}

// signInJSON is a sign-in as Graph v1.0 renders it, with the device and correlation details the
// handler must never pass on.
func signInJSON(s SignIn) map[string]any {
	reason := "Other."
	if s.ErrorCode != 0 {
		reason = fmt.Sprintf("Error %d", s.ErrorCode)
	}
	return map[string]any{
		"id":                      uuid.NewString(),
		"createdDateTime":         s.Created.UTC().Format(time.RFC3339),
		"userDisplayName":         "Test User",
		"userPrincipalName":       "user@contoso.com",
		"userId":                  s.UserID,
		"appId":                   "00000002-0000-0ff1-ce00-000000000000",
		"appDisplayName":          s.App,
		"ipAddress":               s.IP,
		"clientAppUsed":           "Browser",
		"correlationId":           "corr-" + uuid.NewString(),
		"conditionalAccessStatus": "notApplied",
		"isInteractive":           s.Interactive,
		"riskDetail":              "none",
		"riskLevelAggregated":     "none",
		"riskLevelDuringSignIn":   "none",
		"riskState":               "none",
		"riskEventTypes":          []string{},
		"riskEventTypes_v2":       []string{},
		"resourceDisplayName":     "Office 365 Exchange Online",
		"resourceId":              "00000002-0000-0ff1-ce00-000000000000",
		"status":                  map[string]any{"errorCode": s.ErrorCode, "failureReason": reason, "additionalDetails": nil},
		"deviceDetail": map[string]any{
			"deviceId": "device-" + uuid.NewString(), "displayName": "LAPTOP-1", "operatingSystem": "Windows 10",
			"browser": "Edge 120.0.0", "isCompliant": false, "isManaged": false, "trustType": "",
		},
		"location": map[string]any{
			"city": s.City, "state": s.State, "countryOrRegion": s.Country,
			"geoCoordinates": map[string]any{"altitude": nil, "latitude": 47.6, "longitude": -122.3},
		},
		"appliedConditionalAccessPolicies": []any{},
	}
}
