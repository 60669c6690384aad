package callback

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

const (
	queueSecret = "whsec_cXVldWUtc2VjcmV0LWZvci10ZXN0cy0wMTIzNDU2Nzg5" // "queue-secret-for-tests-0123456789"
	hookSecret1 = "whsec_aG9vay1zZWNyZXQtb25lLWZvci10ZXN0cy0wMTIzNDU="
	hookSecret2 = "whsec_aG9vay1zZWNyZXQtdHdvLWZvci10ZXN0cy0wMTIzNDU="
)

func mustKeys(t *testing.T, secrets ...string) webhook.Keys {
	t.Helper()
	k, err := webhook.ParseSecrets(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustHosts(t *testing.T, entries ...string) callbackurl.Hosts {
	t.Helper()
	h, err := callbackurl.ParseHosts(entries)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fakeQueue records what a delivery enqueues and poisons.
type fakeQueue struct {
	mu       sync.Mutex
	enqueued [][]byte
	delays   []time.Duration
	poisoned [][]byte
}

var _ Queue = (*fakeQueue)(nil)

func (q *fakeQueue) EnqueueDelayed(_ context.Context, text []byte, delay time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enqueued = append(q.enqueued, text)
	q.delays = append(q.delays, delay)
	return nil
}

func (q *fakeQueue) Poison(_ context.Context, text []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.poisoned = append(q.poisoned, text)
	return nil
}

// take removes and returns the last enqueued message.
func (q *fakeQueue) take(t *testing.T) ([]byte, time.Duration) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.enqueued) != 1 {
		t.Fatalf("queue holds %d messages; want 1", len(q.enqueued))
	}
	text, d := q.enqueued[0], q.delays[0]
	q.enqueued, q.delays = nil, nil
	return text, d
}

// fakeRecorder keeps telemetry items.
type fakeRecorder struct {
	mu    sync.Mutex
	fates []telemetry.CallbackFate
	deps  []telemetry.Dependency
	rej   []telemetry.Rejection
}

func (r *fakeRecorder) Callback(_ context.Context, f telemetry.CallbackFate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fates = append(r.fates, f)
}

func (r *fakeRecorder) Dependency(_ context.Context, d telemetry.Dependency) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deps = append(r.deps, d)
}

func (r *fakeRecorder) Rejected(_ context.Context, x telemetry.Rejection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rej = append(r.rej, x)
}

// receiver is a loopback callback receiver answering scripted statuses (200 once the script ends).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	script  []int
	got     []*http.Request
	bodies  []string
	elsewhr int // requests to /elsewhere (a redirect's target)
}

