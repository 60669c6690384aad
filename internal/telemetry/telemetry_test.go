package telemetry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpanID  = "00f067aa0ba902b7"
)

func mustNew(t *testing.T, cfg Config) *Telemetry {
	t.Helper()
	tel, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tel.Close(ctx)
	})
	return tel
}

func mustClose(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Close(ctx); err != nil {
		t.Fatalf("Close = %v; want nil", err)
	}
}

func fullOutcome() revoke.Outcome {
	verified := true
	return revoke.Outcome{
		Meta: revoke.Meta{
			Trigger: revoke.TriggerQueue, RequestID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", InvocationID: "inv-1",
			Caller: "webhook:0", DequeueCount: 2,
		},
		Status:            revoke.StatusRevoked,
		UPN:               "alice@contoso.com",
		UserID:            "3f1c0e2a-1111-4222-8333-444455556666",
		Ticket:            "INC0012345",
		Reason:            "Lost phone",
		RequestedBy:       "analyst@contoso.com",
		GraphRequestID:    "b1e2c3d4-0000-4000-8000-000000000001",
		ErrorCode:         "Some_Code",
		ErrorMessage:      "some message",
		Verified:          &verified,
		SessionsValidFrom: time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC),
		Guard:             "allowed_domain",
		Warning:           "guest",
		Duration:          1500 * time.Millisecond,
		GraphDuration:     250 * time.Millisecond,
		Attempts:          2,
	}
}

