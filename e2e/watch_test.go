package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// The sign-in watch, end to end: a revocation answers with accessUntil and a status link and
// schedules its checks on a real Azurite queue; a check delivered to /revoke-watch reads the Graph
// fake's sign-in log and writes its finding to the status record, an event and a log line.

const roleAudit = "AuditLog.Read.All"

// watchUser is a revoked user whose check a test delivers.
type watchUser struct {
	upn, id   string
	requestID string
	handle    string
	link      string
	revokedAt time.Time
}

// watchEnv is a Function App with the watch on, sharing Azurite's queues and table.
func watchEnv(t *testing.T, az testenv.Azurite, id *graphtest.Identity, g *graphtest.Graph, name string) map[string]string {
	t.Helper()
	id.SetRoles([]string{roleRevoke, roleRead, roleAudit})
	env := sharedEnv(t, az, id, g, name)
	env["WATCH_AFTER"] = "15m,2h"
	env["WATCH_QUEUE"] = "w-" + name
	return env
}

// mustWatchedRevoke revokes a new user of g by UPN (nothing looks the user up: the watch must)
// and checks the answer: 200, accessUntil, a statusUrl and no Location.
func mustWatchedRevoke(t *testing.T, p *proc, g *graphtest.Graph, n int, name string) watchUser {
	t.Helper()
	u := watchUser{
		upn:       fmt.Sprintf("%s%d@contoso.com", name, n),
		id:        fmt.Sprintf("0b0c0d0e-%04d-4000-8000-%012d", n, len(name)),
		requestID: fmt.Sprintf("msg_watch_%s_%d", name, n),
	}
	g.AddUser(graphtest.User{ID: u.id, UPN: u.upn})
	body := []byte(`{"upn":"` + u.upn + `","ticket":"INC-W` + fmt.Sprint(n) + `"}`)
	status, hdr, b := post(t, p.URL+"/api/revoke", mustGoSigned(t, u.requestID, body), body)
	var res struct {
		StatusURL string `json:"statusUrl"`
		Results   []struct {
			Status      string `json:"status"`
			RevokedAt   string `json:"revokedAt"`
			AccessUntil string `json:"accessUntil"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil || status != http.StatusOK || len(res.Results) != 1 {
		t.Fatalf("revoke %s = %d %s; want 200", u.upn, status, b)
	}
	r := res.Results[0]
	var err error
	u.revokedAt, err = time.Parse(time.RFC3339, r.RevokedAt)
	until, uerr := time.Parse(time.RFC3339, r.AccessUntil)
	if err != nil || uerr != nil || until.Sub(u.revokedAt) != 90*time.Minute {
		t.Errorf("revoked %s at %q, accessUntil %q; want revokedAt + 90 minutes", u.upn, r.RevokedAt, r.AccessUntil)
	}
	if res.StatusURL == "" || hdr.Get("Location") != "" {
		t.Errorf("watched revoke: statusUrl %q Location %q; want a status link in the body only (the answer is final)", res.StatusURL, hdr.Get("Location"))
	}
	u.link = res.StatusURL
	u.handle = res.StatusURL[strings.LastIndex(res.StatusURL, "/")+1:]
	return u
}

// checkText is a check message as the handler writes one, signed by the independent npm package.
func checkText(t *testing.T, u watchUser, after string, signedAt time.Time) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"check": map[string]any{
		"requestId": u.requestID, "caller": "webhook:0", "statusHandle": u.handle, "ticket": nil,
		"upn": u.upn, "userId": u.id, "revokedAt": u.revokedAt.UTC().Format(time.RFC3339), "after": after,
	}})
	h := testenv.NodeSign(t, secret, "msg_check_"+u.requestID+"_"+after, signedAt, body)
	text, _ := json.Marshal(map[string]string{
		"webhook-id": h.Get("webhook-id"), "webhook-timestamp": h.Get("webhook-timestamp"),
		"webhook-signature": h.Get("webhook-signature"), "body": string(body),
	})
	return text
}

// deliverCheck hands a check message to /revoke-watch as the host does.
func deliverCheck(t *testing.T, p *proc, text []byte, qid string, dequeueCount int) (int, string) {
	t.Helper()
	status, _, b := post(t, p.URL+"/revoke-watch", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-watch", text, qid, dequeueCount))
	if !strings.Contains(string(b), `"Outputs":{}`) {
		t.Errorf("watch reply %d %s; want the host's reply shape", status, b)
	}
	return status, string(b)
}

// watchEntry is one entry of a status record's watch array.
type watchEntry struct {
	After     string `json:"after"`
	CheckedAt string `json:"checkedAt"`
	Finding   string `json:"finding"`
	SignIns   int    `json:"signIns"`
	Reason    string `json:"reason"`
	Latest    []struct {
		At          string `json:"at"`
		App         string `json:"app"`
		IP          string `json:"ip"`
		Location    string `json:"location"`
		ErrorCode   int    `json:"errorCode"`
		Interactive bool   `json:"interactive"`
	} `json:"latest"`
}

// mustWatch reads the user's watch entries from the status link, on instance p.
func mustWatch(t *testing.T, p *proc, u watchUser) []watchEntry {
	t.Helper()
	status, _, b := get(t, on(t, p, u.link))
	var res struct {
		Results []struct {
			Status string       `json:"status"`
			Watch  []watchEntry `json:"watch"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil || status != http.StatusOK || len(res.Results) != 1 || res.Results[0].Status != "revoked" {
		t.Fatalf("status link = %d %s; want 200 with the revoked user", status, b)
	}
	return res.Results[0].Watch
}

func queueCount(t *testing.T, conn, queue string) int {
	t.Helper()
	svc, err := azqueue.NewServiceClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	props, err := svc.NewQueueClient(queue).GetProperties(ctx, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return int(*props.ApproximateMessagesCount)
}

func TestWatch(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)

	t.Run("every finding and reason, in the status, an event and a log line", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ing := testenv.NewIngestion(t)
		env := watchEnv(t, az, id, g, "findings")
		env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = ing.ConnectionString()
		p := startHandler(t, env)

		tests := []struct {
			name        string
			signIns     func(u watchUser) []graphtest.SignIn
			script      []graphtest.Response
			want        string
			reason      string
			wantLatest0 int // errorCode of latest[0], -1 for none
		}{
			{name: "signed in again", want: "signed_in_again", wantLatest0: 0, signIns: func(u watchUser) []graphtest.SignIn {
				return []graphtest.SignIn{
					{UserID: u.id, Created: u.revokedAt.Add(3 * time.Minute), App: "Outlook", IP: "203.0.113.9", City: "Lagos", Country: "NG", ErrorCode: 50126, Interactive: true},
					{UserID: u.id, Created: u.revokedAt.Add(2 * time.Minute), App: "Office 365 Exchange Online", IP: "203.0.113.7", City: "Lagos", Country: "NG", ErrorCode: 0, Interactive: true},
				}
			}},
			{name: "reuse blocked", want: "reuse_blocked", wantLatest0: 50133, signIns: func(u watchUser) []graphtest.SignIn {
				return []graphtest.SignIn{
					{UserID: u.id, Created: u.revokedAt.Add(time.Minute), App: "Teams", ErrorCode: 50133},
					{UserID: u.id, Created: u.revokedAt.Add(-time.Minute), App: "before the revocation", ErrorCode: 0},
				}
			}},
			{name: "attempts failed", want: "attempts_failed", wantLatest0: 50126, signIns: func(u watchUser) []graphtest.SignIn {
				return []graphtest.SignIn{{UserID: u.id, Created: u.revokedAt.Add(time.Minute), App: "Azure Portal", ErrorCode: 50126, Interactive: true}}
			}},
			{name: "clean", want: "clean", wantLatest0: -1},
			{name: "no permission", want: "unavailable", reason: "missing_permission", wantLatest0: -1, script: []graphtest.Response{graphtest.Forbidden()}},
			{name: "no premium licence", want: "unavailable", reason: "no_premium_license", wantLatest0: -1, script: []graphtest.Response{graphtest.NoPremiumLicense()}},
			{name: "user gone", want: "unavailable", reason: "user_gone", wantLatest0: -1, script: []graphtest.Response{{Status: http.StatusNotFound}}},
			{name: "throttled then clean", want: "clean", wantLatest0: -1, script: []graphtest.Response{graphtest.TooManyRequests("1")}},
		}
		for i, tt := range tests {
			u := mustWatchedRevoke(t, p, g, i, "find")
			if tt.signIns != nil {
				g.AddSignIns(tt.signIns(u)...)
			}
			g.ScriptSignIns(tt.script...)
			before := len(g.SignInRequests())
			status, reply := deliverCheck(t, p, checkText(t, u, "15m", time.Now()), "q-find-"+fmt.Sprint(i), 1)
			if status != http.StatusOK {
				t.Errorf("%s: delivery = %d %s; want 200", tt.name, status, reply)
				continue
			}
			ws := mustWatch(t, p, u)
			if len(ws) != 1 || ws[0].Finding != tt.want || ws[0].Reason != tt.reason || ws[0].After != "15m" {
				t.Errorf("%s: watch = %+v; want one 15m entry %s %q", tt.name, ws, tt.want, tt.reason)
				continue
			}
			if tt.wantLatest0 >= 0 && (len(ws[0].Latest) == 0 || ws[0].Latest[0].ErrorCode != tt.wantLatest0) {
				t.Errorf("%s: latest = %+v; want errorCode %d first", tt.name, ws[0].Latest, tt.wantLatest0)
			}
			if tt.wantLatest0 < 0 && len(ws[0].Latest) != 0 {
				t.Errorf("%s: latest = %+v; want none", tt.name, ws[0].Latest)
			}
			reqs := g.SignInRequests()[before:]
			if tt.name == "throttled then clean" && len(reqs) != 2 {
				t.Errorf("%s: %d sign-in requests; want 2 (the 429, then after Retry-After)", tt.name, len(reqs))
			}
			if len(reqs) > 0 && reqs[0].Query.Get("$filter") != "userId eq '"+u.id+"' and createdDateTime ge "+u.revokedAt.UTC().Format(time.RFC3339) {
				t.Errorf("%s: $filter = %q", tt.name, reqs[0].Query.Get("$filter"))
			}
			line := lines(p.Stdout.String(), `"event":"RevocationWatch"`, `"requestId":"`+u.requestID+`"`)
			if len(line) != 1 || !strings.Contains(line[0], `"finding":"`+tt.want+`"`) {
				t.Errorf("%s: log lines %q; want one RevocationWatch line with the finding", tt.name, line)
			}
			if tt.want == "signed_in_again" && (len(line) != 1 || !strings.Contains(line[0], `"level":"WARN"`) || !strings.Contains(line[0], `"latestIp":"203.0.113.7"`)) {
				t.Errorf("signed in again: log line %q; want level WARN with the successful sign-in's IP", line)
			}
		}
		// The successful sign-in comes first in latest, before a newer refused one.
		waitUntil(t, "RevocationWatch events ingested", func() bool { return ing.Has("EventData:RevocationWatch") })
		for _, leak := range []string{"corr-", "device-", "LAPTOP-1"} {
			if strings.Contains(p.Stdout.String(), leak) {
				t.Errorf("stdout carries %q from the sign-in log; never device or correlation details", leak)
			}
		}
	})

	t.Run("failed deliveries retry; the last records unavailable failed", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		p := startHandler(t, watchEnv(t, az, id, g, "failed"))
		u := mustWatchedRevoke(t, p, g, 1, "fail")
		text := checkText(t, u, "15m", time.Now())
		for n := 1; n <= 5; n++ {
			g.ScriptSignIns(graphtest.Response{Status: http.StatusInternalServerError})
			status, reply := deliverCheck(t, p, text, "q-fail", n)
			if want := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[n == 5]; status != want {
				t.Errorf("delivery %d = %d %s; want %d", n, status, reply, want)
			}
			if ws := mustWatch(t, p, u); (n < 5 && len(ws) != 0) || (n == 5 && (len(ws) != 1 || ws[0].Finding != "unavailable" || ws[0].Reason != "failed")) {
				t.Errorf("after delivery %d: watch = %+v", n, ws)
			}
		}
	})

	t.Run("scheduled on the watch queue, hidden until due", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := watchEnv(t, az, id, g, "sched")
		p := startHandler(t, env)
		mustWatchedRevoke(t, p, g, 1, "sched")
		if n := queueCount(t, az.ConnectionString, env["WATCH_QUEUE"]); n != 2 {
			t.Errorf("watch queue holds %d messages; want 2 (15m and 2h)", n)
		}
		if msgs := drainQueue(t, az.ConnectionString, env["WATCH_QUEUE"]); len(msgs) != 0 {
			t.Errorf("dequeued %d checks at once; want none visible before they are due", len(msgs))
		}
		// A dry run schedules nothing and gets no status link.
		body := []byte(`{"upn":"alice@contoso.com","dryRun":true}`)
		_, _, b := post(t, p.URL+"/api/revoke", mustGoSigned(t, "msg_watch_dry", body), body)
		if strings.Contains(string(b), "statusUrl") || queueCount(t, az.ConnectionString, env["WATCH_QUEUE"]) != 2 {
			t.Errorf("dry run answered %s and the queue holds %d; want no link and no new check", b, queueCount(t, az.ConnectionString, env["WATCH_QUEUE"]))
		}
	})

	t.Run("once across a redelivery and two instances", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, watchEnv(t, az, id, g, "once"), 2)
		u := mustWatchedRevoke(t, ps[0], g, 1, "once")
		g.AddSignIns(graphtest.SignIn{UserID: u.id, Created: u.revokedAt.Add(time.Minute), ErrorCode: 0, App: "Outlook"})
		text := checkText(t, u, "15m", time.Now())
		g.SetLatency(2 * time.Second) // both instances hold the check at the same time
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i, p := range ps {
			wg.Go(func() { statuses[i], _ = deliverCheck(t, p, text, "q-once", 1) })
		}
		wg.Wait()
		g.SetLatency(0)
		for n, p := range []*proc{ps[0], ps[1], ps[0]} {
			if status, reply := deliverCheck(t, p, text, "q-once", 2+n); status != http.StatusOK || !strings.Contains(reply, "already made") {
				t.Errorf("redelivery %d = %d %s; want 200, already made", n, status, reply)
			}
		}
		if got := len(g.SignInRequests()); got != 1 {
			t.Errorf("sign-in log read %d times (concurrent deliveries answered %v); want once", got, statuses)
		}
		if ws := mustWatch(t, ps[1], u); len(ws) != 1 || ws[0].Finding != "signed_in_again" {
			t.Errorf("watch = %+v; want one signed_in_again entry", ws)
		}
		// Another duration of the same user is another check.
		if status, _ := deliverCheck(t, ps[1], checkText(t, u, "2h", time.Now()), "q-once-2h", 1); status != http.StatusOK || len(mustWatch(t, ps[0], u)) != 2 {
			t.Errorf("the 2h check = %d; want 200 and a second entry", status)
		}
	})

	t.Run("reports limit held across two instances", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, watchEnv(t, az, id, g, "limit"), 2)
		const n = 12
		users := make([]watchUser, n)
		texts := make([][]byte, n)
		for i := range users {
			users[i] = mustWatchedRevoke(t, ps[i%2], g, i, "limit")
			texts[i] = checkText(t, users[i], "15m", time.Now())
		}
		var wg sync.WaitGroup
		for i := range users {
			wg.Go(func() {
				if status, reply := deliverCheck(t, ps[i%2], texts[i], fmt.Sprintf("q-limit-%d", i), 1); status != http.StatusOK {
					t.Errorf("check %d = %d %s; want 200 (waiting its turn)", i, status, reply)
				}
			})
		}
		wg.Wait()
		reqs := g.SignInRequests()
		if len(reqs) != n {
			t.Fatalf("%d sign-in requests; want %d", len(reqs), n)
		}
		for i, a := range reqs {
			inWindow := 0
			for _, b := range reqs[i:] {
				if b.Time.Sub(a.Time) < 10*time.Second {
					inWindow++
				}
			}
			if inWindow > 5 {
				t.Errorf("%d sign-in requests within 10 s from %s; want at most 5 (Graph's reports limit)", inWindow, a.Time.Format(time.StampMilli))
			}
		}
	})

	t.Run("malformed, unsigned, forged and expired checks are poisoned", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := watchEnv(t, az, id, g, "poison")
		p := startHandler(t, env)
		u := mustWatchedRevoke(t, p, g, 1, "poison")
		good := checkText(t, u, "15m", time.Now())
		unsigned, _ := json.Marshal(map[string]any{"check": map[string]any{"requestId": u.requestID}})
		forged := []byte(strings.Replace(string(good), u.id, "00000000-0000-4000-8000-000000000000", 1))
		// Due long ago: signed at the revocation, 15m after it is more than QUEUE_SIGNATURE_MAX_AGE ago.
		old := u
		old.revokedAt = time.Now().Add(-30 * time.Hour)
		expired := checkText(t, old, "15m", time.Now().Add(-30*time.Hour))
		for i, text := range [][]byte{[]byte("not json"), unsigned, forged, expired} {
			if status, reply := deliverCheck(t, p, text, fmt.Sprintf("q-poison-%d", i), 1); status != http.StatusOK || !strings.Contains(reply, "poison") {
				t.Errorf("message %d = %d %s; want 200, poisoned", i, status, reply)
			}
		}
		if msgs := drainQueue(t, az.ConnectionString, env["WATCH_QUEUE"]+"-poison"); len(msgs) != 4 {
			t.Errorf("%s-poison holds %d; want the 4 messages", env["WATCH_QUEUE"], len(msgs))
		}
		if len(g.SignInRequests()) != 0 || len(mustWatch(t, p, u)) != 0 {
			t.Errorf("a poisoned check read the sign-in log or wrote to the status")
		}
	})

	t.Run("an expired status is still checked and reported", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		p := startHandler(t, watchEnv(t, az, id, g, "gone"))
		u := mustWatchedRevoke(t, p, g, 1, "gone")
		u.handle = "AAAAAAAAAAAAAAAAAAAAAA" // a handle nobody holds: as good as expired
		if status, reply := deliverCheck(t, p, checkText(t, u, "15m", time.Now()), "q-gone", 1); status != http.StatusOK || !strings.Contains(reply, "clean") {
			t.Errorf("delivery = %d %s; want 200 clean", status, reply)
		}
		if l := lines(p.Stdout.String(), `"event":"RevocationWatch"`, `"stored":"false"`); len(l) != 1 {
			t.Errorf("RevocationWatch lines %q; want one, not stored", l)
		}
	})
}