func newReceiver(t *testing.T, script ...int) *receiver {
	rc := &receiver{script: script}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if r.URL.Path == "/elsewhere" {
			rc.elsewhr++
			return
		}
		b := new(strings.Builder)
		_, _ = ioCopy(b, r)
		rc.got = append(rc.got, r)
		rc.bodies = append(rc.bodies, b.String())
		code := http.StatusOK
		if len(rc.script) > 0 {
			code, rc.script = rc.script[0], rc.script[1:]
		}
		if code/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(strings.Repeat("ignored ", 100)))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func ioCopy(b *strings.Builder, r *http.Request) (int64, error) {
	buf := make([]byte, 1<<16)
	var n int64
	for {
		k, err := r.Body.Read(buf)
		b.Write(buf[:k])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}

// clock is a settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

type rig struct {
	q   *fakeQueue
	rec *fakeRecorder
	clk *clock
	n   *Notifier
	d   *Deliverer
}

func newRig(t *testing.T, hosts ...string) *rig {
	clk := &clock{now: time.Now()}
	q, rec := &fakeQueue{}, &fakeRecorder{}
	qk := mustKeys(t, queueSecret)
	return &rig{q: q, rec: rec, clk: clk,
		n: &Notifier{Queue: q, Keys: qk, Record: rec, Now: clk.Now},
		d: &Deliverer{
			Hosts: mustHosts(t, hosts...), Secrets: mustKeys(t, hookSecret1, hookSecret2), QueueKeys: qk,
			MaxAge: 24 * time.Hour, Tolerance: 5 * time.Minute, Queue: q, Record: rec, Rejecter: rec, Now: clk.Now,
		},
	}
}

func completion(u string) Completion {
	return Completion{URL: u, RequestID: "msg_1", Caller: "webhook:0", HTTPStatus: 200,
		Body: []byte(`{"id":"msg_1","status":"revoked","dryRun":false,"results":[{"upn":"alice@contoso.com","status":"revoked"}]}`)}
}

func TestDeliverySignsWithEverySecretAndRetriesOnSchedule(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, 500, 500, http.StatusFound, 503, 500, 500)
	rg := newRig(t, "127.0.0.1")
	rg.n.Completed(context.Background(), completion(rc.URL+"/hook?token=s3cret"))
	text, delay := rg.q.take(t)
	if delay != 0 {
		t.Errorf("first enqueue delay = %v; want 0", delay)
	}
	first := rg.clk.Now()
	wantAfter := []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 8 * time.Hour}
	for i := 0; i < MaxAttempts; i++ {
		disp, log := rg.d.Handle(context.Background(), text)
		if disp != Done {
			t.Fatalf("attempt %d: Handle = %v %q; want Done", i+1, disp, log)
		}
		if i == MaxAttempts-1 {
			break
		}
		text, delay = rg.q.take(t)
		// The next attempt is due at first + wantAfter[i]; the clock has not moved since this attempt.
		if due := rg.clk.Now().Add(delay); due.Sub(first) != wantAfter[i] {
			t.Errorf("retry %d due %v after the first attempt; want %v", i+1, due.Sub(first), wantAfter[i])
		}
		rg.clk.Add(delay)
	}
	if len(rc.got) != MaxAttempts || rc.elsewhr != 0 {
		t.Fatalf("receiver got %d attempts and %d redirected requests; want %d and none", len(rc.got), rc.elsewhr, MaxAttempts)
	}
	id := rc.got[0].Header.Get("webhook-id")
	for i, r := range rc.got {
		if r.Header.Get("webhook-id") != id || rc.bodies[i] != rc.bodies[0] {
			t.Errorf("attempt %d: webhook-id %q body %q; want the first attempt's id and body", i+1, r.Header.Get("webhook-id"), rc.bodies[i])
		}
		sigs := strings.Fields(r.Header.Get("webhook-signature"))
		if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
			t.Errorf("attempt %d: webhook-signature %q; want one v1 signature per secret", i+1, r.Header.Get("webhook-signature"))
		}
		for _, secret := range []string{hookSecret1, hookSecret2} {
			if _, err := mustKeys(t, secret).Verify(r.Header, []byte(rc.bodies[i]), rg.clk.Now(), 9*time.Hour, time.Minute); err != nil {
				t.Errorf("attempt %d: signature does not verify with one of the secrets: %v", i+1, err)
			}
		}
	}
	if len(rg.q.poisoned) != 1 {
		t.Errorf("poisoned %d; want the event copied to the poison queue after the last attempt", len(rg.q.poisoned))
	}
	if len(rg.rec.fates) != 1 || rg.rec.fates[0].Delivered || rg.rec.fates[0].Attempts != MaxAttempts || rg.rec.fates[0].LastStatus != 500 || rg.rec.fates[0].Host != "127.0.0.1" {
		t.Errorf("fates = %+v; want one CallbackFailed after 6 attempts, last status 500, host only", rg.rec.fates)
	}
	if len(rg.rec.deps) != MaxAttempts {
		t.Errorf("dependencies = %d; want one per attempt", len(rg.rec.deps))
	}
	for _, d := range rg.rec.deps {
		if d.Name != "POST callback" || d.Target != "127.0.0.1" || strings.Contains(d.Data, "/hook") || strings.Contains(d.Data, "s3cret") {
			t.Errorf("dependency %+v; want name POST callback, the host, no path or query", d)
		}
	}
}

func TestDeliveryOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		delivered bool
		retried   bool
		reason    string
	}{
		{"2xx delivers", http.StatusNoContent, true, false, ""},
		{"410 stops at once", http.StatusGone, false, false, "gone"},
		{"redirect is not followed", http.StatusTemporaryRedirect, false, true, ""},
		{"500 is retried", http.StatusInternalServerError, false, true, ""},
		{"429 is retried", http.StatusTooManyRequests, false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tt.status)
			rg := newRig(t, "127.0.0.1")
			rg.n.Completed(context.Background(), completion(rc.URL+"/hook"))
			text, _ := rg.q.take(t)
			if disp, log := rg.d.Handle(context.Background(), text); disp != Done {
				t.Fatalf("Handle = %v %q; want Done", disp, log)
			}
			if rc.elsewhr != 0 {
				t.Errorf("the redirect was followed")
			}
			if got := len(rg.q.enqueued) == 1; got != tt.retried {
				t.Errorf("retry enqueued = %v; want %v", got, tt.retried)
			}
			if len(rg.q.poisoned) != 0 {
				t.Errorf("poisoned after one attempt")
			}
			if tt.retried {
				if len(rg.rec.fates) != 0 {
					t.Errorf("fates = %+v; want none before the last attempt", rg.rec.fates)
				}
				return
			}
			if len(rg.rec.fates) != 1 || rg.rec.fates[0].Delivered != tt.delivered || rg.rec.fates[0].Reason != tt.reason || rg.rec.fates[0].LastStatus != tt.status {
				t.Errorf("fates = %+v; want delivered=%v reason %q status %d", rg.rec.fates, tt.delivered, tt.reason, tt.status)
			}
		})
	}
}