func TestExportSchema(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	stdout := &testenv.Buffer{}
	tel := mustNew(t, Config{
		Connection: f.connection(false), Role: "func-revoke", RoleInstance: "inst-1", Stdout: stdout,
		Interval: time.Hour, // one request, at Close
	})

	opCtx := WithOperation(context.Background(), NewOperation("00-"+testTraceID+"-"+testSpanID+"-01", "inv-1", "req-x"))
	tel.Outcome(opCtx, fullOutcome())
	tel.Outcome(context.Background(), revoke.Outcome{ // no operation in the context: the invocation id correlates
		Meta:   revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "req-2", InvocationID: "inv-2"},
		Status: revoke.StatusNotFound, UPN: "bob@contoso.com",
	})
	tel.Rejected(WithOperation(context.Background(), NewOperation("", "inv-3", "req-3")), Rejection{
		Reason: "bad_signature", Trigger: revoke.TriggerHTTP, RequestID: "req-3", ClientIP: "203.0.113.7",
	})
	start := time.Date(2026, 11, 21, 23, 59, 1, 0, time.UTC)
	tel.Dependency(opCtx, Dependency{
		Name:       "POST /users/alice@contoso.com/revokeSignInSessions",
		Target:     "graph.microsoft.com",
		Data:       "https://graph.microsoft.com/v1.0/users/alice%40contoso.com/revokeSignInSessions",
		ResultCode: 204, Success: true, Start: start, Duration: 1234567891 * time.Nanosecond,
		RequestID: "graph-req-1",
	})
	mustClose(t, tel)

	reqs, acc := f.snapshot()
	if len(reqs) != 1 || len(acc) != 4 {
		t.Fatalf("got %d requests, %d items; want 1 request with 4 items", len(reqs), len(acc))
	}
	tags := func(opID, parent string) map[string]string {
		m := map[string]string{"ai.cloud.role": "func-revoke", "ai.cloud.roleInstance": "inst-1",
			"ai.operation.id": opID, "ai.internal.sdkVersion": "go:entra-revoke"}
		if parent != "" {
			m["ai.operation.parentId"] = parent
		}
		return m
	}
	wantEvents := []struct {
		name  string
		tags  map[string]string
		props map[string]string
		meas  map[string]float64
	}{
		{
			name: eventRevocation, tags: tags(testTraceID, testSpanID),
			props: map[string]string{
				"status": "revoked", "upn": "alice@contoso.com", "userId": "3f1c0e2a-1111-4222-8333-444455556666",
				"trigger": "queue", "requestId": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "invocationId": "inv-1",
				"caller": "webhook:0", "ticket": "INC0012345", "reason": "Lost phone", "requestedBy": "analyst@contoso.com",
				"dryRun": "false", "graphRequestId": "b1e2c3d4-0000-4000-8000-000000000001", "errorCode": "Some_Code",
				"errorMessage": "some message", "verified": "true", "sessionsValidFrom": "2026-11-21T23:59:00Z",
				"dequeueCount": "2", "guard": "allowed_domain", "warning": "guest",
			},
			meas: map[string]float64{"durationMs": 1500, "graphMs": 250, "attempts": 2},
		},
		{
			name: eventRevocation, tags: tags("inv-2", ""),
			props: map[string]string{"status": "not_found", "upn": "bob@contoso.com", "trigger": "http",
				"requestId": "req-2", "invocationId": "inv-2", "dryRun": "false"},
			meas: map[string]float64{"durationMs": 0, "graphMs": 0, "attempts": 0},
		},
		{
			name: eventRejected, tags: tags("inv-3", ""),
			props: map[string]string{"reason": "bad_signature", "trigger": "http", "requestId": "req-3",
				"clientIp": "203.0.113.7", "invocationId": "inv-3"},
		},
	}
	for i, want := range wantEvents {
		got := acc[i]
		if got.Event == nil || got.Event.Name != want.name {
			t.Errorf("item %d = %+v; want event %s", i, got, want.name)
			continue
		}
		if !maps.Equal(got.Tags, want.tags) {
			t.Errorf("item %d (%s) tags = %v; want %v", i, want.name, got.Tags, want.tags)
		}
		if !maps.Equal(got.Event.Properties, want.props) {
			t.Errorf("item %d (%s) properties = %v; want %v", i, want.name, got.Event.Properties, want.props)
		}
		if !maps.Equal(got.Event.Measurements, want.meas) {
			t.Errorf("item %d (%s) measurements = %v; want %v", i, want.name, got.Event.Measurements, want.meas)
		}
	}

	dep := acc[3]
	wantDep := gotDependency{
		Ver: 2, ID: "", Name: "POST /users/{id}/revokeSignInSessions", ResultCode: "204",
		Duration: "0.00:00:01.2345678", Success: true, Type: "Http", Target: "graph.microsoft.com",
		Data:       "https://graph.microsoft.com/v1.0/users/{id}/revokeSignInSessions",
		Properties: map[string]string{"graphRequestId": "graph-req-1", "invocationId": "inv-1"},
	}
	if dep.Dep == nil {
		t.Fatalf("item 3 = %+v; want a dependency", dep)
	}
	gotDep := *dep.Dep
	if len(gotDep.ID) != 16 || !isLowerHex(gotDep.ID) {
		t.Errorf("dependency id = %q; want 16 hex digits", gotDep.ID)
	}
	gotDep.ID = ""
	if fmt.Sprint(gotDep) != fmt.Sprint(wantDep) {
		t.Errorf("dependency = %+v; want %+v", gotDep, wantDep)
	}
	if !dep.Time.Equal(start) {
		t.Errorf("dependency time = %v; want its start %v", dep.Time, start)
	}
	if !maps.Equal(dep.Tags, tags(testTraceID, testSpanID)) {
		t.Errorf("dependency tags = %v; want %v", dep.Tags, tags(testTraceID, testSpanID))
	}

	if st := tel.Stats(); st != (Stats{Sent: 4}) {
		t.Errorf("Stats = %+v; want {Sent:4}", st)
	}
	// The stdout audit trail has the same story: one line per outcome and rejection.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("stdout has %d lines; want 3:\n%s", len(lines), stdout.String())
	}
	for i, want := range wantEvents {
		checkLine(t, lines[i], want.name, want.props, want.meas)
	}
}