// Health and check name the watch's permissions: AuditLog.Read.All and User.Read.All.
func TestWatchPermissions(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	tests := []struct {
		name    string
		roles   []string
		health  string
		code    int
		wantOut string
	}{
		{"both granted", []string{roleRevoke, roleRead, roleAudit}, "ok", 0, "check passed"},
		{"without AuditLog.Read.All", []string{roleRevoke, roleRead}, "missing_permission", 1, "missing: " + roleAudit + " (for WATCH_AFTER: reading sign-in logs)"},
		{"without User.Read.All", []string{roleRevoke, roleAudit}, "missing_permission", 1, "missing: " + roleRead + " (for WATCH_AFTER: the user's object ID)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, g := tenant(t)
			env := watchEnv(t, az, id, g, fmt.Sprintf("perm%d", i))
			id.SetRoles(tt.roles)
			p := startHandler(t, env)
			if h, raw := healthGraphSettled(t, p, 20*time.Second); h.Graph != tt.health || strings.Contains(raw, "AuditLog") {
				t.Errorf("health = %s; want graph %q and no permission named", raw, tt.health)
			}
			c := run(t, env, "check")
			if code := c.exitCode(t, 60*time.Second); code != tt.code || !strings.Contains(c.Stdout.String(), tt.wantOut) {
				t.Errorf("check = exit %d\n%s; want %d and %q", code, c.Stdout, tt.code, tt.wantOut)
			}
		})
	}
}

