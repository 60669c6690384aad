package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	testConformance(t, func(t *testing.T, clock *fakeClock, rate int) (Store, Store) {
		m := NewMemory(MemoryConfig{RatePerMinute: rate, Now: clock.Now})
		return m, m // one process
	})
}

func TestMemoryMode(t *testing.T) {
	t.Parallel()
	if got := NewMemory(MemoryConfig{}).Mode(); got != ModeMemory {
		t.Errorf("Mode() = %q; want %q", got, ModeMemory)
	}
}

// finishN remembers n single-user answers of bodySize bytes, one second apart.
func finishN(t *testing.T, m *Memory, clock *fakeClock, n, bodySize int) {
	t.Helper()
	body := make([]byte, bodySize)
	for i := range n {
		key := RequestKey{Scope: "webhook", ID: fmt.Sprintf("id-%d", i)}
		c := mustLease(t, m, key, "h", time.Minute)
		mustFinish(t, m, key, c.Lease, Response{Status: 200, Body: body}, 24*time.Hour)
		clock.Advance(time.Second)
	}
}

func replays(t *testing.T, m *Memory, i int) bool {
	t.Helper()
	c, err := m.Claim(context.Background(), RequestKey{Scope: "webhook", ID: fmt.Sprintf("id-%d", i)}, "h", time.Minute)
	if err != nil {
		t.Fatalf("Claim(id-%d) = %v", i, err)
	}
	return c.Replay != nil
}

func TestMemoryBoundedByEntries(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{MaxEntries: 40, Now: clock.Now}) // 20 for requests
	finishN(t, m, clock, 30, 10)
	if n := len(m.requests.items); n != 20 {
		t.Errorf("after 30 answers with room for 20: %d kept; want 20", n)
	}
	if replays(t, m, 9) {
		t.Errorf("id-9, among the 10 oldest, replays; want it evicted")
	}
	if !replays(t, m, 29) {
		t.Errorf("id-29, the newest, does not replay; want it kept")
	}
}

func TestMemoryBoundedByBytes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	// Room for 10 answers of 1000 bytes in the requests' half.
	perAnswer := requestSize(RequestKey{Scope: "webhook", ID: "id-00"}, &request{bodyHash: "h", resp: &Response{Body: make([]byte, 1000)}})
	m := NewMemory(MemoryConfig{MaxBytes: 2 * 10 * perAnswer, Now: clock.Now})
	finishN(t, m, clock, 25, 1000)
	if m.requests.bytes > 10*perAnswer {
		t.Errorf("accounted bytes = %d; want at most %d", m.requests.bytes, 10*perAnswer)
	}
	if n := len(m.requests.items); n < 9 || n > 10 {
		t.Errorf("kept %d answers; want 9 or 10", n)
	}
	if !replays(t, m, 24) || replays(t, m, 5) {
		t.Errorf("want the newest kept and the oldest evicted")
	}
}

// TestMemoryDefaultsKeepMinutesAtTheRateGuard shows what the default bound keeps: at least ten
// minutes of answers at the default rate guard's full pace (600 revocations a minute). Memory
// mode is for one process and the table's outages; the table keeps the whole IDEMPOTENCY_TTL.
func TestMemoryDefaultsKeepMinutesAtTheRateGuard(t *testing.T) {
	t.Parallel()
	body := make([]byte, 300) // a single-user answer
	key := RequestKey{Scope: "webhook", ID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}
	per := requestSize(key, &request{bodyHash: string(make([]byte, 64)), resp: &Response{Body: body}})
	answers := min(DefaultMaxBytes/2/per, DefaultMaxEntries/2)
	if minutes := float64(answers) / 10 / 60; minutes < 10 {
		t.Errorf("default bounds keep %d answers of %d bytes: %.1f minutes at 10/s; want at least 10", answers, per, minutes)
	}
}

// TestMemoryMessageFloodKeepsAnswers: a flood of 100-user dry runs through the queue is bounded by
// bytes and evicts only message progress, never remembered answers.
func TestMemoryMessageFloodKeepsAnswers(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const maxBytes = 4 << 20
	m := NewMemory(MemoryConfig{MaxBytes: maxBytes, Now: clock.Now})
	finishN(t, m, clock, 5, 300)
	progress := bigResult()
	ctx := context.Background()
	for i := range 1000 { // about 100 MB unbounded
		key := MessageKey{MessageID: fmt.Sprintf("msg-%d", i), ContentHash: "c"}
		if err := m.SaveMessageProgress(ctx, key, progress, true); err != nil {
			t.Fatal(err)
		}
	}
	if m.messages.bytes > maxBytes/4 {
		t.Errorf("message progress holds %d bytes; want at most %d", m.messages.bytes, maxBytes/4)
	}
	for i := range 5 {
		if !replays(t, m, i) {
			t.Errorf("id-%d no longer replays after a message flood; want it kept", i)
		}
	}
}

// TestMemoryNeverEvictsALiveLease: evicting an in-flight claim would let a duplicate run.
func TestMemoryNeverEvictsALiveLease(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{MaxEntries: 8, Now: clock.Now}) // 4 for requests
	busy := RequestKey{Scope: "webhook", ID: "busy"}
	mustLease(t, m, busy, "h", time.Hour)
	finishN(t, m, clock, 20, 10)
	_, err := m.Claim(context.Background(), busy, "h", time.Hour)
	var ip *InProgressError
	if !errors.As(err, &ip) {
		t.Errorf("Claim of an in-flight id after 20 newer answers = %v; want *InProgressError", err)
	}
	if n := len(m.requests.items); n != 4 {
		t.Errorf("kept %d requests; want 4", n)
	}
}

// TestMemoryDropsExpiredFirst: expired entries leave before live ones are evicted.
func TestMemoryDropsExpiredFirst(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now})
	ctx := context.Background()
	for i := range 10 {
		if err := m.PutStatus(ctx, fmt.Sprintf("s-%d", i), []byte("{}"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	if err := m.PutStatus(ctx, "fresh", []byte("{}"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := len(m.statuses.items); n != 1 {
		t.Errorf("after the others expired, %d statuses are kept; want 1", n)
	}
}

func TestMemoryRespectsContext(t *testing.T) {
	t.Parallel()
	m := NewMemory(MemoryConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Claim(ctx, RequestKey{Scope: "webhook", ID: "x"}, "h", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim with a cancelled context = %v; want context.Canceled", err)
	}
}

// A status with a user still queued is never evicted for space: its link is live while its
// message waits. Finished statuses go first, least recently written first.
func TestMemoryKeepsOpenStatuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 8}) // statuses get a quarter: 2
	open := []byte(`{"id":"a","status":"queued","results":[{"upn":"a@contoso.com","status":"queued"}]}`)
	done := []byte(`{"id":"b","status":"revoked","results":[{"upn":"b@contoso.com","status":"revoked"}]}`)
	for _, h := range []string{"open-1", "open-2"} {
		if err := m.PutStatus(ctx, h, open, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"done-1", "done-2", "done-3"} {
		if err := m.PutStatus(ctx, h, done, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"open-1", "open-2"} {
		if _, err := m.GetStatus(ctx, h); err != nil {
			t.Errorf("GetStatus(%s) after newer links = %v; want the open link kept", h, err)
		}
	}
	if _, err := m.GetStatus(ctx, "done-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetStatus(done-1) = %v; want the oldest finished link evicted", err)
	}
}
