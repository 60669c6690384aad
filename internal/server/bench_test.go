package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	graphclient "github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
)

// Benchmarks of the whole request path in-process, wired as cli.newApp wires it: signature check,
// decoding and validation, idempotency, guard rails, the engine, the real Graph client against the
// HTTP Graph fake, and telemetry (stdout lines and Application Insights envelopes to a local
// ingestion endpoint). Only the listener is missing; bench/ measures the built binary over TCP.
// The Graph fake and the ingestion endpoint run in this process, so allocations include theirs.

// benchIngestion accepts every batch, as Application Insights does when healthy.
func benchIngestion(b *testing.B) string {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"itemsReceived":1,"itemsAccepted":1,"errors":[]}`)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

type benchPath struct {
	handler http.Handler
	keys    webhook.Keys
	graph   *graphtest.Graph
	ids     atomic.Int64
}

func newBenchPath(b *testing.B, users int) *benchPath {
	b.Helper()
	otel.SetTracerProvider(noop.NewTracerProvider()) // as main does
	g := graphtest.NewGraph(b)
	for i := range users {
		g.AddUser(graphtest.User{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), UPN: fmt.Sprintf("user%03d@contoso.com", i)})
	}
	tel, err := telemetry.New(telemetry.Config{
		Connection: telemetry.ConnectionString{InstrumentationKey: "00000000-1111-2222-3333-444444444444", IngestionEndpoint: benchIngestion(b)},
		Role:       "entra-revoke", RoleInstance: "bench", Stdout: io.Discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tel.Close(ctx)
	})
	gc, err := graphclient.New(graphclient.Config{
		BaseURL: g.URL(), Credential: graphtest.NewCredential("bench-token"), Concurrency: 8,
		OnCall: func(ctx context.Context, c graphclient.Call) { tel.Dependency(ctx, telemetry.Dependency(c)) },
	})
	if err != nil {
		b.Fatal(err)
	}
	keys, err := webhook.ParseSecrets([]string{fixtureSecret})
	if err != nil {
		b.Fatal(err)
	}
	engine := revoke.New(revoke.Config{Revoker: gc, Users: gc, Sink: tel, Concurrency: 8})
	mem := state.NewMemory(state.MemoryConfig{})
	return &benchPath{
		handler: server.NewServer(server.Deps{
			Lifecycle: lifecycle(engine, mem, revoke.LifecycleConfig{MaxDequeueCount: 5}), Validator: request.NewValidator(), State: mem,
			Audit: tel, Keys: keys, Tolerance: 5 * time.Minute, MaxDequeueCount: 5, QueueMaxAge: 24 * time.Hour,
		}),
		keys:  keys,
		graph: g,
	}
}

// request signs body under a fresh webhook-id (about 3 µs of the measured time), so that no
// request is an idempotent replay.
func (p *benchPath) request(b *testing.B, body []byte, id string) *http.Request {
	if id == "" {
		id = "msg_bench_" + strconv.FormatInt(p.ids.Add(1), 10)
	}
	h, err := p.keys.Headers(id, time.Now(), body)
	if err != nil {
		b.Error(err)
		return nil
	}
	r := httptest.NewRequest(http.MethodPost, "/api/revoke", strings.NewReader(string(body)))
	for k, v := range h {
		r.Header[k] = v
	}
	r.Header.Set("Content-Type", "application/json")
	return r
}

func benchBody(users int) []byte {
	if users == 1 {
		return []byte(`{"upn":"user000@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`)
	}
	upns := make([]string, users)
	for i := range upns {
		upns[i] = fmt.Sprintf(`"user%03d@contoso.com"`, i)
	}
	return []byte(`{"upns":[` + strings.Join(upns, ",") + `],"ticket":"INC0012345"}`)
}