// Bad WATCH_AFTER values stop the start with exit 2 and a line naming the setting.
func TestWatchRefusesBadSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra map[string]string
	}{
		{"not a duration", map[string]string{"WATCH_AFTER": "15", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}},
		{"under five minutes", map[string]string{"WATCH_AFTER": "1m", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}},
		{"over a week", map[string]string{"WATCH_AFTER": "15m,200h", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}},
		{"descending", map[string]string{"WATCH_AFTER": "2h,15m", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}},
		{"no storage", map[string]string{"WATCH_AFTER": "15m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, g := tenant(t)
			env := handlerEnv(t, id, g)
			for k, v := range tt.extra {
				env[k] = v
			}
			env[testenv.PortVariable] = freePort(t)
			p := run(t, env)
			if code := p.exitCode(t, 30*time.Second); code != 2 || !strings.Contains(p.Stderr.String(), "WATCH_AFTER") {
				t.Errorf("start with %v = exit %d, stderr %q; want 2 naming WATCH_AFTER", tt.extra, code, p.Stderr)
			}
		})
	}
}

// `handler watch` makes one check now from a terminal: exit 3 when someone signed in again, 1
// when a user is not clean, 0 when all are, 2 on usage errors.
func TestWatchCommand(t *testing.T) {
	t.Parallel()
	id, g := tenant(t)
	id.SetRoles([]string{roleRevoke, roleRead, roleAudit})
	revoked := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	g.AddUser(
		graphtest.User{ID: "1a1a1a1a-0000-4000-8000-000000000001", UPN: "back@contoso.com", SessionsValidFrom: revoked},
		graphtest.User{ID: "1a1a1a1a-0000-4000-8000-000000000002", UPN: "quiet@contoso.com", SessionsValidFrom: revoked},
		graphtest.User{ID: "1a1a1a1a-0000-4000-8000-000000000003", UPN: "tried@contoso.com", SessionsValidFrom: revoked},
	)
	g.AddSignIns(
		graphtest.SignIn{UserID: "1a1a1a1a-0000-4000-8000-000000000001", Created: revoked.Add(10 * time.Minute), App: "Outlook", IP: "198.51.100.4", ErrorCode: 0, Interactive: true},
		graphtest.SignIn{UserID: "1a1a1a1a-0000-4000-8000-000000000002", Created: revoked.Add(-10 * time.Minute), App: "before", ErrorCode: 0},
		graphtest.SignIn{UserID: "1a1a1a1a-0000-4000-8000-000000000003", Created: revoked.Add(5 * time.Minute), App: "Teams", ErrorCode: 50126},
	)
	env := handlerEnv(t, id, g)
	tests := []struct {
		args    []string
		code    int
		wantOut string
	}{
		{[]string{"quiet@contoso.com"}, 0, "clean"},
		{[]string{"quiet@contoso.com", "tried@contoso.com"}, 1, "attempts_failed"},
		{[]string{"tried@contoso.com", "back@contoso.com", "--json"}, 3, `"finding":"signed_in_again"`},
		{[]string{"--since", revoked.Add(-time.Hour).Format(time.RFC3339), "quiet@contoso.com"}, 3, "signed_in_again"},
		{[]string{"nobody@contoso.com"}, 1, "user_gone"},
		{[]string{"not a upn"}, 2, ""},
		{[]string{"--since", "yesterday", "quiet@contoso.com"}, 2, ""},
		{[]string{"--since", revoked.Format(time.RFC3339), "--since-revocation", "quiet@contoso.com"}, 2, ""},
	}
	for _, tt := range tests {
		p := run(t, env, append([]string{"watch"}, tt.args...)...)
		code := p.exitCode(t, 60*time.Second)
		if code != tt.code || !strings.Contains(p.Stdout.String(), tt.wantOut) {
			t.Errorf("handler watch %q = exit %d\n%s%s; want %d and %q", tt.args, code, p.Stdout, p.Stderr, tt.code, tt.wantOut)
		}
	}
}