// checkLine checks one stdout audit line: constant msg, the event name, and exactly the event's
// properties and measurements.
func checkLine(t *testing.T, line, event string, props map[string]string, meas map[string]float64) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("stdout line %q is not JSON: %v", line, err)
	}
	wantMsg := map[string]string{eventRevocation: "session revocation", eventRejected: "caller rejected", eventStateFallback: "state fallback"}[event]
	if m["msg"] != wantMsg || m["event"] != event || m["level"] != "INFO" {
		t.Errorf("stdout line msg=%v event=%v level=%v; want %q %q INFO", m["msg"], m["event"], m["level"], wantMsg, event)
	}
	for _, k := range []string{"msg", "event", "level", "time"} {
		delete(m, k)
	}
	for k, v := range props {
		if m[k] != v {
			t.Errorf("stdout %s = %v; want %q", k, m[k], v)
		}
		delete(m, k)
	}
	for k, v := range meas {
		if m[k] != v {
			t.Errorf("stdout %s = %v; want %v", k, m[k], v)
		}
		delete(m, k)
	}
	if len(m) != 0 {
		t.Errorf("stdout line has unexpected keys %v", m)
	}
}

func TestStdoutOnlyWithoutConnectionString(t *testing.T) {
	t.Parallel()
	stdout := &testenv.Buffer{}
	tel := mustNew(t, Config{Stdout: stdout})
	o := revoke.Outcome{Meta: revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "r1"}, Status: revoke.StatusDryRun,
		UPN: "alice@contoso.com", DryRun: true}
	tel.Outcome(context.Background(), o)
	tel.Rejected(context.Background(), Rejection{Reason: "expired", Trigger: revoke.TriggerHTTP, RequestID: "r2"})
	tel.Dependency(context.Background(), Dependency{Name: "POST /users/{id}/revokeSignInSessions"})
	mustClose(t, tel)

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout has %d lines; want 2 (outcome, rejection):\n%s", len(lines), stdout.String())
	}
	checkLine(t, lines[0], eventRevocation,
		map[string]string{"status": "dry_run", "upn": "alice@contoso.com", "trigger": "http", "requestId": "r1", "dryRun": "true"},
		map[string]float64{"durationMs": 0, "graphMs": 0, "attempts": 0})
	checkLine(t, lines[1], eventRejected, map[string]string{"reason": "expired", "trigger": "http", "requestId": "r2"}, nil)
	if st := tel.Stats(); st != (Stats{}) {
		t.Errorf("Stats = %+v; want zero without a connection string", st)
	}
}