func TestEventIDIsStable(t *testing.T) {
	t.Parallel()
	a := EventID("webhook:0", "INC1", TypeCompleted)
	if a != EventID("webhook:0", "INC1", TypeCompleted) {
		t.Errorf("EventID differs for the same request")
	}
	for _, other := range []string{EventID("entra:x", "INC1", TypeCompleted), EventID("webhook:0", "INC2", TypeCompleted), EventID("webhook:0", "INC1", TypeWatch, "15m")} {
		if other == a {
			t.Errorf("EventID collides across callers, requests or types")
		}
	}
}

func TestUnsignedOrForgedMessagesArePoisoned(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rg := newRig(t, "127.0.0.1")
	rg.n.Completed(context.Background(), completion(rc.URL+"/hook"))
	good, _ := rg.q.take(t)
	forged := strings.Replace(string(good), "/hook", "/evil", 1)
	for _, text := range []string{`{"callback":{"url":"` + rc.URL + `"}}`, "not json", forged} {
		if disp, _ := rg.d.Handle(context.Background(), []byte(text)); disp != Done {
			t.Errorf("Handle(%.40q) = %v; want Done (poisoned)", text, disp)
		}
	}
	if len(rg.q.poisoned) != 3 || len(rc.got) != 0 || len(rg.rec.rej) != 3 {
		t.Errorf("poisoned %d, receiver got %d, rejections %d; want 3, 0, 3", len(rg.q.poisoned), len(rc.got), len(rg.rec.rej))
	}
}

func TestPermitted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr     string
		loopback bool
		want     bool
	}{
		{"93.184.216.34", false, true},
		{"2606:2800:220:1::1", false, true},
		{"10.1.2.3", false, false},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"127.0.0.1", false, false},
		{"169.254.169.254", false, false},
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"::1", false, false},
		{"fd00::1", false, false},
		{"fe80::1", false, false},
		{"::ffff:10.0.0.1", false, false},
		{"::ffff:127.0.0.1", false, false},
		{"64:ff9b::a00:1", false, false},
		{"127.0.0.1", true, true},
		{"::1", true, true},
		{"10.0.0.1", true, false},
		{"93.184.216.34", true, false},
	}
	for _, tt := range tests {
		if got := Permitted(netip.MustParseAddr(tt.addr), tt.loopback); got != tt.want {
			t.Errorf("Permitted(%s, loopback %v) = %v; want %v", tt.addr, tt.loopback, got, tt.want)
		}
	}
}

