package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Fault injection (issue 9): the built handler against Graph that is slow, throttles, fails or
// resets connections, an identity endpoint that fails and recovers, failing Application Insights
// ingestion, failing or hung storage, and SIGTERM with work in flight. Every test ends by
// accounting for every request — revoked, queued, or a clear error to the caller — and by checking
// that nothing was written twice: Graph's revocation count per user and the queue's messages.
//
// These tests send many requests, so they sign them in Go; the npm implementation's agreement with
// ours is proven in e2e_test.go.

// faultUsers are extra directory users, one set per test so that counts do not mix.
func faultUsers(g *graphtest.Graph, prefix string, n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%02d@contoso.com", prefix, i)
		g.AddUser(graphtest.User{ID: fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", len(prefix), i), UPN: users[i]})
	}
	return users
}

// mustGoSigned signs body with the suite's secret, as a caller would.
func mustGoSigned(t *testing.T, msgID string, body []byte) http.Header {
	t.Helper()
	keys, err := webhook.ParseSecrets([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := keys.Headers(msgID, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Azure-Functions-InvocationId", "fault-"+msgID)
	return h
}

// answer is what a caller got: a response, or the transport error.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
	took   time.Duration
}

// send posts without failing the test, so that it can run in goroutines; within bounds it.
func send(url string, h http.Header, body []byte, within time.Duration) answer {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err, took: time.Since(start)}
}

// revokeBody is a request for users (one: "upn", several: "upns").
func revokeBody(users ...string) []byte {
	if len(users) == 1 {
		b, _ := json.Marshal(map[string]string{"upn": users[0]})
		return b
	}
	b, _ := json.Marshal(map[string][]string{"upns": users})
	return b
}

// accounted is a caller's view of one request: the HTTP status, each user's status and error code
// in input order, or the request-level error code.
type accounted struct {
	status int
	users  []string // "revoked", "queued", "failed:timeout", ...
	code   string   // request-level error code
}

func (a accounted) String() string {
	if a.code != "" {
		return fmt.Sprintf("%d %s", a.status, a.code)
	}
	return fmt.Sprintf("%d %v", a.status, a.users)
}

// mustAccount turns an answer into what the caller knows, failing the test unless it is one of
// the outcomes openapi.yaml allows: per-user results with a status each (and an error code for every
// user neither revoked nor queued), or a request-level error with a code. A transport error or an unreadable
// answer is a request not accounted for.
func mustAccount(t *testing.T, what string, a answer) accounted {
	t.Helper()
	if a.err != nil {
		t.Fatalf("%s: no answer: %v", what, a.err)
	}
	var body struct {
		Results []struct {
			Status string `json:"status"`
			Error  *struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("%s: %d with an unreadable body %q: %v", what, a.status, a.body, err)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q; want application/json", what, ct)
	}
	acc := accounted{status: a.status}
	switch {
	case body.Error != nil && body.Error.Code != "":
		acc.code = body.Error.Code
	case len(body.Results) > 0:
		for _, r := range body.Results {
			s := r.Status
			switch {
			case s == "revoked" || s == "queued" || s == "dry_run":
				// Done, or safely in the queue (which may note the Graph error that sent it there).
			case r.Error != nil && r.Error.Code != "":
				s += ":" + r.Error.Code
			default:
				t.Errorf("%s: user %s without an error code: %s", what, s, a.body)
			}
			acc.users = append(acc.users, s)
		}
	default:
		t.Fatalf("%s: %d %s is neither a result nor an error", what, a.status, a.body)
	}
	return acc
}

// mustOnce fails unless Graph revoked each user exactly want times.
func mustOnce(t *testing.T, g *graphtest.Graph, want int, users ...string) {
	t.Helper()
	for _, u := range users {
		if n := g.Revocations(u); n != want {
			t.Errorf("Graph revoked %s %d times; want %d", u, n, want)
		}
	}
}

// drainQueue dequeues every message of queue (base64-decoded, as the trigger would see them).
func drainQueue(t *testing.T, conn, queue string) [][]byte {
	t.Helper()
	svc, err := azqueue.NewServiceClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q := svc.NewQueueClient(queue)
	batch := int32(32)
	var out [][]byte
	for {
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &batch})
		if queueerror.HasCode(err, queueerror.QueueNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("dequeue %s: %v", queue, err)
		}
		if len(resp.Messages) == 0 {
			return out
		}
		for _, m := range resp.Messages {
			raw, err := base64.StdEncoding.DecodeString(*m.MessageText)
			if err != nil {
				t.Fatalf("message in %s is not base64: %v", queue, err)
			}
			out = append(out, raw)
		}
	}
}

// storageEnv points a handler at Azurite with its own queue.
func storageEnv(t *testing.T, env map[string]string, az testenv.Azurite, queue string) {
	t.Helper()
	env["AzureWebJobsStorage"] = az.ConnectionString
	env["REVOKE_QUEUE"] = queue
}

// mustDeliver hands a queued message to the queue trigger, as the host does, and wants it finished.
func mustDeliver(t *testing.T, p *proc, text []byte, n int) {
	t.Helper()
	a := send(p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", text, fmt.Sprintf("fault-queued-%d", n), 1), time.Minute)
	if a.err != nil || a.status != http.StatusOK || !bytes.Contains(a.body, []byte(`"Outputs":{}`)) {
		t.Fatalf("queue delivery = %d %s %v; want 200 with the host reply", a.status, a.body, a.err)
	}
}

// TestFaults covers the faults that need no storage.
func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("graph slower than the 25s budget", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		g.SetLatency(45 * time.Second)
		p := startHandler(t, handlerEnv(t, id, g))
		body := revokeBody("alice@contoso.com")
		a := send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_slow", body), body, time.Minute)
		// The bound is the fake's latency: a handler that waited for Graph would answer after it.
		if a.took >= 40*time.Second {
			t.Errorf("answered after %s; want the 25 s budget to end the wait", a.took)
		}
		if got := mustAccount(t, "slow Graph", a); got.String() != "503 [failed:timeout]" {
			t.Errorf("slow Graph = %s; want 503 [failed:timeout]", got)
		}
		mustOnce(t, g, 0, "alice@contoso.com")

		g.SetLatency(0)
		if got := mustAccount(t, "retry", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_slow", body), body, time.Minute)); got.String() != "200 [revoked]" {
			t.Errorf("the caller's retry once Graph is fast = %s; want 200 [revoked]", got)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("429 storm", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		users := faultUsers(g, "storm", 10)
		for _, u := range users {
			// Five 429s: every attempt the client makes (its limit is 5) is throttled.
			g.Script(u, graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"),
				graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"))
		}
		g.Script("alice@contoso.com", graphtest.TooManyRequests("120"))
		p := startHandler(t, handlerEnv(t, id, g))

		body := revokeBody(users...)
		got := mustAccount(t, "storm", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_storm", body), body, time.Minute))
		if got.status != http.StatusMultiStatus || strings.Count(got.String(), "throttled:TooManyRequests") != len(users) {
			t.Errorf("10 users under a 429 storm = %s; want 207 with each throttled:TooManyRequests", got)
		}
		mustOnce(t, g, 0, users...)

		// A Retry-After beyond the budget is passed on to the caller at once, without waiting.
		one := revokeBody("alice@contoso.com")
		a := send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_storm_long", one), one, time.Minute)
		if got := mustAccount(t, "long Retry-After", a); got.String() != "429 [throttled:TooManyRequests]" || a.header.Get("Retry-After") != "120" {
			t.Errorf("Retry-After 120 = %s with Retry-After %q; want 429 throttled with Retry-After 120", got, a.header.Get("Retry-After"))
		}

		// The storm is over: the caller's retry of the same request revokes everyone, once.
		if got := mustAccount(t, "retry", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_storm", body), body, time.Minute)); got.status != http.StatusOK {
			t.Errorf("retry after the storm = %s; want 200", got)
		}
		mustOnce(t, g, 1, users...)
		mustOnce(t, g, 0, "alice@contoso.com")
	})

	t.Run("5xx burst", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		users := faultUsers(g, "burst", 4)
		g.Script(users[0], graphtest.ServiceUnavailable(), graphtest.ServiceUnavailable(), graphtest.OK()) // retried
		g.Script(users[1], graphtest.Response{Status: http.StatusGatewayTimeout}, graphtest.OK())          // retried
		g.Script(users[2], graphtest.Response{Status: http.StatusInternalServerError})                     // not retried
		g.Script(users[3], graphtest.Response{Status: http.StatusBadGateway})                              // not retried
		p := startHandler(t, handlerEnv(t, id, g))

		want := []string{"200 [revoked]", "200 [revoked]", "503 [failed:UnknownError]", "503 [failed:UnknownError]"}
		answers := make([]answer, len(users))
		var wg sync.WaitGroup
		for i, u := range users {
			wg.Go(func() {
				body := revokeBody(u)
				answers[i] = send(p.URL+"/api/revoke", mustGoSigned(t, fmt.Sprintf("msg_fault_burst_%d", i), body), body, time.Minute)
			})
		}
		wg.Wait()
		for i, a := range answers {
			if got := mustAccount(t, users[i], a); got.String() != want[i] {
				t.Errorf("%s = %s; want %s", users[i], got, want[i])
			}
		}
		mustOnce(t, g, 1, users[0], users[1])
		mustOnce(t, g, 0, users[2], users[3])

		// The failed callers retry; the revoked ones' retries are replays.
		for i, u := range users {
			body := revokeBody(u)
			a := send(p.URL+"/api/revoke", mustGoSigned(t, fmt.Sprintf("msg_fault_burst_%d", i), body), body, time.Minute)
			if got := mustAccount(t, "retry "+u, a); got.String() != "200 [revoked]" {
				t.Errorf("retry of %s = %s; want 200 [revoked]", u, got)
			}
		}
		mustOnce(t, g, 1, users...)
	})

	t.Run("5xx in a bulk request without storage: the retry redoes only the failed user", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		users := faultUsers(g, "part", 3)
		g.Script(users[1], graphtest.Response{Status: http.StatusInternalServerError})
		p := startHandler(t, handlerEnv(t, id, g))
		body := revokeBody(users...)
		if got := mustAccount(t, "bulk", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_part", body), body, time.Minute)); got.String() != "207 [revoked failed:UnknownError revoked]" {
			t.Errorf("bulk with one Graph 500 = %s; want 207 [revoked failed:UnknownError revoked]", got)
		}
		if got := mustAccount(t, "retry", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_part", body), body, time.Minute)); got.String() != "200 [revoked revoked revoked]" {
			t.Errorf("the caller's retry = %s; want 200 with all three revoked", got)
		}
		mustOnce(t, g, 1, users...)
	})

	t.Run("connection resets", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		px := startResetProxy(t, g.Host())
		env := handlerEnv(t, id, g)
		env["GRAPH_BASE_URL"] = px.url()
		p := startHandler(t, env)

		px.reset.Store(true)
		body := revokeBody("alice@contoso.com")
		got := mustAccount(t, "reset", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_reset", body), body, time.Minute))
		if got.String() != "503 [failed:graph_unavailable]" {
			t.Errorf("connections reset = %s; want 503 [failed:graph_unavailable]", got)
		}
		if px.resets.Load() == 0 || len(g.Requests()) != 0 {
			t.Errorf("proxy reset %d connections, Graph saw %d requests; want resets and no request through", px.resets.Load(), len(g.Requests()))
		}

		px.reset.Store(false)
		if got := mustAccount(t, "retry", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_reset", body), body, time.Minute)); got.String() != "200 [revoked]" {
			t.Errorf("retry once connections work = %s; want 200 [revoked]", got)
		}
		// Pooled connections die too: the next call must not fail on a dead one.
		px.killOpen()
		two := revokeBody("o'brien@contoso.com")
		if got := mustAccount(t, "after pooled connections died", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_reset_2", two), two, time.Minute)); got.status != http.StatusOK && got.String() != "503 [failed:graph_unavailable]" {
			t.Errorf("request after the pool's connections were reset = %s; want 200 or a clear 503", got)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
		if n := g.Revocations("o'brien@contoso.com"); n > 1 {
			t.Errorf("o'brien revoked %d times; want at most 1", n)
		}
	})

	t.Run("identity endpoint failing then recovering", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		id.Fail(http.StatusInternalServerError, `{"statusCode":500,"message":"An unexpected error occured while fetching the AAD Token."}`)
		p := startHandler(t, handlerEnv(t, id, g))
		body := revokeBody("alice@contoso.com")
		got := mustAccount(t, "identity down", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_identity", body), body, time.Minute))
		if got.String() != "503 [failed:graph_unavailable]" {
			t.Errorf("no token = %s; want 503 [failed:graph_unavailable]", got)
		}
		if n := len(g.Requests()); n != 0 {
			t.Errorf("Graph saw %d requests without a token; want 0", n)
		}
		if len(id.Requests()) == 0 {
			t.Error("the identity endpoint was never asked")
		}

		id.Fail(0, "")
		if got := mustAccount(t, "retry", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_identity", body), body, time.Minute)); got.String() != "200 [revoked]" {
			t.Errorf("retry once the identity endpoint recovered = %s; want 200 [revoked]", got)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("ingestion failing then recovering", func(t *testing.T) {
		t.Parallel()
		// The first two batches fail with 503 and Retry-After, the next batch of more than one
		// item is a 206 refusing every other item with a retryable 500, then all is accepted.
		in := testenv.NewIngestion(t)
		partials := 0
		in.Respond(func(call int, r testenv.IngestionRequest) testenv.IngestionReply {
			if call < 2 {
				return testenv.IngestionReply{Status: http.StatusServiceUnavailable, RetryAfter: "1"}
			}
			if partials < 1 && len(r.Envelopes) > 1 {
				partials++
				var errs []testenv.ItemError
				for i := 1; i < len(r.Envelopes); i += 2 {
					errs = append(errs, testenv.ItemError{Index: i, StatusCode: http.StatusInternalServerError, Message: "Internal server error"})
				}
				return testenv.IngestionReply{Status: http.StatusPartialContent, Errors: errs}
			}
			return testenv.IngestionReply{}
		})
		id, g := tenant(t)
		users := faultUsers(g, "ingest", 6)
		env := handlerEnv(t, id, g)
		env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
		p := startHandler(t, env)

		for i, u := range users {
			body := revokeBody(u)
			if got := mustAccount(t, u, send(p.URL+"/api/revoke", mustGoSigned(t, fmt.Sprintf("msg_fault_ingest_%d", i), body), body, time.Minute)); got.String() != "200 [revoked]" {
				t.Errorf("%s while ingestion fails = %s; want 200 [revoked]: telemetry is off the request path", u, got)
			}
		}
		mustOnce(t, g, 1, users...)
		p.terminate(t)
		if code := p.exitCode(t, 15*time.Second); code != 0 {
			t.Errorf("exit code = %d; want 0", code)
		}
		// Accepted SessionRevocation events by request id: a lost or duplicated event shows.
		events := map[string]int{}
		for _, e := range in.Events("SessionRevocation") {
			events[e.Properties["requestId"]]++
		}
		for i := range users {
			if n := events[fmt.Sprintf("msg_fault_ingest_%d", i)]; n != 1 {
				t.Errorf("SessionRevocation events for msg_fault_ingest_%d = %d; want exactly 1 after retries", i, n)
			}
		}
		f, pt := 0, 0
		for _, r := range in.Requests() {
			switch r.Reply.Status {
			case http.StatusServiceUnavailable:
				f++
			case http.StatusPartialContent:
				pt++
			}
		}
		if f < 2 || pt < 1 {
			t.Errorf("ingestion failed %d batches and partially accepted %d; want the faults to have happened", f, pt)
		}
	})

	t.Run("SIGTERM with requests in flight", func(t *testing.T) {
		t.Parallel()
		in := testenv.NewIngestion(t)
		id, g := tenant(t)
		users := faultUsers(g, "term", 12)
		g.SetLatency(time.Second)
		env := handlerEnv(t, id, g)
		env["GRAPH_CONCURRENCY"] = "16"
		env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
		env["QUEUE_ALLOW_UNSIGNED"] = "true"
		p := startHandler(t, env)

		// Eight HTTP requests and four queue deliveries, all waiting on Graph when SIGTERM comes.
		answers := make([]answer, len(users))
		var wg sync.WaitGroup
		for i, u := range users {
			wg.Go(func() {
				body := revokeBody(u)
				if i < 8 {
					answers[i] = send(p.URL+"/api/revoke", mustGoSigned(t, fmt.Sprintf("msg_fault_term_%d", i), body), body, time.Minute)
					return
				}
				inv := testenv.QueueInvocation("revoke-queue", body, fmt.Sprintf("fault-term-%d", i), 1)
				answers[i] = send(p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, inv, time.Minute)
			})
		}
		waitUntil(t, "every request to reach Graph", func() bool { return len(g.Requests()) >= len(users) })
		p.terminate(t)
		wg.Wait()
		if code := p.exitCode(t, 15*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d; want 0", code)
		}
		for i, a := range answers {
			if i < 8 {
				if got := mustAccount(t, users[i], a); got.String() != "200 [revoked]" {
					t.Errorf("in-flight request for %s = %s; want it finished: 200 [revoked]", users[i], got)
				}
				continue
			}
			if a.err != nil || a.status != http.StatusOK {
				t.Errorf("in-flight queue delivery for %s = %d %s %v; want 200", users[i], a.status, a.body, a.err)
			}
		}
		mustOnce(t, g, 1, users...)
		// A request after shutdown is refused at once: the caller knows it was not taken.
		late := revokeBody("alice@contoso.com")
		if a := send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_term_late", late), late, 10*time.Second); a.err == nil {
			t.Errorf("request after exit = %d; want the connection refused", a.status)
		}
		if n := countPrefix(in.Names(), "EventData:SessionRevocation"); n != len(users) {
			t.Errorf("ingestion received %d SessionRevocation events; want %d, flushed at shutdown", n, len(users))
		}
	})
}

// TestFaultsWithStorage covers the faults where deferral to the queue is what saves the request.
func TestFaultsWithStorage(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)

	t.Run("graph slower than the 25s budget is queued", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		g.SetLatency(45 * time.Second)
		env := handlerEnv(t, id, g)
		storageEnv(t, env, az, "fault-slow")
		p := startHandler(t, env)
		body := revokeBody("alice@contoso.com")
		a := send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_slow_q", body), body, time.Minute)
		if a.took >= 40*time.Second {
			t.Errorf("answered after %s; want the 25 s budget to end the wait", a.took)
		}
		if got := mustAccount(t, "slow Graph", a); got.String() != "202 [queued]" {
			t.Fatalf("slow Graph with storage = %s; want 202 [queued]", got)
		}
		mustOnce(t, g, 0, "alice@contoso.com")
		msgs := drainQueue(t, az.ConnectionString, "fault-slow")
		if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte(`alice@contoso.com`)) {
			t.Fatalf("queue holds %d messages %q; want exactly one for alice", len(msgs), msgs)
		}
		g.SetLatency(0)
		mustDeliver(t, p, msgs[0], 1)
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("429 storm is queued", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		users := faultUsers(g, "qstorm", 5)
		for _, u := range users {
			g.Script(u, graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"),
				graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"))
		}
		env := handlerEnv(t, id, g)
		storageEnv(t, env, az, "fault-storm")
		p := startHandler(t, env)
		body := revokeBody(users...)
		if got := mustAccount(t, "storm", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_qstorm", body), body, time.Minute)); got.status != http.StatusAccepted || strings.Count(got.String(), "queued") != len(users) {
			t.Fatalf("storm with storage = %s; want 202 with every user queued", got)
		}
		msgs := drainQueue(t, az.ConnectionString, "fault-storm")
		if len(msgs) != 1 {
			t.Fatalf("queue holds %d messages; want the 5 users in exactly one", len(msgs))
		}
		mustOnce(t, g, 0, users...)
		mustDeliver(t, p, msgs[0], 1)
		mustOnce(t, g, 1, users...)
	})

	t.Run("5xx in a bulk request: failed users queued, the rest not repeated", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		users := faultUsers(g, "qburst", 3)
		g.Script(users[1], graphtest.Response{Status: http.StatusInternalServerError})
		env := handlerEnv(t, id, g)
		storageEnv(t, env, az, "fault-burst")
		p := startHandler(t, env)
		body := revokeBody(users...)
		want := "207 [revoked queued revoked]"
		if got := mustAccount(t, "burst", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_qburst", body), body, time.Minute)); got.String() != want {
			t.Fatalf("bulk with one Graph 500 = %s; want %s", got, want)
		}
		// The caller's retry is a replay: the revoked users are not revoked again.
		a := send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_qburst", body), body, time.Minute)
		if got := mustAccount(t, "retry", a); got.String() != want || a.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry = %s replayed=%q; want the first answer replayed", got, a.header.Get("Idempotent-Replayed"))
		}
		msgs := drainQueue(t, az.ConnectionString, "fault-burst")
		if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte(users[1])) || bytes.Contains(msgs[0], []byte(users[0])) {
			t.Fatalf("queue holds %q; want one message for %s only", msgs, users[1])
		}
		mustDeliver(t, p, msgs[0], 1)
		mustOnce(t, g, 1, users...)
	})

	t.Run("connection resets are queued", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		px := startResetProxy(t, g.Host())
		px.reset.Store(true)
		env := handlerEnv(t, id, g)
		env["GRAPH_BASE_URL"] = px.url()
		storageEnv(t, env, az, "fault-reset")
		p := startHandler(t, env)
		body := revokeBody("alice@contoso.com")
		if got := mustAccount(t, "reset", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_reset_q", body), body, time.Minute)); got.String() != "202 [queued]" {
			t.Fatalf("connections reset with storage = %s; want 202 [queued]", got)
		}
		msgs := drainQueue(t, az.ConnectionString, "fault-reset")
		if len(msgs) != 1 {
			t.Fatalf("queue holds %d messages; want 1", len(msgs))
		}
		px.reset.Store(false)
		mustDeliver(t, p, msgs[0], 1)
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("storage failing during deferral", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		g.Script("alice@contoso.com", graphtest.Response{Status: http.StatusInternalServerError})
		env := handlerEnv(t, id, g)
		dead := freePort(t)
		env["AzureWebJobsStorage"] = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testenv.AzuriteKey + ";QueueEndpoint=http://127.0.0.1:" + dead + "/devstoreaccount1;"
		p := startHandler(t, env)
		body := revokeBody("alice@contoso.com")
		if got := mustAccount(t, "dead storage", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_dead", body), body, time.Minute)); got.String() != "503 [failed:queue_unavailable]" {
			t.Errorf("Graph 500 and storage down = %s; want 503 [failed:queue_unavailable], never a silent drop", got)
		}
		// A message that can never succeed is not completed while its poison copy cannot be made.
		a := send(p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", []byte("revoke alice please"), "fault-dead-poison", 1), time.Minute)
		if a.err != nil || a.status/100 == 2 {
			t.Errorf("malformed message with storage down = %d %s %v; want non-2xx so the host retries and poisons it", a.status, a.body, a.err)
		}
		if got := mustAccount(t, "retry", send(p.URL+"/api/revoke", mustGoSigned(t, "msg_fault_dead", body), body, time.Minute)); got.String() != "200 [revoked]" {
			t.Errorf("retry once Graph answers = %s; want 200 [revoked]", got)
		}
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("storage hanging during deferral", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		hole := startBlackHole(t)
		env := handlerEnv(t, id, g)
		env["AzureWebJobsStorage"] = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testenv.AzuriteKey + ";QueueEndpoint=http://" + hole + "/devstoreaccount1;"
		p := startHandler(t, env)
		body := revokeBody("alice@contoso.com")
		h := mustGoSigned(t, "msg_fault_hole", body)
		h.Set("Prefer", "respond-async")
		a := send(p.URL+"/api/revoke", h, body, 2*time.Minute)
		// Storage never answers: the caller must still get an answer, bounded by the budget (25 s)
		// plus the deferral's own allowance, not the storage SDK's retries (4 tries of 10 s).
		if a.took >= 40*time.Second {
			t.Errorf("answered after %s; want the request's budget to bound a hung storage", a.took)
		}
		if got := mustAccount(t, "hung storage", a); got.String() != "503 [failed:queue_unavailable]" {
			t.Errorf("respond-async with hung storage = %s; want 503 [failed:queue_unavailable]", got)
		}
		mustOnce(t, g, 0, "alice@contoso.com")
	})
}

// waitUntil polls cond; the bound only guards against hanging for ever.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, what, cond)
}

func countPrefix(items []string, prefix string) int {
	n := 0
	for _, i := range items {
		if strings.HasPrefix(i, prefix) {
			n++
		}
	}
	return n
}

// resetProxy forwards TCP to Graph, or, while reset is set, accepts and resets each connection
// (RST, not FIN), as a broken middlebox or a crashed front end does.
type resetProxy struct {
	ln     net.Listener
	target string
	reset  atomic.Bool
	resets atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
}

func startResetProxy(t *testing.T, target string) *resetProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &resetProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); px.killOpen() })
	go px.serve()
	return px
}

func (px *resetProxy) url() string { return "http://" + px.ln.Addr().String() + graphtest.BasePath }

func (px *resetProxy) serve() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		if px.reset.Load() {
			px.resets.Add(1)
			rst(c)
			continue
		}
		up, err := net.Dial("tcp", px.target)
		if err != nil {
			rst(c)
			continue
		}
		px.mu.Lock()
		px.conns = append(px.conns, c, up)
		px.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// killOpen resets every forwarded connection, as if the path to Graph broke.
func (px *resetProxy) killOpen() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.conns {
		rst(c)
	}
	px.conns = nil
}

func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// startBlackHole accepts connections and never answers; it returns host:port.
func startBlackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().String()
}