func TestRedactUPN(t *testing.T) {
	t.Parallel()
	// upnHash is HMAC-SHA256 keyed by the salt over the lower-case UPN, computed here
	// independently of HashUPN.
	mac := func(salt, s string) string {
		h := hmac.New(sha256.New, []byte(salt))
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil))
	}
	tests := []struct {
		name string
		salt string
	}{
		{"salt", "s3cret-salt-of-some-length"},
		{"another salt, other hashes", "0123456789abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIngestion(t)
			stdout := &testenv.Buffer{}
			tel := mustNew(t, Config{Connection: f.connection(false), RedactUPN: true, UPNSalt: tt.salt, Stdout: stdout, Interval: time.Hour})

			member := "Alice.O'Brien@Contoso.com"
			guest := "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"
			objectID := "3f1c0e2a-1111-4222-8333-444455556666"
			ctx := context.Background()
			tel.Outcome(ctx, revoke.Outcome{
				Meta:   revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "r1"},
				Status: revoke.StatusNotFound, UPN: member, RequestedBy: "analyst@contoso.com",
				Reason:       "alice.o'brien%40contoso.com lost her phone, cc bob@fabrikam.com",
				ErrorCode:    "Request_ResourceNotFound",
				ErrorMessage: "Resource 'alice.o'brien@contoso.com' does not exist or one of its queried reference-property objects are not present.",
			})
			tel.Outcome(ctx, revoke.Outcome{
				Meta:   revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "r2"},
				Status: revoke.StatusFailed, UPN: guest, UserID: "9a9a9a9a-0000-4000-8000-000000000000",
				ErrorMessage: "call to /users/jane_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com failed",
			})
			tel.Outcome(ctx, revoke.Outcome{
				Meta:   revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "r3", Caller: "entra:11111111-2222-4333-8444-555555555555"},
				Status: revoke.StatusRevoked, UPN: objectID, RequestedBy: "sentinel-playbook",
			})
			tel.Outcome(ctx, revoke.Outcome{
				Meta:   revoke.Meta{Trigger: revoke.TriggerCLI, RequestID: "r4", Caller: "cli:Analyst@Contoso.com"},
				Status: revoke.StatusDryRun, UPN: objectID, DryRun: true,
			})
			tel.Rejected(ctx, Rejection{Reason: "bad_signature", Trigger: revoke.TriggerHTTP, RequestID: "alice.o'brien@contoso.com"})
			tel.Dependency(ctx, Dependency{Name: "POST /users/" + member + "/revokeSignInSessions", Target: "graph.microsoft.com",
				Data: "https://graph.microsoft.com/v1.0/users/x?$filter=mail eq 'alice.o''brien@contoso.com'", ResultCode: 404})
			mustClose(t, tel)

			reqs, acc := f.snapshot()
			var wire strings.Builder
			for _, r := range reqs {
				wire.Write(r.body)
			}
			for where, text := range map[string]string{"ingestion payload": wire.String(), "stdout": stdout.String()} {
				low := strings.ToLower(text)
				for _, leak := range []string{"o'brien", "brien%40", "jane_fabrikam", "analyst@", "bob@fabrikam", "@contoso.com", "%40contoso"} {
					if strings.Contains(low, leak) {
						t.Errorf("%s contains %q:\n%s", where, leak, text)
					}
				}
			}
			if len(acc) != 6 {
				t.Fatalf("accepted %d items; want 6", len(acc))
			}
			wantHash := map[int]string{
				0: mac(tt.salt, strings.ToLower(member)),
				1: mac(tt.salt, strings.ToLower(guest)),
				2: mac(tt.salt, objectID),
			}
			for i, want := range wantHash {
				if got := acc[i].prop("upnHash"); got != want {
					t.Errorf("outcome %d upnHash = %q; want %q", i, got, want)
				}
				if got := acc[i].prop("upn"); got != "" {
					t.Errorf("outcome %d upn = %q; want none", i, got)
				}
			}
			if got, want := acc[0].prop("requestedByHash"), mac(tt.salt, "analyst@contoso.com"); got != want {
				t.Errorf("requestedByHash = %q; want %q", got, want)
			}
			if got, want := acc[0].prop("errorMessage"), "Resource '[upn]' does not exist or one of its queried reference-property objects are not present."; got != want {
				t.Errorf("errorMessage = %q; want %q", got, want)
			}
			// An object ID is not a UPN: it stays readable as userId.
			if got := acc[2].prop("userId"); got != objectID {
				t.Errorf("object-ID outcome userId = %q; want %q", got, objectID)
			}
			if got := acc[2].prop("requestedBy"); got != "sentinel-playbook" {
				t.Errorf("requestedBy = %q; want sentinel-playbook (not a UPN, kept)", got)
			}
			// Callers: an Entra client id is kept; the person who ran the CLI is hashed like a UPN.
			if got, want := acc[2].prop("caller"), "entra:11111111-2222-4333-8444-555555555555"; got != want {
				t.Errorf("entra caller = %q; want %q", got, want)
			}
			if got, want := acc[3].prop("caller"), "cli:"+mac(tt.salt, "analyst@contoso.com"); got != want {
				t.Errorf("cli caller = %q; want %q", got, want)
			}
		})
	}
}

