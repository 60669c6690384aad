package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// The soak (issue 9): the built handler under a steady load for a minute, with resident memory,
// live heap and goroutines sampled from outside the process — /proc for memory, and the Go
// runtime's own GODEBUG traces (gctrace for the heap live after each collection, schedtrace with
// scheddetail for the goroutine list), so the production binary needs no debug endpoint. It runs
// only when asked (ENTRA_REVOKE_SOAK=1, as `make bench` does): it takes 80 s.

const (
	soakRate    = 100              // requests per second, open loop: arrivals do not wait for answers
	soakWarmup  = 20 * time.Second // longer than IDEMPOTENCY_TTL below, so remembered ids can expire
	soakMeasure = 60 * time.Second
	soakEvery   = 5 * time.Second
	soakTTL     = "10s" // IDEMPOTENCY_TTL: short, so that a steady state exists within the run
)

type soakSample struct {
	at         time.Duration
	rssKiB     int64
	heapMB     int
	goroutines int
	done       int64
}

func TestSoak(t *testing.T) {
	if os.Getenv("ENTRA_REVOKE_SOAK") == "" {
		t.Skip("set ENTRA_REVOKE_SOAK=1 to run the 80 s soak (make bench does)")
	}
	in := testenv.NewIngestion(t)
	id, g := tenant(t)
	id.SetLifetime(24 * time.Hour) // as managed identity tokens live, so the token cache is used
	users := faultUsers(g, "soak", 50)
	env := handlerEnv(t, id, g)
	env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
	env["IDEMPOTENCY_TTL"] = soakTTL
	env["MAX_REVOCATIONS_PER_MINUTE"] = strconv.Itoa(2 * soakRate * 60)
	env["GODEBUG"] = "gctrace=1,schedtrace=1000,scheddetail=1"
	p, outcomes := startQuietHandler(t, env)
	pid := p.Pid()

	keys, err := webhook.ParseSecrets([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var (
		sent, ok, failed atomic.Int64
		firstErr         atomic.Value
		wg               sync.WaitGroup
	)
	fail := func(format string, a ...any) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Sprintf(format, a...))
	}
	one := func(n int64) {
		defer wg.Done()
		body := revokeBody(users[n%int64(len(users))])
		msgID := "msg_soak_" + strconv.FormatInt(n, 10)
		h, err := keys.Headers(msgID, time.Now(), body)
		if err != nil {
			fail("sign: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/api/revoke", bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fail("request %s: %v", msgID, err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"status":"revoked"`)) {
			fail("request %s = %d %s", msgID, resp.StatusCode, b)
			return
		}
		ok.Add(1)
	}

	start := time.Now()
	stop := start.Add(soakWarmup + soakMeasure)
	tick := time.NewTicker(time.Second / soakRate)
	next := start.Add(soakWarmup)
	var samples []soakSample
	for now := range tick.C {
		if now.After(stop) {
			break
		}
		wg.Add(1)
		go one(sent.Add(1))
		if now.After(next) {
			next = next.Add(soakEvery)
			samples = append(samples, takeSoakSample(t, pid, p.Stderr.String(), now.Sub(start), ok.Load()))
		}
	}
	tick.Stop()
	wg.Wait()
	// Idle again: the callers' connections close, and request goroutines wind down.
	client.CloseIdleConnections()
	time.Sleep(3 * time.Second)
	idle := takeSoakSample(t, pid, p.Stderr.String(), time.Since(start), ok.Load())

	t.Logf("%8s %10s %10s %11s %9s", "t", "RSS MiB", "heap MB", "goroutines", "answered")
	for _, s := range append(samples, idle) {
		t.Logf("%7.0fs %10.1f %10d %11d %9d", s.at.Seconds(), float64(s.rssKiB)/1024, s.heapMB, s.goroutines, s.done)
	}
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	if len(samples) < 10 {
		t.Fatalf("only %d samples taken; the machine is too busy for a soak", len(samples))
	}

	// Flat: after the warm-up, neither memory nor goroutines keep growing. The first measured
	// sample is the reference; the bounds allow GC timing noise, not growth with requests (6,000
	// requests at 1 KiB each would be 6 MiB).
	first, last := samples[0], samples[len(samples)-1]
	maxOf := func(f func(soakSample) int64) int64 {
		m := int64(0)
		for _, s := range samples {
			m = max(m, f(s))
		}
		return m
	}
	if rss := maxOf(func(s soakSample) int64 { return s.rssKiB }); rss > first.rssKiB+4<<10 {
		t.Errorf("RSS grew from %.1f MiB to a peak of %.1f MiB under steady load; want flat (within 4 MiB)", float64(first.rssKiB)/1024, float64(rss)/1024)
	}
	if heap := last.heapMB; heap > first.heapMB+2 {
		t.Errorf("live heap grew from %d MB to %d MB under steady load; want flat (within 2 MB)", first.heapMB, heap)
	}
	// Goroutines vary with open connections (callers' and the Graph client's pool, two per
	// connection): 20 allows that, a leak of one per request would be thousands.
	if gr := maxOf(func(s soakSample) int64 { return int64(s.goroutines) }); gr > int64(first.goroutines)+20 {
		t.Errorf("goroutines grew from %d to a peak of %d under steady load; want flat (within 20)", first.goroutines, gr)
	}
	if idle.goroutines > first.goroutines+20 {
		t.Errorf("%d goroutines once idle, up from %d under load; want them to wind down", idle.goroutines, first.goroutines)
	}

	// Every answered request has exactly one outcome event, flushed at shutdown.
	p.terminate(t)
	if code := p.exitCode(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d; want 0", code)
	}
	n := countPrefix(in.Names(), "EventData:SessionRevocation")
	if int64(n) != ok.Load() {
		t.Errorf("ingestion received %d SessionRevocation events for %d revoked requests", n, ok.Load())
	}
	if lines := outcomes.revoked.Load(); lines != ok.Load() {
		t.Errorf("stdout has %d revoked outcome lines for %d revoked requests", lines, ok.Load())
	}
}

// outcomeLines counts the revoked outcome lines a handler writes to stdout and keeps nothing else:
// a soak writes megabytes of them, which the harness would print whole on a failure.
type outcomeLines struct {
	*testenv.LineFunc
	revoked atomic.Int64
}

func newOutcomeLines() *outcomeLines {
	o := &outcomeLines{}
	o.LineFunc = testenv.NewLineFunc(func(line []byte) {
		if bytes.Contains(line, []byte(`"event":"SessionRevocation"`)) && bytes.Contains(line, []byte(`"status":"revoked"`)) {
			o.revoked.Add(1)
		}
	})
	return o
}

// startQuietHandler is startHandler with stdout counted instead of kept, and only the end of
// stderr (the runtime traces) shown on failure.
func startQuietHandler(t *testing.T, env map[string]string) (*proc, *outcomeLines) {
	t.Helper()
	out := newOutcomeLines()
	return startListening(t, env, out), out
}

var (
	gcLine    = regexp.MustCompile(`(?m)^gc \d+ @[^:]+: .* (\d+)->(\d+)->(\d+) MB`)
	schedLine = regexp.MustCompile(`(?m)^SCHED \d+ms:`)
	gLine     = regexp.MustCompile(`(?m)^  G\d+: status=(\d+)`)
)

// takeSoakSample reads VmRSS, the live heap after the last collection (gctrace) and the number of
// goroutines that are not dead in the last complete scheduler dump (schedtrace).
func takeSoakSample(t *testing.T, pid int, stderr string, at time.Duration, done int64) soakSample {
	t.Helper()
	s := soakSample{at: at, done: done}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/status: %v", pid, err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			s.rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if m := gcLine.FindAllStringSubmatch(stderr, -1); len(m) > 0 {
		s.heapMB, _ = strconv.Atoi(m[len(m)-1][3])
	}
	// The last dump may still be being written: use the one before it.
	idx := schedLine.FindAllStringIndex(stderr, -1)
	if len(idx) < 2 {
		t.Fatalf("no complete scheduler trace in the handler's stderr (GODEBUG schedtrace)")
	}
	dump := stderr[idx[len(idx)-2][0]:idx[len(idx)-1][0]]
	for _, m := range gLine.FindAllStringSubmatch(dump, -1) {
		if m[1] != "6" { // _Gdead: an exited goroutine kept for reuse
			s.goroutines++
		}
	}
	return s
}
