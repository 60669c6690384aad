package graphtest

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TenantOptions shape a Tenant.
type TenantOptions struct {
	// WriteLimit revocations are admitted per WriteWindow, sliding, as Graph's identity write
	// limit does ("3,000 requests per 150 seconds per app and tenant"); beyond it Graph answers
	// 429 TooManyRequests with Retry-After. 0 means no limit.
	WriteLimit  int
	WriteWindow time.Duration
	// TokenLifetime is how long the identity endpoint's tokens live; 0 means 24 hours, as
	// managed identity tokens do, so that the handler's token cache works as in production.
	TokenLifetime time.Duration
	// KeepRequests keeps a Request record of every Graph request (Graph.Requests). Load tests
	// leave it off: they send hundreds of thousands.
	KeepRequests bool
}

// Tenant is a directory as a load test meets it: the managed identity endpoint, the Graph fake,
// and in front of Graph what a real tenant adds under load — the identity write limit and outages
// of chosen users. It runs outside tests too (the load tool), so StartTenant takes no
// *testing.T; tests use NewTenant. Throttled and failed requests never reach the Graph fake, so
// they revoke nothing.
type Tenant struct {
	Identity *Identity
	Graph    *Graph

	limit *slidingWindow // nil: no limit

	mu      sync.Mutex
	outages map[string]outage // by lower-case user reference (UPN or object ID)

	requests  atomic.Int64
	throttled atomic.Int64
	failed    atomic.Int64
}

// outage is a user's revocations failing with status until a time.
type outage struct {
	status int
	until  time.Time
}

// StartTenant starts a tenant; Close stops it. The Graph fake only accepts the token the
// identity endpoint issues at start (after Identity.SetRoles, call Graph.RequireToken with the
// new Identity.Token()).
func StartTenant(o TenantOptions) *Tenant {
	lifetime := o.TokenLifetime
	if lifetime == 0 {
		lifetime = 24 * time.Hour
	}
	id := &Identity{
		secret:   "identity-header-" + randomHex(8),
		token:    "graphtest-token-" + randomHex(16),
		lifetime: lifetime,
	}
	id.srv = httptest.NewServer(http.HandlerFunc(id.serve))
	tn := &Tenant{
		Identity: id,
		Graph:    &Graph{scripts: map[string][]Response{}, revocations: map[*User]int{}, token: id.token, forgetsReqs: !o.KeepRequests},
		outages:  map[string]outage{},
	}
	if o.WriteLimit > 0 {
		tn.limit = newSlidingWindow(o.WriteLimit, o.WriteWindow)
	}
	tn.Graph.srv = httptest.NewServer(tn)
	return tn
}

// NewTenant starts a tenant that stops when t ends.
func NewTenant(t testing.TB, o TenantOptions) *Tenant {
	t.Helper()
	tn := StartTenant(o)
	t.Cleanup(tn.Close)
	return tn
}

// Close stops the identity endpoint and Graph.
func (tn *Tenant) Close() {
	tn.Graph.srv.Close()
	tn.Identity.srv.Close()
}

// Fail makes revocations of these users (UPNs or object IDs) answer status, with Graph's error
// body, until the given time; the zero time ends an outage.
func (tn *Tenant) Fail(status int, until time.Time, users ...string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, u := range users {
		tn.outages[strings.ToLower(u)] = outage{status: status, until: until}
	}
}

// TenantStats counts what reached the tenant.
type TenantStats struct {
	Requests    int64 // every Graph request, answered or not
	Throttled   int64 // answered 429 at the write limit
	Failed      int64 // answered an outage's status
	Revocations int   // successful revocations, summed over the directory
}

// Stats counts what reached the tenant so far.
func (tn *Tenant) Stats() TenantStats {
	s := TenantStats{Requests: tn.requests.Load(), Throttled: tn.throttled.Load(), Failed: tn.failed.Load()}
	for _, n := range tn.RevocationsByUser() {
		s.Revocations += n
	}
	return s
}

// RevocationsByUser counts the successful revocations of every directory user, by lower-case UPN.
func (tn *Tenant) RevocationsByUser() map[string]int {
	g := tn.Graph
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.users))
	for _, u := range g.users {
		out[strings.ToLower(u.UPN)] = g.revocations[u]
	}
	return out
}

func (tn *Tenant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tn.requests.Add(1)
	user, action, ok := route(r.URL.EscapedPath())
	if !ok || action != "revokeSignInSessions" || r.Method != http.MethodPost {
		tn.Graph.serve(w, r)
		return
	}
	reqID := "graphtest-" + randomHex(8)
	if tn.limit != nil {
		if wait, ok := tn.limit.admit(time.Now()); !ok {
			tn.throttled.Add(1)
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
			tn.reply(w, reqID, r.Header.Get("client-request-id"), http.StatusTooManyRequests, user)
			return
		}
	}
	if status := tn.outage(user); status != 0 {
		tn.failed.Add(1)
		tn.reply(w, reqID, r.Header.Get("client-request-id"), status, user)
		return
	}
	tn.Graph.serve(w, r)
}

// outage is the status a revocation of user fails with now, or 0.
func (tn *Tenant) outage(user string) int {
	keys := []string{strings.ToLower(user)}
	if u, ok := tn.Graph.User(user); ok {
		keys = append(keys, strings.ToLower(u.UPN), strings.ToLower(u.ID))
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, k := range keys {
		if o, ok := tn.outages[k]; ok && time.Now().Before(o.until) {
			return o.status
		}
	}
	return 0
}

// reply answers with Graph's headers and error body for status.
func (tn *Tenant) reply(w http.ResponseWriter, reqID, clientReqID string, status int, user string) {
	if clientReqID == "" {
		clientReqID = reqID
	}
	code, msg := defaultError(status, user)
	w.Header().Set("request-id", reqID)
	w.Header().Set("client-request-id", clientReqID)
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(code, msg, reqID, clientReqID))
}

// slidingWindow admits at most limit requests in any window; only admitted requests count.
type slidingWindow struct {
	limit  int
	window time.Duration

	mu    sync.Mutex
	times []time.Time // ring of the last limit admissions
	next  int
	n     int
}

func newSlidingWindow(limit int, window time.Duration) *slidingWindow {
	return &slidingWindow{limit: limit, window: window, times: make([]time.Time, limit)}
}

// admit records a request at now, or says how long until a slot frees.
func (s *slidingWindow) admit(now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == s.limit {
		oldest := s.times[s.next] // the ring is full: next is the oldest admission
		if free := oldest.Add(s.window); now.Before(free) {
			return free.Sub(now), false
		}
	} else {
		s.n++
	}
	s.times[s.next] = now
	s.next = (s.next + 1) % s.limit
	return 0, true
}

// indexUser makes u found by find without a scan; g.mu must be held. The first user added keeps
// a key, as find's scan would find it first.
func (g *Graph) indexUser(u *User) {
	if g.index == nil {
		g.index = map[string]*User{}
	}
	for _, k := range []string{strings.ToLower(u.ID), strings.ToLower(u.UPN)} {
		if _, taken := g.index[k]; !taken && k != "" {
			g.index[k] = u
		}
	}
}