func TestRetryAfter503Then200LosesNothing(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	f.respond = func(call int, _ []gotItem) fakeResponse {
		if call == 0 {
			return fakeResponse{status: http.StatusServiceUnavailable, retryAfter: "1"}
		}
		return fakeResponse{status: http.StatusOK}
	}
	tel := mustNew(t, Config{Connection: f.connection(false), BatchSize: 5, Interval: 10 * time.Millisecond})
	want := sendOutcomes(tel, 5)
	acc := f.mustWaitAccepted(func(a []gotItem) bool { return len(a) >= 5 })
	mustClose(t, tel)

	if got := requestIDs(acc); !slices.Equal(got, want) {
		t.Errorf("accepted requestIds = %v; want each of %v once", got, want)
	}
	reqs, _ := f.snapshot()
	if len(reqs) < 2 || len(reqs[0].items) != 5 {
		t.Fatalf("requests = %d (first with %d items); want a failed batch of 5 and a retry", len(reqs), len(reqs[0].items))
	}
	// Retry-After: 1 must be honoured: the retry comes no sooner than a second later.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond {
		t.Errorf("retry came %v after a 503 with Retry-After: 1; want >= 1s", gap)
	}
	if st := tel.Stats(); st != (Stats{Sent: 5}) {
		t.Errorf("Stats = %+v; want {Sent:5}", st)
	}
}

func sendOutcomes(tel *Telemetry, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("req-%d", i)
		tel.Outcome(context.Background(), revoke.Outcome{
			Meta: revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: ids[i]}, Status: revoke.StatusRevoked, UPN: "u@contoso.com",
		})
	}
	return ids
}

func Test206PartialResendsOnlyRetryableItems(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	f.respond = func(call int, _ []gotItem) fakeResponse {
		if call == 0 {
			return fakeResponse{status: http.StatusPartialContent, errors: []itemError{
				{Index: 1, StatusCode: 500, Message: "internal"},
				{Index: 3, StatusCode: 439, Message: "quota"},
				{Index: 4, StatusCode: 400, Message: "invalid field"},
			}}
		}
		return fakeResponse{status: http.StatusOK}
	}
	tel := mustNew(t, Config{Connection: f.connection(false), BatchSize: 6, Interval: time.Hour})
	sendOutcomes(tel, 6) // a full batch: sent at once
	acc := f.mustWaitAccepted(func(a []gotItem) bool { return len(a) >= 5 })
	mustClose(t, tel)

	got := requestIDs(acc)
	slices.Sort(got)
	if want := []string{"req-0", "req-1", "req-2", "req-3", "req-5"}; !slices.Equal(got, want) {
		t.Errorf("accepted requestIds = %v; want %v (req-4 refused with 400)", got, want)
	}
	reqs, _ := f.snapshot()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests; want 2", len(reqs))
	}
	if got, want := requestIDs(reqs[1].items), []string{"req-1", "req-3"}; !slices.Equal(got, want) {
		t.Errorf("re-sent %v; want only the retryable failures %v", got, want)
	}
	if st := tel.Stats(); st != (Stats{Sent: 5, Failed: 1}) {
		t.Errorf("Stats = %+v; want {Sent:5 Failed:1}", st)
	}
}

func TestBatchStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		aad    bool
		retry  bool
	}{
		{http.StatusRequestTimeout, false, true},
		{http.StatusTooManyRequests, false, true},
		{439, false, true},
		{http.StatusInternalServerError, false, true},
		{http.StatusBadGateway, false, true},
		{http.StatusServiceUnavailable, false, true},
		{http.StatusGatewayTimeout, false, true},
		{http.StatusUnauthorized, true, true}, // role assignment still propagating
		{http.StatusBadRequest, false, false},
		{http.StatusUnauthorized, false, false},
		{http.StatusForbidden, false, false},
		{http.StatusNotFound, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d aad=%v", tt.status, tt.aad), func(t *testing.T) {
			t.Parallel()
			f := newFakeIngestion(t)
			f.respond = func(call int, _ []gotItem) fakeResponse {
				if call == 0 {
					return fakeResponse{status: tt.status, retryAfter: "0"}
				}
				return fakeResponse{status: http.StatusOK}
			}
			cfg := Config{Connection: f.connection(tt.aad), BatchSize: 3, Interval: time.Hour}
			if tt.aad {
				cfg.Credential = graphtest.NewCredential("tok")
			}
			tel := mustNew(t, cfg)
			sendOutcomes(tel, 3)
			mustClose(t, tel)
			reqs, acc := f.snapshot()
			want := Stats{Failed: 3}
			if tt.retry {
				want = Stats{Sent: 3}
			}
			if st := tel.Stats(); st != want {
				t.Errorf("after a %d: Stats = %+v (%d requests, %d accepted); want %+v", tt.status, st, len(reqs), len(acc), want)
			}
		})
	}
}

