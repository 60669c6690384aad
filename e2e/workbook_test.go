package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

var updatePicture = flag.Bool("update-workbook-picture", false,
	"rewrite testdata/telemetry/workbook-events.json from this run (then: go run ./scripts/workbook-svg)")

// mustMatchKeysList fails for any item whose properties or measurements are not in
// testdata/telemetry/keys.json, the list every KQL query of the repository is checked against.
// Events named there but not captured by a test are fine: a test covers what it drives.
func mustMatchKeysList(t *testing.T, items []testenv.Envelope) {
	t.Helper()
	type keys struct {
		CustomDimensions   []string `json:"customDimensions"`
		CustomMeasurements []string `json:"customMeasurements"`
	}
	var list struct {
		Events       map[string]keys `json:"events"`
		Dependencies keys            `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "telemetry", "keys.json"))
	if err == nil {
		err = json.Unmarshal(b, &list)
	}
	if err != nil {
		t.Fatalf("testdata/telemetry/keys.json: %v", err)
	}
	for _, it := range items {
		want, what := list.Dependencies, "dependency "+it.Name
		if it.BaseType == "EventData" {
			var ok bool
			if want, ok = list.Events[it.Name]; !ok {
				t.Errorf("the handler sent event %q, which testdata/telemetry/keys.json does not list", it.Name)
				continue
			}
			what = "event " + it.Name
		}
		for k := range it.Properties {
			if !slices.Contains(want.CustomDimensions, k) {
				t.Errorf("%s carries customDimensions.%s, which testdata/telemetry/keys.json does not list for it", what, k)
			}
		}
		for k := range it.Measurements {
			if !slices.Contains(want.CustomMeasurements, k) {
				t.Errorf("%s carries customMeasurements.%s, which testdata/telemetry/keys.json does not list for it", what, k)
			}
		}
	}
}

// pictureRow is one SessionRevocation event of the workbook picture's run.
type pictureRow struct {
	Hour   int    `json:"hour"` // the round of the run, drawn as an hour
	Status string `json:"status"`
	Caller string `json:"caller"`
}

// workbookRounds is the scripted run behind docs/workbook.svg: per round ("hour"), how many
// contoso users are revoked, and which other outcomes occur. It is an incident afternoon: a quiet
// start, a burst, Graph refusing one user, a break-glass account someone tried to revoke.
var workbookRounds = []struct {
	revoke                                  int
	notFound, protected, outOfScope, denied bool
	dryRun                                  int
	deferred                                int  // Graph fails once: queued, then revoked by the queue trigger
	failFinal, poison                       bool // Graph keeps failing until the last delivery; a message that can never succeed
}{
	{revoke: 2, dryRun: 2},
	{revoke: 3, notFound: true},
	{revoke: 1, poison: true},
	{revoke: 9, protected: true, outOfScope: true},
	{revoke: 14, denied: true, notFound: true, deferred: 3},
	{revoke: 6, failFinal: true},
	{revoke: 4, outOfScope: true},
	{revoke: 2},
}

// TestTelemetryForTheWorkbook runs the handler through a scripted afternoon against an
// ingestion fake, with Azurite for the queue and the state table, checks that every item it sent
// carries only keys of the keys list, and that the outcomes behind the README's workbook picture
// are what this handler really records.
func TestTelemetryForTheWorkbook(t *testing.T) {
	t.Parallel()
	in := testenv.NewIngestion(t)
	id, g := tenant(t)
	g.AddUser(graphtest.User{ID: breakGlassID, UPN: breakGlassUPN, UserType: "Member"},
		graphtest.User{ID: bobID, UPN: "bob@fabrikam.com", UserType: "Member"})
	for i := range 60 {
		g.AddUser(graphtest.User{ID: fmt.Sprintf("5e1f0000-0000-4000-8000-%012d", i), UPN: fmt.Sprintf("user%02d@contoso.com", i), UserType: "Member"})
	}
	env := handlerEnv(t, id, g)
	env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
	env["PROTECTED_USERS"] = breakGlassUPN
	env["ALLOWED_DOMAINS"] = "contoso.com"
	az := testenv.StartAzurite(t)
	storageEnv(t, env, az, "e2e-workbook")
	p := startHandler(t, env)
	deliver := func(dequeueCount int) {
		t.Helper()
		text, qid := dequeue(t, az.ConnectionString, "e2e-workbook")
		if status, _, b := post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", text, qid, dequeueCount)); status != http.StatusOK {
			t.Fatalf("queue delivery %d = %d %s; want 200", dequeueCount, status, b)
		}
	}

	want := 0
	next := 0
	for h, r := range workbookRounds {
		var users []string
		for range r.revoke {
			users = append(users, fmt.Sprintf("user%02d@contoso.com", next))
			next++
		}
		if r.denied {
			u := fmt.Sprintf("user%02d@contoso.com", next)
			next++
			g.Script(u, graphtest.Forbidden())
			users = append(users, u)
		}
		for range r.deferred {
			u := fmt.Sprintf("user%02d@contoso.com", next)
			next++
			g.Script(u, graphtest.Response{Status: 500})
			users = append(users, u)
			want++ // its queued outcome, then its final one
		}
		if r.failFinal {
			u := fmt.Sprintf("user%02d@contoso.com", next)
			next++
			g.Script(u, graphtest.Response{Status: 500}, graphtest.Response{Status: 500})
			users = append(users, u)
			want++
		}
		if r.notFound {
			users = append(users, fmt.Sprintf("gone%02d@contoso.com", h))
		}
		if r.protected {
			users = append(users, breakGlassUPN)
		}
		if r.outOfScope {
			users = append(users, "bob@fabrikam.com")
		}
		q, _ := json.Marshal(users)
		body := fmt.Appendf(nil, `{"upns":%s,"ticket":"INC%04d"}`, q, h)
		if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, fmt.Sprintf("wb-h%02d-main", h), body), body); status >= 500 {
			t.Fatalf("round %d: %d %s", h, status, b)
		}
		want += len(users)
		switch {
		case r.deferred > 0:
			deliver(1) // Graph is back: the queue trigger revokes them
		case r.failFinal:
			deliver(5) // the last delivery: failed, final, a copy kept in the poison queue
		}
		if r.poison {
			if status, _, b := post(t, p.URL+"/revoke-queue", http.Header{"Content-Type": {"application/json"}}, testenv.QueueInvocation("revoke-queue", []byte("revoke everyone please"), fmt.Sprintf("wb-poison-%d", h), 1)); status != http.StatusOK {
				t.Fatalf("poison message = %d %s; want 200", status, b)
			}
		}
		if r.dryRun > 0 {
			var dry []string
			for range r.dryRun {
				dry = append(dry, fmt.Sprintf("user%02d@contoso.com", next))
				next++
			}
			q, _ := json.Marshal(dry)
			body := fmt.Appendf(nil, `{"upns":%s,"dryRun":true}`, q)
			if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, fmt.Sprintf("wb-h%02d-dry", h), body), body); status != http.StatusOK {
				t.Fatalf("round %d dry run: %d %s", h, status, b)
			}
			want += len(dry)
		}
	}
	// A caller with a stale secret: a WebhookRejected event.
	body := []byte(`{"upn":"user00@contoso.com"}`)
	h := signedHeaders(t, "wb-stale", body)
	h.Set("webhook-signature", "v1,"+strings.Repeat("A", 43)+"=")
	if status, _, _ := post(t, p.URL+"/api/revoke", h, body); status != http.StatusUnauthorized {
		t.Fatalf("bad signature = %d; want 401", status)
	}

	var items []testenv.Envelope
	var rows []pictureRow
	waitUntil(t, "every outcome ingested", func() bool {
		items, rows = in.Accepted(), nil
		rejected, poisoned, permission := false, false, false
		for _, it := range items {
			switch it.Name {
			case "SessionRevocation":
				var hour int
				if _, err := fmt.Sscanf(it.Properties["requestId"], "wb-h%02d-", &hour); err != nil {
					t.Fatalf("requestId %q: %v", it.Properties["requestId"], err)
				}
				rows = append(rows, pictureRow{hour, it.Properties["status"], it.Properties["caller"]})
			case "WebhookRejected":
				rejected = rejected || it.Properties["trigger"] == "http"
				poisoned = poisoned || it.Properties["trigger"] == "queue"
			case "GraphPermission": // read from the identity's token at start
				permission = it.Properties["graph"] != ""
			}
		}
		return len(rows) == want && rejected && poisoned && permission
	})
	mustMatchKeysList(t, items)

	slices.SortFunc(rows, func(a, b pictureRow) int {
		return strings.Compare(fmt.Sprintf("%02d %s %s", a.Hour, a.Status, a.Caller), fmt.Sprintf("%02d %s %s", b.Hour, b.Status, b.Caller))
	})
	// One row a line: a change of outcome shows as a one-line diff.
	lines := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = string(b)
	}
	got := []byte("[\n" + strings.Join(lines, ",\n") + "\n]\n")
	path := filepath.Join(testenv.RepoRoot(t), "testdata", "telemetry", "workbook-events.json")
	if *updatePicture {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now run: go run ./scripts/workbook-svg", path)
		return
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != string(got) {
		counts := map[string]int{}
		for _, r := range rows {
			counts[r.Status]++
		}
		t.Errorf("%s is not what the handler records now (statuses %v); run: go test ./e2e -run TestTelemetryForTheWorkbook -update-workbook-picture && go run ./scripts/workbook-svg",
			path, slices.Sorted(maps.Keys(counts)))
	}
}
