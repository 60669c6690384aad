package revoke_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// Benchmarks of the engine: its own cost (guard rails, concurrency, ordering, outcome records) with
// an in-memory Graph seam, and the engine with the real Graph client (msgraph-sdk-go, kiota,
// retries, dependency hooks) against the HTTP Graph fake. The fake runs in the benchmark's
// process, so the second family's allocations include the fake's server side.

// benchGraph answers every call at once.
type benchGraph struct{ revoked atomic.Int64 }

var (
	_ revoke.Revoker    = (*benchGraph)(nil)
	_ revoke.UserReader = (*benchGraph)(nil)
)

func (g *benchGraph) RevokeSignInSessions(context.Context, string) (revoke.GraphResult, error) {
	g.revoked.Add(1)
	return revoke.GraphResult{RequestID: "b1e2c3d4-0000-4000-8000-000000000001", Attempts: 1, Duration: time.Millisecond}, nil
}

func (g *benchGraph) LookupUser(_ context.Context, user string) (revoke.User, error) {
	return revoke.User{ID: "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a", UPN: "alice@contoso.com", UserType: "Member"}, nil
}

func (g *benchGraph) ReadSessions(ctx context.Context, user string) (revoke.User, error) {
	return g.LookupUser(ctx, user)
}

// benchSink counts outcomes, so a benchmark that stops recording them fails.
type benchSink struct{ n atomic.Int64 }

func (s *benchSink) Outcome(context.Context, revoke.Outcome) { s.n.Add(1) }

func benchUsers(n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("user%03d@contoso.com", i)
	}
	return users
}

// benchRun runs job b.N times and checks every result and every outcome record.
func benchRun(b *testing.B, e *revoke.Engine, sink *benchSink, users []string, want revoke.Status) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	runs := 0
	for b.Loop() {
		res, err := e.Run(ctx, revoke.Job{
			Meta:  revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "msg_bench", Caller: "webhook:0"},
			Users: users, Ticket: "INC0012345", Final: true,
		})
		if err != nil || res.Status != want || len(res.Results) != len(users) {
			b.Fatalf("Run(%d users) = %s with %d results, %v; want %s", len(users), res.Status, len(res.Results), err, want)
		}
		runs++
	}
	if got, wantN := sink.n.Load(), int64(runs*len(users)); got != wantN {
		b.Fatalf("%d outcomes recorded; want %d", got, wantN)
	}
}

func BenchmarkEngine(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("users%d", n), func(b *testing.B) {
			sink := &benchSink{}
			g := &benchGraph{}
			e := revoke.New(revoke.Config{Revoker: g, Users: g, Sink: sink, Concurrency: 8})
			benchRun(b, e, sink, benchUsers(n), revoke.StatusRevoked)
		})
	}
	// Guard rails that need a lookup: an object ID on PROTECTED_USERS makes every UPN be read first.
	b.Run("users10_lookup_guard", func(b *testing.B) {
		sink := &benchSink{}
		g := &benchGraph{}
		e := revoke.New(revoke.Config{
			Revoker: g, Users: g, Sink: sink, Concurrency: 8,
			ProtectedUsers: []string{"9e8d7c6b-2222-4c1e-9f2a-6b5d4c3e2f1a"}, AllowedDomains: []string{"contoso.com"},
		})
		benchRun(b, e, sink, benchUsers(10), revoke.StatusRevoked)
	})
}

// mustBenchGraphClient is the production Graph client pointed at a fresh Graph fake that knows
// users.
func mustBenchGraphClient(b *testing.B, users []string) (*graph.Client, *graphtest.Graph) {
	b.Helper()
	g := graphtest.NewGraph(b)
	for i, u := range users {
		g.AddUser(graphtest.User{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), UPN: u})
	}
	c, err := graph.New(graph.Config{
		BaseURL: g.URL(), Credential: graphtest.NewCredential("bench-token"), Concurrency: 8,
		OnCall: func(context.Context, graph.Call) {},
	})
	if err != nil {
		b.Fatal(err)
	}
	return c, g
}

func BenchmarkEngineGraph(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("users%d", n), func(b *testing.B) {
			users := benchUsers(n)
			c, g := mustBenchGraphClient(b, users)
			sink := &benchSink{}
			e := revoke.New(revoke.Config{Revoker: c, Users: c, Sink: sink, Concurrency: 8})
			benchRun(b, e, sink, users, revoke.StatusRevoked)
			if got := g.Revocations(users[0]); got < 1 {
				b.Fatalf("Graph fake saw %d revocations of %s", got, users[0])
			}
		})
	}

	// 32 callers at once, one user each, sharing the engine's 8 Graph slots: the contention of the
	// load test, without HTTP in front.
	b.Run("parallel32_users1", func(b *testing.B) {
		users := benchUsers(1)
		c, _ := mustBenchGraphClient(b, users)
		sink := &benchSink{}
		e := revoke.New(revoke.Config{Revoker: c, Users: c, Sink: sink, Concurrency: 8})
		b.ReportAllocs()
		b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 goroutines on this machine
		var runs atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := e.Run(context.Background(), revoke.Job{
					Meta:  revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "msg_bench"},
					Users: users, Final: true,
				})
				if err != nil || res.Status != revoke.StatusRevoked {
					b.Errorf("Run = %s, %v; want revoked", res.Status, err)
					return
				}
				runs.Add(1)
			}
		})
		if sink.n.Load() != runs.Load() {
			b.Fatalf("%d outcomes for %d runs", sink.n.Load(), runs.Load())
		}
	})
}