func TestBatchSizeAndInterval(t *testing.T) {
	t.Parallel()
	t.Run("full batch goes at once", func(t *testing.T) {
		t.Parallel()
		f := newFakeIngestion(t)
		tel := mustNew(t, Config{Connection: f.connection(false), BatchSize: 3, Interval: time.Hour})
		sendOutcomes(tel, 3)
		f.mustWaitAccepted(func(a []gotItem) bool { return len(a) == 3 }) // long before the hour
	})
	t.Run("partial batch goes after the interval", func(t *testing.T) {
		t.Parallel()
		f := newFakeIngestion(t)
		tel := mustNew(t, Config{Connection: f.connection(false), BatchSize: 100, Interval: 20 * time.Millisecond})
		sendOutcomes(tel, 1)
		f.mustWaitAccepted(func(a []gotItem) bool { return len(a) == 1 })
	})
	t.Run("no request exceeds the batch size", func(t *testing.T) {
		t.Parallel()
		f := newFakeIngestion(t)
		tel := mustNew(t, Config{Connection: f.connection(false), BatchSize: 3, Interval: time.Hour})
		want := sendOutcomes(tel, 10)
		mustClose(t, tel)
		reqs, acc := f.snapshot()
		for i, r := range reqs {
			if len(r.items) > 3 {
				t.Errorf("request %d has %d items; want <= 3", i, len(r.items))
			}
		}
		got := requestIDs(acc)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("accepted %v; want %v", got, want)
		}
	})
}

func TestDropsOldestAndReportsDrops(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	// Nothing is sent before Close (no full batch, no tick), so the buffer overflows deterministically.
	tel := mustNew(t, Config{Connection: f.connection(false), BatchSize: 100, Interval: time.Hour, MaxBuffer: 5})
	sendOutcomes(tel, 20)
	if st := tel.Stats(); st != (Stats{Buffered: 5, Dropped: 15}) {
		t.Errorf("Stats after 20 items into a buffer of 5 = %+v; want {Buffered:5 Dropped:15}", st)
	}
	mustClose(t, tel)

	_, acc := f.snapshot()
	if got, want := requestIDs(acc), []string{"req-15", "req-16", "req-17", "req-18", "req-19"}; !slices.Equal(got, want) {
		t.Errorf("sent %v; want the newest five %v", got, want)
	}
	var dropped []float64
	for _, it := range acc {
		if it.Event != nil && it.Event.Name == eventDropped {
			dropped = append(dropped, it.Event.Measurements["dropped"])
		}
	}
	if !slices.Equal(dropped, []float64{15}) {
		t.Errorf("TelemetryDropped events report %v; want one reporting 15", dropped)
	}
	if st := tel.Stats(); st != (Stats{Sent: 6, Dropped: 15}) {
		t.Errorf("Stats = %+v; want {Sent:6 Dropped:15}", st)
	}
}

