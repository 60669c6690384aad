package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/entra-revoke/entra-revoke/internal/entraauth/entratest"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// Shared state across instances (docs/state.md): two or more handler processes sharing one real
// Azurite — its queue and table services — as the instances of a Function App share its storage
// account. Each subtest uses its own queue and state table, so that they can share one Azurite.

// sharedEnv is a Function App's settings with storage: the queue and table of one test.
func sharedEnv(t *testing.T, az testenv.Azurite, id *graphtest.Identity, g *graphtest.Graph, name string) map[string]string {
	t.Helper()
	env := handlerEnv(t, id, g)
	env["AzureWebJobsStorage"] = az.ConnectionString
	env["REVOKE_QUEUE"] = "q-" + name
	env["STATE_TABLE"] = "t" + strings.ReplaceAll(name, "-", "")
	return env
}

// instances starts n handlers with the same settings: the instances of one Function App.
func instances(t *testing.T, env map[string]string, n int) []*proc {
	t.Helper()
	ps := make([]*proc, n)
	for i := range ps {
		e := make(map[string]string, len(env))
		for k, v := range env {
			e[k] = v
		}
		ps[i] = startHandler(t, e)
	}
	return ps
}

// health reads GET /api/health's state.
func healthState(t *testing.T, p *proc) string {
	t.Helper()
	resp, err := http.Get(p.URL + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		State string `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.State
}

// get fetches url and returns status, headers and body.
func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// deliver takes the next message off queue and hands it to p as the host would, on the given
// delivery; it returns the host's reply status and the message, for redeliveries.
func deliver(t *testing.T, p *proc, conn, queue string, dequeueCount int) (int, []byte, string) {
	t.Helper()
	text, qid := dequeue(t, conn, queue)
	return redeliver(t, p, text, qid, dequeueCount), text, qid
}

// redeliver hands a message to p again.
func redeliver(t *testing.T, p *proc, text []byte, qid string, dequeueCount int) int {
	t.Helper()
	status, _, b := post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", text, qid, dequeueCount))
	if !strings.Contains(string(b), `"Outputs":{}`) {
		t.Errorf("queue reply %d %s; want the host's reply shape", status, b)
	}
	return status
}

// goPost signs body as msgID with the suite's secret (in Go: many requests) and posts it.
func goPost(t *testing.T, p *proc, msgID string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	return post(t, p.URL+"/api/revoke", mustGoSigned(t, msgID, body), body)
}

// longUsers are n users with UPNs of the longest form Entra allows (64 + 1 + 48 characters).
func longUsers(g *graphtest.Graph, prefix string, n int) []string {
	users := make([]string, n)
	domain := strings.Repeat("d", 48-len(".contoso.com")) + ".contoso.com"
	for i := range users {
		local := fmt.Sprintf("%s%03d.", prefix, i)
		local += strings.Repeat("x", 64-len(local))
		users[i] = local + "@" + domain
		g.AddUser(graphtest.User{ID: fmt.Sprintf("00000000-0000-4000-9000-%06d%06d", len(prefix), i), UPN: users[i]})
	}
	return users
}

// tableEntities counts the entities of a state table.
func tableEntities(t *testing.T, az testenv.Azurite, table string) int {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	pager := svc.NewClient(table).NewListEntitiesPager(nil)
	n := 0
	for pager.More() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		page, err := pager.NextPage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("list %s: %v", table, err)
		}
		n += len(page.Entities)
	}
	return n
}

func TestSharedState(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)

	t.Run("replay on another instance and after a restart", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "replay")
		ps := instances(t, env, 2)
		if s := healthState(t, ps[0]); s != "table" {
			t.Errorf("health state = %q; want table", s)
		}
		body := []byte(`{"upns":["alice@contoso.com","o'brien@contoso.com"],"ticket":"INC7"}`)
		status, _, first := post(t, ps[0].URL+"/api/revoke", signedHeaders(t, "msg_state_replay", body), body)
		if status != http.StatusOK {
			t.Fatalf("first = %d %s; want 200", status, first)
		}
		status, hdr, again := post(t, ps[1].URL+"/api/revoke", signedHeaders(t, "msg_state_replay", body), body)
		if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || string(again) != string(first) {
			t.Errorf("on the other instance = %d replayed %q %s; want the first response replayed", status, hdr.Get("Idempotent-Replayed"), again)
		}
		ps[0].terminate(t)
		if code := ps[0].exitCode(t, 15*time.Second); code != 0 {
			t.Errorf("SIGTERM exit code = %d", code)
		}
		later := instances(t, env, 1)[0]
		status, hdr, third := post(t, later.URL+"/api/revoke", signedHeaders(t, "msg_state_replay", body), body)
		if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || string(third) != string(first) {
			t.Errorf("on an instance started later = %d replayed %q %s; want the first response replayed", status, hdr.Get("Idempotent-Replayed"), third)
		}
		mustOnce(t, g, 1, "alice@contoso.com", "o'brien@contoso.com")
	})

	t.Run("another body is a conflict on the other instance", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, sharedEnv(t, az, id, g, "conflict"), 2)
		if status, _, b := goPost(t, ps[0], "msg_state_conflict", []byte(`{"upn":"alice@contoso.com"}`)); status != http.StatusOK {
			t.Fatalf("first = %d %s", status, b)
		}
		status, _, b := goPost(t, ps[1], "msg_state_conflict", []byte(`{"upn":"o'brien@contoso.com"}`))
		if acc := mustAccount(t, "other body", answer{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: b}); status != http.StatusConflict || acc.code != "conflict" {
			t.Errorf("same id, other body, other instance = %d %s; want 409 conflict", status, b)
		}
		mustOnce(t, g, 0, "o'brien@contoso.com")
	})

	t.Run("concurrent duplicates on two instances call Graph once", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, sharedEnv(t, az, id, g, "dup"), 2)
		g.Script("alice@contoso.com", graphtest.Response{Method: http.MethodPost, Delay: 2 * time.Second})
		body := []byte(`{"upn":"alice@contoso.com"}`)
		h := mustGoSigned(t, "msg_state_dup", body)
		answers := make([]answer, 2)
		var wg sync.WaitGroup
		wg.Go(func() { answers[0] = send(ps[0].URL+"/api/revoke", h, body, time.Minute) })
		// Once its revocation has reached Graph, the first holds the claim.
		waitFor(t, 15*time.Second, "the first request to reach Graph", func() bool { return revokeReached(g, "alice@contoso.com") })
		answers[1] = send(ps[1].URL+"/api/revoke", h, body, time.Minute)
		wg.Wait()
		first, second := mustAccount(t, "first", answers[0]), mustAccount(t, "duplicate", answers[1])
		if first.status != http.StatusOK {
			t.Errorf("first = %v; want 200", first)
		}
		if second.status != http.StatusConflict || second.code != "in_progress" || answers[1].header.Get("Retry-After") == "" {
			t.Errorf("duplicate on the other instance = %v Retry-After %q; want 409 in_progress with Retry-After", second, answers[1].header.Get("Retry-After"))
		}
		mustOnce(t, g, 1, "alice@contoso.com")
		// Once the first has answered, the duplicate is a replay on either instance.
		status, hdr, _ := goPost(t, ps[1], "msg_state_dup", body)
		if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("after the first answered = %d replayed %q; want a replay", status, hdr.Get("Idempotent-Replayed"))
		}
		mustOnce(t, g, 1, "alice@contoso.com")
	})

	t.Run("an instance killed mid-request leaves a claim that expires", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, sharedEnv(t, az, id, g, "kill"), 2)
		g.Script("alice@contoso.com", graphtest.Response{Method: http.MethodPost, Delay: time.Minute})
		body := []byte(`{"upn":"alice@contoso.com"}`)
		h := mustGoSigned(t, "msg_state_kill", body)
		go send(ps[0].URL+"/api/revoke", h, body, 2*time.Minute)
		waitFor(t, 15*time.Second, "the first attempt to reach Graph", func() bool { return revokeReached(g, "alice@contoso.com") })
		if err := ps[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		a := send(ps[1].URL+"/api/revoke", h, body, time.Minute)
		acc := mustAccount(t, "retry while the dead claim holds", a)
		wait, _ := strconv.Atoi(a.header.Get("Retry-After"))
		if acc.status != http.StatusConflict || acc.code != "in_progress" || wait < 1 || wait > 40 {
			t.Fatalf("retry on the other instance = %v Retry-After %q; want 409 in_progress until the claim expires", acc, a.header.Get("Retry-After"))
		}
		var final accounted
		waitFor(t, time.Until(killed.Add(time.Duration(wait)*time.Second))+30*time.Second, "the claim to expire", func() bool {
			final = mustAccount(t, "retry after the claim expired", send(ps[1].URL+"/api/revoke", h, body, time.Minute))
			return final.status != http.StatusConflict
		})
		if final.status != http.StatusOK || final.users[0] != "revoked" {
			t.Errorf("retry after the claim expired = %v; want 200 revoked", final)
		}
	})

	t.Run("rate guard across two instances", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "rate")
		env["MAX_REVOCATIONS_PER_MINUTE"] = "4"
		ps := instances(t, env, 2)
		users := faultUsers(g, "rate", 10)
		revoked, limited := 0, 0
		for i, u := range users {
			acc := mustAccount(t, u, send(ps[i%2].URL+"/api/revoke", mustGoSigned(t, "msg_rate_"+strconv.Itoa(i), revokeBody(u)), revokeBody(u), time.Minute))
			switch {
			case acc.status == http.StatusOK:
				revoked++
			case acc.status == http.StatusTooManyRequests && acc.code == "rate_limited":
				limited++
			default:
				t.Errorf("request %d = %v; want 200 or 429 rate_limited", i, acc)
			}
		}
		// Four a minute across both instances, not four on each.
		if revoked > 4 || revoked < 1 || revoked+limited != len(users) {
			t.Errorf("%d revoked, %d rate limited of %d; want at most 4 revoked across both instances", revoked, limited, len(users))
		}
		total := 0
		for _, u := range users {
			total += g.Revocations(u)
		}
		if total != revoked {
			t.Errorf("Graph revoked %d users; want %d, as answered", total, revoked)
		}
	})

	t.Run("cleanup deletes what has expired", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "cleanup")
		env["IDEMPOTENCY_TTL"] = "2s"
		p := instances(t, env, 1)[0]
		for i := range 3 {
			if status, _, b := goPost(t, p, "msg_cleanup_"+strconv.Itoa(i), []byte(`{"upn":"alice@contoso.com"}`)); status != http.StatusOK {
				t.Fatalf("request %d = %d %s", i, status, b)
			}
		}
		before := tableEntities(t, az, env["STATE_TABLE"])
		if before < 3 {
			t.Fatalf("state table holds %d entities; want the three answers", before)
		}
		// The timer fires until the answers have expired (IDEMPOTENCY_TTL after they were written)
		// and a run deletes them; every run must answer the host.
		after := before
		if !testenv.Eventually(30*time.Second, func() bool {
			status, _, b := post(t, p.URL+"/state-cleanup", http.Header{"Content-Type": {"application/json"}}, testenv.TimerInvocation("state-cleanup", time.Now()))
			if status != http.StatusOK || !strings.Contains(string(b), `"ReturnValue":null`) || !strings.Contains(string(b), "deleted") {
				t.Fatalf("state-cleanup = %d %s; want 200 with the host's reply", status, b)
			}
			after = tableEntities(t, az, env["STATE_TABLE"])
			return after <= before-3
		}) {
			t.Errorf("state table %d entities before cleanup, %d after; want the three expired answers gone", before, after)
		}
	})

	t.Run("a hundred long users and a long reason fit", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, sharedEnv(t, az, id, g, "hundred"), 2)
		users := longUsers(g, "big", 100)
		body, _ := json.Marshal(map[string]any{"upns": users, "reason": strings.Repeat("Compromised during incident 42; ", 32)[:1024], "ticket": "SIR-42"})
		status, _, first := goPost(t, ps[0], "msg_state_hundred", body)
		if status != http.StatusOK || len(decode(t, first).Results) != 100 {
			t.Fatalf("100 users = %d %.300s; want 200 with 100 results", status, first)
		}
		status, hdr, again := goPost(t, ps[1], "msg_state_hundred", body)
		if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || string(again) != string(first) {
			t.Errorf("replay of 100 users on the other instance = %d replayed %q, %d bytes (first %d); want the whole first response", status, hdr.Get("Idempotent-Replayed"), len(again), len(first))
		}
		mustOnce(t, g, 1, users...)
	})
}

// The table going away mid-run costs deduplication across instances, never a revocation: requests
// are answered within their budget from the instance's memory, and health says degraded.
func TestStateTableOutage(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	env := sharedEnv(t, az, id, g, "outage")
	p := instances(t, env, 1)[0]
	if status, _, b := goPost(t, p, "msg_outage_1", []byte(`{"upn":"alice@contoso.com"}`)); status != http.StatusOK {
		t.Fatalf("before the outage = %d %s", status, b)
	}
	az.StopTable()

	start := time.Now()
	a := send(p.URL+"/api/revoke", mustGoSigned(t, "msg_outage_2", []byte(`{"upn":"o'brien@contoso.com"}`)), []byte(`{"upn":"o'brien@contoso.com"}`), time.Minute)
	took := time.Since(start)
	if acc := mustAccount(t, "during the outage", a); acc.status != http.StatusOK || acc.users[0] != "revoked" {
		t.Errorf("during the outage = %v; want 200 revoked", acc)
	}
	if took > 25*time.Second {
		t.Errorf("answered in %v; want within the request budget of 25s", took)
	}
	mustOnce(t, g, 1, "o'brien@contoso.com")
	if s := healthState(t, p); s != "degraded" {
		t.Errorf("health state = %q; want degraded", s)
	}
	// Deferral still works: the queue service is up.
	body := []byte(`{"upn":"` + guest + `"}`)
	h := mustGoSigned(t, "msg_outage_3", body)
	h.Set("Prefer", "respond-async")
	if acc := mustAccount(t, "respond-async during the outage", send(p.URL+"/api/revoke", h, body, time.Minute)); acc.status != http.StatusAccepted {
		t.Errorf("respond-async during the outage = %v; want 202", acc)
	}
	// The instance's memory replays what it answered during the outage.
	status, hdr, _ := goPost(t, p, "msg_outage_2", []byte(`{"upn":"o'brien@contoso.com"}`))
	if status != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeat during the outage = %d replayed %q; want a replay from memory", status, hdr.Get("Idempotent-Replayed"))
	}
	if got := linesSoon(p.Stdout.String, 1, "state fallback"); len(got) == 0 {
		t.Errorf("no state fallback recorded on stdout:\n%s", p.Stdout)
	}
}

// waitFor polls cond until it holds and fails the test once within has passed.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, within, what, cond)
}

// revokeReached reports whether Graph has been asked to revoke upn's sessions.
func revokeReached(g *graphtest.Graph, upn string) bool {
	for _, r := range g.Requests() {
		if r.Method == http.MethodPost && r.User == upn {
			return true
		}
	}
	return false
}

// linesSoon is lines over out() once it holds want lines with the fragments, or after a few
// seconds: a child's stdout reaches the test through a pipe, a moment after its answer.
func linesSoon(out func() string, want int, fragments ...string) []string {
	var got []string
	testenv.Eventually(5*time.Second, func() bool {
		got = lines(out(), fragments...)
		return len(got) >= want
	})
	return got
}

// A deployment whose callers all use Entra tokens (no WEBHOOK_SECRETS) defers with QUEUE_SECRETS:
// a throttled revocation is answered 202 queued, the queue trigger finishes it, and the status
// link — on another instance too — ends final.
func TestEntraCallersAloneDefer(t *testing.T) {
	t.Parallel()
	const tenantID, api, logicApp = "72f988bf-86f1-41af-91ab-2d7cd011db47", "api://entra-revoke", "5f3c1d2e-0000-4000-8000-000000000002"
	az := testenv.StartAzurite(t)
	iss := entratest.NewIssuer(t, tenantID)
	id, g := tenant(t)
	env := sharedEnv(t, az, id, g, "entra-defer")
	delete(env, "WEBHOOK_SECRETS")
	env["QUEUE_SECRETS"] = "whsec_cXVldWUtc2VjcmV0LW9mLXRoZS10ZXN0cy0wMTIz" // 30 bytes
	env["ENTRA_TENANT_ID"] = tenantID
	env["ENTRA_AUDIENCE"] = api
	env["ENTRA_OPENID_CONFIG_URL"] = iss.ConfigURL()
	ps := instances(t, env, 2)

	resp, err := http.Get(ps[0].URL + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Queue bool `json:"queue"`
		Auth  struct {
			Webhook bool `json:"webhook"`
		} `json:"auth"`
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || !h.Queue || h.Auth.Webhook {
		t.Fatalf("health = %+v (%v); want queue true with no webhook callers", h, err)
	}

	const user = "alice@contoso.com"
	g.Script(user, graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"),
		graphtest.TooManyRequests("1"), graphtest.TooManyRequests("1"))
	body := []byte(`{"upn":"` + user + `"}`)
	var a answer
	waitFor(t, 15*time.Second, "Entra's keys to load", func() bool {
		hdr := http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {"incident-9-entity-1"},
			"Authorization": {"Bearer " + iss.Token(entratest.V2, api, logicApp, "Sessions.Revoke")}}
		a = send(ps[0].URL+"/api/revoke", hdr, body, time.Minute)
		return a.status != http.StatusUnauthorized
	})
	if acc := mustAccount(t, "throttled Entra caller", a); acc.status != http.StatusAccepted || acc.users[0] != "queued" {
		t.Fatalf("throttled revocation for an Entra caller = %v; want 202 queued", acc)
	}
	link := a.header.Get("Location")
	if link == "" {
		t.Fatal("202 without a status link")
	}
	msgs := drainQueue(t, az.ConnectionString, env["REVOKE_QUEUE"])
	if len(msgs) != 1 {
		t.Fatalf("queue holds %d messages; want 1", len(msgs))
	}
	// The other instance finishes the message; both instances answer the link with the outcome.
	mustDeliver(t, ps[1], msgs[0], 1)
	mustOnce(t, g, 1, user)
	for i, p := range ps {
		u := strings.Replace(link, ps[0].URL, p.URL, 1)
		status, _, b := get(t, u)
		if status != http.StatusOK || !strings.Contains(string(b), `"status":"revoked"`) {
			t.Errorf("status link on instance %d = %d %s; want 200 revoked", i, status, b)
		}
	}
	if got := lines(ps[1].Stdout.String(), "entra:"+logicApp, "revoked"); len(got) == 0 {
		t.Errorf("the queue's outcome does not name the original Entra caller:\n%s", ps[1].Stdout)
	}
}

// withTableEndpoint returns the connection string conn with its TableEndpoint replaced.
func withTableEndpoint(conn, endpoint string) string {
	var parts []string
	for p := range strings.SplitSeq(conn, ";") {
		if p != "" && !strings.HasPrefix(p, "TableEndpoint=") {
			parts = append(parts, p)
		}
	}
	return strings.Join(append(parts, "TableEndpoint="+endpoint), ";") + ";"
}

// A status link made on an instance that cannot reach the table (a fault proxy between it and
// the table) is finished by another instance's queue trigger, which rebuilds the record from the
// signed message; every instance then answers it, and the degraded instance answers what it
// cannot read with 202 unavailable rather than 404.
func TestStatusLinksAnyInstanceCanFinish(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	users := faultUsers(g, "rebuild", 3)
	env := sharedEnv(t, az, id, g, "status-rebuild")
	b := instances(t, env, 1)[0]
	px := testenv.StartFaultProxy(t, testenv.HostPort(az.TableEndpoint))
	envA := maps.Clone(env)
	envA["AzureWebJobsStorage"] = withTableEndpoint(az.ConnectionString, px.TableEndpoint())
	a := startHandler(t, envA)
	if s := healthState(t, a); s != "table" {
		t.Fatalf("instance A at start = %q; want table", s)
	}
	// A handle B made while the table answered, for A to fail to read later.
	body := revokeBody(users[2])
	h := mustGoSigned(t, "msg_status_b", body)
	h.Set("Prefer", "respond-async")
	onB := send(b.URL+"/api/revoke", h, body, time.Minute)
	if acc := mustAccount(t, "respond-async on B", onB); acc.status != http.StatusAccepted {
		t.Fatalf("respond-async on B = %v; want 202", acc)
	}

	px.Set("down")
	body = revokeBody(users[0], users[1])
	h = mustGoSigned(t, "msg_status_a", body)
	h.Set("Prefer", "respond-async")
	onA := send(a.URL+"/api/revoke", h, body, time.Minute)
	if acc := mustAccount(t, "respond-async on A, its table down", onA); acc.status != http.StatusAccepted {
		t.Fatalf("respond-async on A with its table down = %v; want 202 queued", acc)
	}
	waitFor(t, 15*time.Second, "A to report degraded", func() bool { return healthState(t, a) == "degraded" })
	linkA := onA.header.Get("Location")
	pathA := linkA[strings.Index(linkA, "/api/"):]
	pathB := onB.header.Get("Location")[strings.Index(onB.header.Get("Location"), "/api/"):]

	// A cannot read B's status: not 404, which a poller takes for final.
	status, hdr, got := get(t, a.URL+pathB)
	if status != http.StatusAccepted || !strings.Contains(string(got), `"unavailable"`) || hdr.Get("Retry-After") == "" || hdr.Get("Location") == "" {
		t.Errorf("A reading a status only the table has = %d %v %s; want 202 unavailable with Retry-After and Location", status, hdr, got)
	}

	// B's queue trigger finishes both messages; A's record, never in the table, is rebuilt.
	msgs := drainQueue(t, az.ConnectionString, env["REVOKE_QUEUE"])
	if len(msgs) != 2 {
		t.Fatalf("queue holds %d messages; want 2", len(msgs))
	}
	for i, m := range msgs {
		mustDeliver(t, b, m, 100+i)
	}
	mustOnce(t, g, 1, users...)
	for _, path := range []string{pathA, pathB} {
		if status, _, got := get(t, b.URL+path); status != http.StatusOK || strings.Contains(string(got), `"queued"`) {
			t.Errorf("B answering %s = %d %s; want 200, every user revoked", path, status, got)
		}
	}

	// The table comes back: A notices without traffic, and answers both links from the table.
	px.Set("up")
	waitFor(t, 20*time.Second, "A to return to the table", func() bool { return healthState(t, a) == "table" })
	for _, path := range []string{pathA, pathB} {
		if status, _, got := get(t, a.URL+path); status != http.StatusOK {
			t.Errorf("A answering %s after the table came back = %d %s; want 200 final", path, status, got)
		}
	}
}

// A blip between one instance and the table is not an outage: after a refused connection, and
// with the table answering slowly, the instance still takes no second lease on a request id
// another instance is working on, and stays on the table.
func TestTableBlipsTakeNoSecondLease(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	users := faultUsers(g, "blip", 1)
	env := sharedEnv(t, az, id, g, "blips")
	b := instances(t, env, 1)[0]
	px := testenv.StartFaultProxy(t, testenv.HostPort(az.TableEndpoint))
	envA := maps.Clone(env)
	envA["AzureWebJobsStorage"] = withTableEndpoint(az.ConnectionString, px.TableEndpoint())
	a := startHandler(t, envA)

	// B works on the request for a while (Graph is slow for this user).
	g.Script(users[0], graphtest.Response{Method: http.MethodPost, Delay: 8 * time.Second})
	body := revokeBody(users[0])
	h := mustGoSigned(t, "msg_blip_held", body)
	first := make(chan answer, 1)
	go func() { first <- send(b.URL+"/api/revoke", h, body, time.Minute) }()
	waitFor(t, 15*time.Second, "B's attempt to reach Graph", func() bool { return g.Revocations(users[0]) > 0 || len(g.Requests()) > 0 })

	for _, blip := range []struct {
		name string
		set  func()
	}{
		{"one refused connection", func() { px.RefuseNext(1) }},
		{"two refused connections", func() { px.RefuseNext(2) }},
		{"600 ms latency", func() { px.Set("up"); px.SetLatency(600 * time.Millisecond) }},
	} {
		blip.set()
		acc := mustAccount(t, blip.name, send(a.URL+"/api/revoke", h, body, time.Minute))
		if acc.status != http.StatusConflict || acc.code != "in_progress" {
			t.Errorf("%s: the same request on A while B works on it = %v; want 409 in_progress (no second lease)", blip.name, acc)
		}
		if s := healthState(t, a); s != "table" {
			t.Errorf("%s: A's health state = %q; want table", blip.name, s)
		}
	}
	if acc := mustAccount(t, "B's answer", <-first); acc.status != http.StatusOK {
		t.Errorf("B's answer = %v; want 200", acc)
	}
	mustOnce(t, g, 1, users[0])
	if got := lines(a.Stdout.String(), "state fallback"); len(got) != 0 {
		t.Errorf("A recorded a state fallback for blips:\n%s", strings.Join(got, "\n"))
	}
}
