package state

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// withTableEndpoint returns conn with its TableEndpoint replaced by endpoint.
func withTableEndpoint(conn, endpoint string) string {
	var parts []string
	for p := range strings.SplitSeq(conn, ";") {
		if p != "" && !strings.HasPrefix(p, "TableEndpoint=") {
			parts = append(parts, p)
		}
	}
	return strings.Join(append(parts, "TableEndpoint="+endpoint), ";") + ";"
}

// fallbacks records onFallback calls.
type fallbacks struct {
	mu  sync.Mutex
	ops []string
}

func (f *fallbacks) record(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
}

func (f *fallbacks) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

func mustShared(t *testing.T, conn, name string, clock *fakeClock, rate int, f *fallbacks) *Shared {
	t.Helper()
	onFallback := func(string, error) {}
	if f != nil {
		onFallback = f.record
	}
	s := NewShared(mustTable(t, conn, name, clock, rate), NewMemory(MemoryConfig{RatePerMinute: rate, Now: clock.Now}), onFallback)
	t.Cleanup(s.Close)
	return s
}

// mustMode waits until s reports want: the background probe decides, in real time.
func mustMode(t *testing.T, s *Shared, want, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * probeEvery)
	for s.Mode() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: Mode() = %q after %v; want %q", what, s.Mode(), 3*probeEvery, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testSharedOutage(t *testing.T, az testenv.Azurite) {
	ctx := context.Background()
	p := testenv.StartFaultProxy(t, testenv.HostPort(az.TableEndpoint))
	clock := newFakeClock()
	f := &fallbacks{}
	s := mustShared(t, withTableEndpoint(az.ConnectionString, p.TableEndpoint()), tableName(), clock, 600, f)
	other := mustTable(t, az.ConnectionString, s.table.name, clock, 600) // another instance, never cut off

	before := RequestKey{Scope: "webhook", ID: "before"}
	c := mustLease(t, s, before, "h", 30*time.Second)
	mustFinish(t, s, before, c.Lease, Response{Status: 200, Body: []byte(`{"before":true}`)}, time.Hour)
	if err := other.PutStatus(ctx, "status-in-table", []byte(`{}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	finishLater := RequestKey{Scope: "webhook", ID: "finished-during-outage"}
	held := mustLease(t, s, finishLater, "h", 30*time.Second)
	if got := s.Mode(); got != ModeTable {
		t.Fatalf("Mode() with the table up = %q; want %q", got, ModeTable)
	}

	for _, mode := range []string{"down", "hang"} {
		t.Logf("table %s", mode)
		p.Set(mode)
		// Each operation answers within the bound of one table operation, from memory.
		start := time.Now()
		during := RequestKey{Scope: "webhook", ID: "during-" + mode}
		c := mustLease(t, s, during, "h", 30*time.Second)
		if elapsed := time.Since(start); elapsed > 10*time.Second {
			t.Errorf("table %s: Claim took %v; want it answered within a request's budget", mode, elapsed)
		}
		// One failure is not an outage; the probe it starts finds the table down.
		mustMode(t, s, ModeDegraded, "table "+mode)
		mustFinish(t, s, during, c.Lease, Response{Status: 200, Body: []byte(`{"during":true}`)}, time.Hour)
		if r := mustClaim(t, s, during, "h", 30*time.Second); r.Replay == nil {
			t.Errorf("table %s: repeat of a request finished in memory = %+v; want a replay", mode, r)
		}
		if _, ok := s.Take(ctx, 1); !ok {
			t.Errorf("table %s: rate guard refused; want this instance's own bucket", mode)
		}
		if err := s.SaveMessageProgress(ctx, MessageKey{MessageID: "m-" + mode, ContentHash: "c"}, []byte("p"), false); err != nil {
			t.Errorf("table %s: SaveMessageProgress = %v; want it kept in memory", mode, err)
		}
		if p, _, err := s.MessageProgress(ctx, MessageKey{MessageID: "m-" + mode, ContentHash: "c"}); string(p) != "p" || err != nil {
			t.Errorf("table %s: MessageProgress = %q, %v; want p from memory", mode, p, err)
		}
		if _, err := s.GetStatus(ctx, "status-in-table"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("table %s: GetStatus of a status in the table = %v; want ErrUnavailable, not a 404", mode, err)
		}
		if err := s.PutStatus(ctx, "status-"+mode, []byte(`{"v":1}`), time.Hour); err != nil {
			t.Errorf("table %s: PutStatus = %v; want it kept in memory", mode, err)
		}
		if err := s.UpdateStatus(ctx, "status-"+mode, time.Hour, func([]byte) ([]byte, error) { return []byte(`{"v":2}`), nil }); err != nil {
			t.Errorf("table %s: UpdateStatus of a status in memory = %v", mode, err)
		}
		if mode == "down" {
			// A lease the table gave before the outage: its outcome is kept in memory.
			mustFinish(t, s, finishLater, held.Lease, Response{Status: 200, Body: []byte(`{"later":true}`)}, time.Hour)
			if r := mustClaim(t, s, finishLater, "h", 30*time.Second); r.Replay == nil || string(r.Replay.Body) != `{"later":true}` {
				t.Errorf("repeat of a table lease finished during the outage = %+v; want the replay from memory", r)
			}
		}
		// While degraded only the probe tries the table, and one report is enough. The claim
		// made two tries and, the connection refused at once, one more claim of two tries; the
		// probe one.
		if n := p.Failed(); n > 5 {
			t.Errorf("table %s: %d connections to the dead table; want the table left alone while degraded", mode, n)
		}
		if got := f.list(); len(got) != 1 {
			t.Errorf("table %s: onFallback calls %v; want exactly one", mode, got)
		}

		// Still down at the next probe: degraded still, and no new report within a minute.
		dials := p.Failed()
		waitUntil(t, "the next probe", func() bool { return p.Failed() > dials })
		if got := s.Mode(); got != ModeDegraded {
			t.Errorf("table %s after a failed probe: Mode() = %q; want %q", mode, got, ModeDegraded)
		}

		// The table comes back: the probe notices without any traffic.
		p.Set("up")
		mustMode(t, s, ModeTable, "table back after "+mode)
		if r := mustClaim(t, s, before, "h", 30*time.Second); r.Replay == nil || string(r.Replay.Body) != `{"before":true}` {
			t.Errorf("table back after %s: repeat of a request finished in the table = %+v; want its replay", mode, r)
		}
		// What memory took during the outage still answers on this instance.
		if r := mustClaim(t, s, during, "h", 30*time.Second); r.Replay == nil || string(r.Replay.Body) != `{"during":true}` {
			t.Errorf("table back after %s: repeat of a request finished in memory = %+v; want its replay", mode, r)
		}
		if got, err := s.GetStatus(ctx, "status-"+mode); string(got) != `{"v":2}` || err != nil {
			t.Errorf("table back after %s: status created in memory = %q, %v; want {\"v\":2}", mode, got, err)
		}
		if _, err := s.GetStatus(ctx, "status-in-table"); err != nil {
			t.Errorf("table back after %s: GetStatus of a status in the table = %v", mode, err)
		}
		if err := s.SaveMessageProgress(ctx, MessageKey{MessageID: "m-" + mode, ContentHash: "c"}, []byte("table"), true); err != nil {
			t.Fatal(err)
		}
		if p, done, _ := s.MessageProgress(ctx, MessageKey{MessageID: "m-" + mode, ContentHash: "c"}); string(p) != "table" || !done {
			t.Errorf("table back after %s: message progress = %q, %v; want the table's newer progress", mode, p, done)
		}
		f.mu.Lock()
		f.ops = nil
		f.mu.Unlock()
		clock.Advance(2 * reportEvery)
		p.ResetFailed()
	}
}

// testSharedTableKilled: Azurite's table service is killed under a Shared; it keeps answering.
func testSharedTableKilled(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := context.Background()
	clock := newFakeClock()
	f := &fallbacks{}
	s := mustShared(t, az.ConnectionString, tableName(), clock, 600, f)
	key := RequestKey{Scope: "webhook", ID: "a"}
	c := mustLease(t, s, key, "h", 30*time.Second)
	mustFinish(t, s, key, c.Lease, Response{Status: 200, Body: []byte(`{}`)}, time.Hour)

	az.StopTable()
	for i, id := range []string{"b", "c", "d", "e"} {
		key := RequestKey{Scope: "webhook", ID: id}
		c := mustLease(t, s, key, "h", 30*time.Second)
		if _, ok := s.Take(ctx, 1); !ok {
			t.Errorf("request %d after the kill: rate guard refused", i)
		}
		mustFinish(t, s, key, c.Lease, Response{Status: 200, Body: []byte(`{}`)}, time.Hour)
		clock.Advance(reportEvery / 3)
	}
	if got := s.Mode(); got != ModeDegraded {
		t.Errorf("Mode() after the kill = %q; want %q", got, ModeDegraded)
	}
	if got := f.list(); len(got) < 1 || len(got) > 2 || got[0] != "claim" {
		t.Errorf("onFallback calls over %v = %v; want one a minute, the first for claim", 4*reportEvery/3, got)
	}
	if _, err := s.Cleanup(ctx); err == nil {
		t.Errorf("Cleanup with the table dead = nil error; want it reported")
	}
}

// waitUntil polls cond for up to three probe intervals.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * probeEvery)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
