package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The fakes below speak the real services' wire formats, so that the handler's real SDKs
// (azidentity, msgraph-sdk-go, azqueue) and its Application Insights exporter run unchanged. They
// are plain net/http: this program must not import testing.

// server is a fake listening on 127.0.0.1.
type server struct {
	srv *http.Server
	ln  net.Listener
}

func startServer(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) URL() string { return "http://" + s.ln.Addr().String() }

func (s *server) Close() { _ = s.srv.Close() }

// identityFake is the App Service managed identity endpoint (IDENTITY_ENDPOINT, API 2019-08-01).
// Its tokens live 24 hours, as real managed identity tokens do, so the handler's token cache works
// as in production.
type identityFake struct {
	secret   string
	token    string
	requests atomic.Int64
}

func (f *identityFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	q := r.URL.Query()
	if r.Header.Get("X-IDENTITY-HEADER") != f.secret || q.Get("api-version") != "2019-08-01" || q.Get("resource") == "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"statusCode":400,"message":"bad identity request"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": f.token,
		"expires_on":   strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10),
		"resource":     q.Get("resource"),
		"token_type":   "Bearer",
		"client_id":    "00000000-0000-0000-0000-0000000000a1",
	})
}

// graphFake is Microsoft Graph v1.0 for /users/{id|upn}/revokeSignInSessions (POST) and
// /users/{id|upn} (GET), answering at once. With a limiter it enforces a request quota as Graph's
// identity write limit does: beyond it, 429 TooManyRequests with Retry-After.
type graphFake struct {
	token   string
	limiter *slidingWindow // nil: no limit

	requests    atomic.Int64
	revocations atomic.Int64
	throttled   atomic.Int64

	mu      sync.Mutex
	perUser map[string]int // successful revocations by user, when trackUsers
	track   bool
}

const graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func newGraphFake(token string, limiter *slidingWindow, trackUsers bool) *graphFake {
	return &graphFake{token: token, limiter: limiter, perUser: map[string]int{}, track: trackUsers}
}

func (g *graphFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.requests.Add(1)
	reqID := uuid.NewString()
	w.Header().Set("request-id", reqID)
	if c := r.Header.Get("client-request-id"); c != "" {
		w.Header().Set("client-request-id", c)
	}
	if r.Header.Get("Authorization") != "Bearer "+g.token {
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.", reqID)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1.0/users/")
	if !ok {
		graphError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment.", reqID)
		return
	}
	seg, action, _ := strings.Cut(rest, "/")
	user, err := url.PathUnescape(seg)
	if err != nil || user == "" {
		graphError(w, http.StatusBadRequest, "BadRequest", "Invalid user segment.", reqID)
		return
	}
	switch {
	case r.Method == http.MethodPost && action == "revokeSignInSessions":
		if g.limiter != nil {
			if wait, ok := g.limiter.admit(time.Now()); !ok {
				g.throttled.Add(1)
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				graphError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.", reqID)
				return
			}
		}
		g.revocations.Add(1)
		if g.track {
			g.mu.Lock()
			g.perUser[strings.ToLower(user)]++
			g.mu.Unlock()
		}
		w.Header().Set("Content-Type", graphContentType)
		_, _ = io.WriteString(w, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean","value":true}`)
	case r.Method == http.MethodGet && action == "":
		w.Header().Set("Content-Type", graphContentType)
		b, _ := json.Marshal(map[string]any{
			"@odata.context":    "https://graph.microsoft.com/v1.0/$metadata#users(id,userPrincipalName,userType)/$entity",
			"id":                uuid.NewSHA1(uuid.NameSpaceOID, []byte(strings.ToLower(user))).String(),
			"userPrincipalName": user,
			"userType":          "Member",
		})
		_, _ = w.Write(b)
	default:
		graphError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.", reqID)
	}
}

// revokedUsers returns the successful revocations by user.
func (g *graphFake) revokedUsers() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.perUser))
	for k, v := range g.perUser {
		out[k] = v
	}
	return out
}

func graphError(w http.ResponseWriter, status int, code, msg, reqID string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": reqID},
	}})
	w.Header().Set("Content-Type", graphContentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// slidingWindow admits at most limit requests in any window: Graph's identity write limit is
// "3,000 requests per 150 seconds per app and tenant". Only admitted requests count.
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

// ingestionFake is the Application Insights ingestion endpoint: NDJSON envelopes in, the
// track response out. It counts items by type.
type ingestionFake struct {
	batches  atomic.Int64
	items    atomic.Int64
	outcomes atomic.Int64 // SessionRevocation events
	deps     atomic.Int64 // RemoteDependencyData items
}

func (f *ingestionFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" { // the API accepts both
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, `{"itemsReceived":0,"itemsAccepted":0,"errors":[]}`, http.StatusBadRequest)
			return
		}
		body = zr
	}
	// Sized from Content-Length, so that the fake's own cost stays small next to the handler's.
	buf := bytes.NewBuffer(make([]byte, 0, max(r.ContentLength, 0)+bytes.MinRead))
	_, err := buf.ReadFrom(body)
	if err != nil || r.URL.Path != "/v2.1/track" {
		http.Error(w, `{"itemsReceived":0,"itemsAccepted":0,"errors":[]}`, http.StatusBadRequest)
		return
	}
	n := 0
	for raw := buf.Bytes(); len(raw) > 0; {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		switch {
		case bytes.Contains(line, []byte(`"name":"SessionRevocation"`)):
			f.outcomes.Add(1)
		case bytes.Contains(line, []byte(`"baseType":"RemoteDependencyData"`)):
			f.deps.Add(1)
		}
	}
	f.batches.Add(1)
	f.items.Add(int64(n))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprintf(w, `{"itemsReceived":%d,"itemsAccepted":%d,"errors":[]}`, n, n)
}

// storageFake is just enough of Azure Queue Storage for the handler's start-up (create queue) and
// deferrals and poison copies (put message). It counts messages: the load test expects no
// deferral, the bulk drain no poison copy.
type storageFake struct {
	enqueued atomic.Int64 // to the request queue
	poisoned atomic.Int64 // to <queue>-poison
}

func (f *storageFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-request-id", uuid.NewString())
	w.Header().Set("x-ms-version", "2018-03-28")
	switch {
	case r.Method == http.MethodPut:
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "-poison/messages") {
			f.poisoned.Add(1)
		} else {
			f.enqueued.Add(1)
		}
		now := time.Now().UTC()
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage><MessageId>%s</MessageId><InsertionTime>%s</InsertionTime><ExpirationTime>%s</ExpirationTime><PopReceipt>AgAAAAMAAAAAAAAA</PopReceipt><TimeNextVisible>%s</TimeNextVisible></QueueMessage></QueueMessagesList>`,
			uuid.NewString(), now.Format(http.TimeFormat), now.Add(7*24*time.Hour).Format(http.TimeFormat), now.Format(http.TimeFormat))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}