func BenchmarkRevokePath(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("users%d", n), func(b *testing.B) {
			p := newBenchPath(b, n)
			body := benchBody(n)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				p.handler.ServeHTTP(w, p.request(b, body, ""))
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"revoked"`) {
					b.Fatalf("POST /api/revoke (%d users) = %d %s; want 200 revoked", n, w.Code, w.Body)
				}
			}
			if got := p.graph.Revocations("user000@contoso.com"); got < 1 {
				b.Fatalf("Graph fake saw %d revocations", got)
			}
		})
	}

	// A caller's retry with the same webhook-id: verified, then answered from the idempotency store.
	b.Run("replay", func(b *testing.B) {
		p := newBenchPath(b, 1)
		body := benchBody(1)
		w := httptest.NewRecorder()
		p.handler.ServeHTTP(w, p.request(b, body, "msg_bench_replay"))
		if w.Code != http.StatusOK {
			b.Fatalf("first request = %d %s", w.Code, w.Body)
		}
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			p.handler.ServeHTTP(w, p.request(b, body, "msg_bench_replay"))
			if w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "true" {
				b.Fatalf("replay = %d replayed=%q", w.Code, w.Header().Get("Idempotent-Replayed"))
			}
		}
		if got := p.graph.Revocations("user000@contoso.com"); got != 1 {
			b.Fatalf("Graph fake saw %d revocations; want 1 (replays must not reach Graph)", got)
		}
	})

	// A forged request is refused before any decoding or Graph call.
	b.Run("forged", func(b *testing.B) {
		p := newBenchPath(b, 1)
		body := benchBody(1)
		b.ReportAllocs()
		for b.Loop() {
			r := p.request(b, body, "")
			r.Header.Set(webhook.HeaderSignature, "v1,dg+lKABM6NEPDv8Fe+/aXedTej4w5pAInXyC0omiDrE=")
			w := httptest.NewRecorder()
			p.handler.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized {
				b.Fatalf("forged request = %d %s; want 401", w.Code, w.Body)
			}
		}
		if n := len(p.graph.Requests()); n != 0 {
			b.Fatalf("forged requests reached Graph %d times", n)
		}
	})

	// 32 callers at once: the load test's concurrency, in-process.
	b.Run("parallel32_users1", func(b *testing.B) {
		p := newBenchPath(b, 1)
		body := benchBody(1)
		b.ReportAllocs()
		b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 goroutines on this machine
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w := httptest.NewRecorder()
				p.handler.ServeHTTP(w, p.request(b, body, ""))
				if w.Code != http.StatusOK {
					b.Errorf("POST /api/revoke = %d %s; want 200", w.Code, w.Body)
					return
				}
			}
		})
	})
}

// benchEngine finishes every job at once: the queue benchmarks measure the handler's own work.
type benchEngine struct{ runs atomic.Int64 }

func (e *benchEngine) Run(_ context.Context, job revoke.Job) (revoke.Result, error) {
	e.runs.Add(1)
	res := revoke.Result{ID: job.RequestID, Status: revoke.StatusRevoked, Results: make([]revoke.UserResult, len(job.Users))}
	for i, u := range job.Users {
		res.Results[i] = revoke.UserResult{UPN: u, Status: revoke.StatusRevoked}
	}
	return res, nil
}

// BenchmarkQueueInvocation is the queue trigger's per-message work around the engine: decoding the
// host's invocation, verifying the signed message, validating its body, and remembering its
// outcome so that a redelivery does not revoke again. It is measured with nothing remembered yet
// and after 10,000 messages, the size of a bulk incident, to show whether that memory costs more
// as it grows.
func BenchmarkQueueInvocation(b *testing.B) {
	keys, err := webhook.ParseSecrets([]string{fixtureSecret})
	if err != nil {
		b.Fatal(err)
	}
	message := func(i int) []byte {
		text, err := queue.Seal(keys, "msg_bench_queue_"+strconv.Itoa(i), time.Now(), []byte(`{"upn":"user000@contoso.com"}`))
		if err != nil {
			b.Fatal(err)
		}
		inner, _ := json.Marshal(string(text))
		outer, _ := json.Marshal(string(inner))
		return []byte(`{"Data":{"message":` + string(outer) + `},"Metadata":{"DequeueCount":"1","Id":"\"` + strconv.Itoa(i) + `\"","PopReceipt":"\"AgAAAAMAAAAAAAAA\""}}`)
	}
	deliver := func(h http.Handler, body []byte) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/revoke-queue", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		return w
	}
	for _, remembered := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("after%d", remembered), func(b *testing.B) {
			engine := &benchEngine{}
			mem := state.NewMemory(state.MemoryConfig{})
			h := server.NewServer(server.Deps{
				Lifecycle: lifecycle(engine, mem, revoke.LifecycleConfig{MaxDequeueCount: 5}), Validator: request.NewValidator(), State: mem,
				Audit: &audit{}, Keys: keys, Tolerance: 5 * time.Minute, QueueMaxAge: 24 * time.Hour, MaxDequeueCount: 5,
			})
			n := 0
			for ; n < remembered; n++ {
				if w := deliver(h, message(n)); w.Code != http.StatusOK {
					b.Fatalf("message %d = %d %s", n, w.Code, w.Body)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				// Sealing a fresh message (about 7 µs, BenchmarkSeal) is measured too: pausing
				// the timer would cost more than that and distort the result.
				body := message(n)
				n++
				if w := deliver(h, body); w.Code != http.StatusOK {
					b.Fatalf("message %d = %d %s", n, w.Code, w.Body)
				}
			}
			if got := engine.runs.Load(); got != int64(n) {
				b.Fatalf("engine ran %d jobs for %d messages", got, n)
			}
		})
	}
}