// TestNamesResolvingInsideAreNeverDialled proves the connect-time guard with an injected resolver:
// a callback host that resolves to a private, link-local or loopback address is refused, and the
// only addresses the dialer ever lets through are loopback ones, for a host allowed as loopback.
func TestNamesResolvingInsideAreNeverDialled(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rc.URL, "http://"))
	var mu sync.Mutex
	var connected []string
	g := &guardedDialer{
		lookup: func(_ context.Context, _, host string) ([]netip.Addr, error) {
			switch host {
			case "private.example.com":
				return []netip.Addr{netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("192.168.0.1")}, nil
			case "metadata.example.com":
				return []netip.Addr{netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00::1")}, nil
			case "rebind.example.com": // a public name answering with this machine
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			case "localhost":
				return []netip.Addr{netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, errors.New("unknown test host")
		},
		connected: func(address string) {
			mu.Lock()
			defer mu.Unlock()
			connected = append(connected, address)
		},
	}
	client := newClient(g)
	for _, host := range []string{"private.example.com", "metadata.example.com", "rebind.example.com"} {
		rg := newRig(t, host)
		rg.d.Client = client
		// https would fail at TLS anyway; http lets the test see that no connection is made at all.
		code, err := rg.d.attempt(context.Background(), Message{URL: "http://" + host + ":" + port + "/hook", EventID: "evt_x", Event: []byte(`{}`)}, time.Now())
		if !errors.Is(err, ErrForbiddenAddress) || code != 0 {
			t.Errorf("attempt to %s = %d, %v; want ErrForbiddenAddress", host, code, err)
		}
		if errorClass(err) != "forbidden_address" {
			t.Errorf("errorClass = %q; want forbidden_address", errorClass(err))
		}
	}
	// An explicitly allowed loopback name reaches loopback only, never its other addresses.
	rg := newRig(t, "localhost")
	rg.d.Client = client
	if code, err := rg.d.attempt(context.Background(), Message{URL: "http://localhost:" + port + "/hook", EventID: "evt_x", Event: []byte(`{}`)}, time.Now()); err != nil || code != 200 {
		t.Fatalf("attempt to localhost = %d, %v; want 200", code, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(connected) != 1 || connected[0] != "127.0.0.1:"+port {
		t.Errorf("connections let through = %q; want only 127.0.0.1:%s", connected, port)
	}
	for _, a := range connected {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("dialled %s: a non-loopback address", a)
		}
	}
}

func TestNoProxyFromTheEnvironment(t *testing.T) {
	t.Parallel()
	tr := NewClient().Transport.(*http.Transport)
	if tr.Proxy != nil {
		u, _ := tr.Proxy(&http.Request{URL: &url.URL{Scheme: "https", Host: "hooks.example.com"}})
		t.Errorf("transport proxy = %v; want none (a proxy would connect past the address check)", u)
	}
}

// TestWatchEvent: the sign-in watch's report becomes one revocation.watch event whose id depends
// on the check (its duration and users), delivered like any other.
func TestWatchEvent(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rg := newRig(t, "127.0.0.1")
	report := WatchReport{URL: rc.URL + "/hook", RequestID: "msg_1", Caller: "webhook:0", Ticket: "INC1", After: "15m",
		Results: []WatchResult{{UPN: "alice@contoso.com", UserID: "3f1c", RevokedAt: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC), Finding: "signed_in_again", SignIns: 2,
			Latest: []byte(`[{"at":"2026-12-05T09:10:00Z","app":"Office","ip":"203.0.113.7","location":"NL","errorCode":0,"interactive":true}]`)}}}
	rg.n.Watch(context.Background(), report)
	text, _ := rg.q.take(t)
	if disp, log := rg.d.Handle(context.Background(), text); disp != Done || len(rc.got) != 1 {
		t.Fatalf("Handle = %v %q, receiver got %d; want one delivery", disp, log, len(rc.got))
	}
	want := `{"type":"revocation.watch","timestamp":"` + rg.clk.Now().UTC().Format(time.RFC3339Nano) + `","data":{"after":"15m","id":"msg_1","results":[{"upn":"alice@contoso.com","userId":"3f1c","revokedAt":"2026-12-05T09:00:00Z","finding":"signed_in_again","signIns":2,"latest":[{"at":"2026-12-05T09:10:00Z","app":"Office","ip":"203.0.113.7","location":"NL","errorCode":0,"interactive":true}]}],"ticket":"INC1"}}`
	if rc.bodies[0] != want {
		t.Errorf("watch event = %s\nwant %s", rc.bodies[0], want)
	}
	if id := rc.got[0].Header.Get("webhook-id"); id != EventID("webhook:0", "msg_1", TypeWatch, "15m", "3f1c/alice@contoso.com") || id == EventID("webhook:0", "msg_1", TypeWatch, "2h", "3f1c/alice@contoso.com") {
		t.Errorf("watch webhook-id = %q; want one per request, duration and users", id)
	}
	if StatusCallbackURL([]byte(`{"id":"x","results":[],"callbackUrl":"https://h.example.com/x"}`)) != "https://h.example.com/x" {
		t.Errorf("StatusCallbackURL does not read the record's callbackUrl")
	}
}

// A request id answered again with other outcomes — a dry run, then the same id live — is another
// revocation.completed event: a receiver that deduplicates on webhook-id must not drop it. The
// same outcome again keeps its id.
func TestCompletedEventIDFollowsTheOutcome(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rg := newRig(t, "127.0.0.1")
	answer := func(status string) {
		rg.n.Completed(context.Background(), Completion{URL: rc.URL + "/hook", RequestID: "INC1", Caller: "webhook:0", HTTPStatus: 200,
			Body: []byte(`{"id":"INC1","status":"` + status + `","results":[{"upn":"alice@contoso.com","status":"` + status + `"}]}`)})
		text, _ := rg.q.take(t)
		if disp, log := rg.d.Handle(context.Background(), text); disp != Done {
			t.Fatalf("Handle = %v %q; want delivered", disp, log)
		}
	}
	answer("dry_run")
	answer("revoked")
	answer("revoked")
	if len(rc.got) != 3 {
		t.Fatalf("receiver got %d events; want 3", len(rc.got))
	}
	dry, live, again := rc.got[0].Header.Get("webhook-id"), rc.got[1].Header.Get("webhook-id"), rc.got[2].Header.Get("webhook-id")
	if dry == live {
		t.Errorf("dry run and live answer of one request share webhook-id %q; want two events", dry)
	}
	if live != again {
		t.Errorf("the same outcome twice has webhook-ids %q and %q; want one", live, again)
	}
}