// An unreachable ingestion endpoint must not add latency to revocations, and the buffer must
// stay within MaxBuffer however many outcomes arrive.
func TestUnreachableEndpointAddsNoLatencyAndStaysBounded(t *testing.T) {
	t.Parallel()
	const (
		n         = 2000
		maxBuffer = 50
		batchSize = 10
	)
	tel := mustNew(t, Config{
		Connection: ConnectionString{InstrumentationKey: testIKey, IngestionEndpoint: newBlackhole(t)},
		Stdout:     io.Discard, BatchSize: batchSize, Interval: time.Millisecond, MaxBuffer: maxBuffer,
	})
	baseline := mustNew(t, Config{Stdout: io.Discard})

	measure := func(tel *Telemetry) (total, worst time.Duration) {
		o := fullOutcome()
		for range n {
			start := time.Now()
			tel.Outcome(context.Background(), o)
			d := time.Since(start)
			total += d
			worst = max(worst, d)
		}
		return total, worst
	}
	baseTotal, _ := measure(baseline)
	total, worst := measure(tel)
	t.Logf("%d outcomes: %v with a black-hole endpoint (worst call %v), %v without telemetry", n, total, worst, baseTotal)
	// A generous bound (the issue asks for a measurement; the machine is shared and -race is
	// slow): a send, or a wait for the sender, on the request path would block a call for the
	// 30 s attempt timeout.
	if worst > time.Second {
		t.Errorf("Outcome with an unreachable endpoint: worst call %v (total %v for %d calls); want < 1s", worst, total, n)
	}

	st := tel.Stats()
	if st.Buffered > maxBuffer+batchSize+1 {
		t.Errorf("Stats.Buffered = %d; want <= %d (buffer + one batch in flight)", st.Buffered, maxBuffer+batchSize+1)
	}
	if st.Dropped < n-(maxBuffer+batchSize+1) {
		t.Errorf("Stats.Dropped = %d; want >= %d", st.Dropped, n-(maxBuffer+batchSize+1))
	}
	tel.sender.mu.Lock()
	capacity := len(tel.sender.q.buf)
	tel.sender.mu.Unlock()
	if capacity != maxBuffer {
		t.Errorf("buffer capacity = %d; want it fixed at %d", capacity, maxBuffer)
	}

	// Close gives up when its budget ends, even with a request hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := tel.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 300ms budget", d)
	}
	if st := tel.Stats(); st.Buffered != 0 || st.Sent != 0 {
		t.Errorf("Stats after Close = %+v; want nothing buffered or sent", st)
	}
}

// main runs the server under signal.NotifyContext and closes telemetry when SIGTERM arrives:
// the buffered items must reach the endpoint.
func TestSIGTERMFlushes(t *testing.T) {
	f := newFakeIngestion(t)
	tel := mustNew(t, Config{Connection: f.connection(false), Interval: time.Hour})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	want := sendOutcomes(tel, 3)
	if _, acc := f.snapshot(); len(acc) != 0 {
		t.Fatalf("sent %d items before SIGTERM; want none yet", len(acc))
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM not delivered")
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second) // the shutdown budget
	defer cancel()
	if err := tel.Close(shutdown); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, acc := f.snapshot(); !slices.Equal(requestIDs(acc), want) {
		t.Errorf("after SIGTERM flushed %v; want %v", requestIDs(acc), want)
	}
}

func TestCloseIdempotentAndLateItems(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	stdout := &testenv.Buffer{}
	tel := mustNew(t, Config{Connection: f.connection(false), Stdout: stdout, Interval: time.Hour})
	sendOutcomes(tel, 1)
	mustClose(t, tel)
	mustClose(t, tel)
	sendOutcomes(tel, 1) // after Close: still on stdout, not exported
	if st := tel.Stats(); st != (Stats{Sent: 1, Dropped: 1}) {
		t.Errorf("Stats = %+v; want {Sent:1 Dropped:1}", st)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 2 {
		t.Errorf("stdout has %d lines; want 2", n)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	conn := ConnectionString{InstrumentationKey: testIKey, IngestionEndpoint: "https://example.invalid", AAD: true}
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"AAD without credential", Config{Connection: conn}, ErrNoCredential},
		{"redaction without salt", Config{RedactUPN: true}, ErrNoSalt},
		{"redaction without salt, with a connection string", Config{RedactUPN: true, Connection: ConnectionString{InstrumentationKey: testIKey}}, ErrNoSalt},
		{"redaction with a short salt", Config{RedactUPN: true, UPNSalt: "fifteen-chars15"}, ErrNoSalt},
		{"key not a GUID", Config{Connection: ConnectionString{InstrumentationKey: "x\"y"}}, ErrConnectionString},
		{"plain http endpoint", Config{Connection: ConnectionString{InstrumentationKey: testIKey, IngestionEndpoint: "http://dc.example.com"}}, ErrConnectionString},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tel, err := New(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Errorf("New(%+v) = %v, %v; want %v", tt.cfg, tel, err, tt.want)
			}
		})
	}
}
