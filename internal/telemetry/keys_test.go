package telemetry

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// writtenElsewhere are the events of testdata/telemetry/keys.json this package's methods do not
// write yet; the tests of what writes them compare their keys with the list.
var writtenElsewhere = map[string]string{
	"RevocationWatch":   "the sign-in watch",
	"CallbackDelivered": "outcome callbacks",
	"CallbackFailed":    "outcome callbacks",
}

// TestKeysListIsWhatIsWritten: testdata/telemetry/keys.json, against which every KQL query in
// the repository is checked, lists exactly the properties and measurements this package writes
// for each of its events (every field set, with and without redaction): a key the handler stops
// writing, or starts writing, fails here before a query or alert silently reads nothing.
func TestKeysListIsWhatIsWritten(t *testing.T) {
	t.Parallel()
	gotProps, gotMeas := map[string]map[string]bool{}, map[string]map[string]bool{}
	for _, redact := range []bool{false, true} {
		f := newFakeIngestion(t)
		tel := mustNew(t, Config{
			Connection: f.connection(false), RedactUPN: redact, UPNSalt: "0123456789abcdef0123",
			MaxBuffer: 1, Interval: time.Hour, // the second item overflows: TelemetryDropped follows
		})
		ctx := WithOperation(context.Background(), NewOperation("", "inv-1", "req-1"))
		tel.Outcome(ctx, fullOutcome())
		tel.Outcome(ctx, fullOutcome())
		mustClose(t, tel)

		tel = mustNew(t, Config{Connection: f.connection(false), RedactUPN: redact, UPNSalt: "0123456789abcdef0123", Interval: time.Hour})
		o := fullOutcome()
		o.RequestedBy = "analyst@contoso.com"
		tel.Outcome(ctx, o)
		tel.Rejected(ctx, Rejection{Reason: "bad_signature", Trigger: revoke.TriggerHTTP, RequestID: "req-1", ClientIP: "203.0.113.7"})
		tel.StateFallback(ctx, "claim", errors.New("table unreachable"))
		tel.Permission(ctx, Permission{Graph: "missing_permission", Missing: []string{"User.Read.All"}, UserLookups: true})
		tel.Dependency(ctx, Dependency{Name: "POST /users/x/revokeSignInSessions", Target: "graph.microsoft.com", Data: "https://graph.microsoft.com/v1.0/users/x/revokeSignInSessions",
			ResultCode: 204, Success: true, Duration: time.Millisecond, RequestID: "graph-req-1"})
		mustClose(t, tel)

		_, items := f.snapshot()
		for _, it := range items {
			name, props, meas := "dependencies", map[string]string(nil), map[string]float64(nil)
			switch {
			case it.Event != nil:
				name, props, meas = it.Event.Name, it.Event.Properties, it.Event.Measurements
			case it.Dep != nil:
				props = it.Dep.Properties
			}
			if gotProps[name] == nil {
				gotProps[name], gotMeas[name] = map[string]bool{}, map[string]bool{}
			}
			for k := range props {
				gotProps[name][k] = true
			}
			for k := range meas {
				gotMeas[name][k] = true
			}
		}
	}
	for name := range allowedProps {
		if _, ok := writtenElsewhere[name]; ok {
			if gotProps[name] != nil {
				t.Errorf("%s is written here now: remove it from writtenElsewhere", name)
			}
			continue
		}
		if gotProps[name] == nil {
			t.Errorf("keys.json lists %s, which this test never saw written (write it here, or name who writes it in writtenElsewhere)", name)
			continue
		}
		if got, want := slices.Sorted(maps.Keys(gotProps[name])), slices.Sorted(slices.Values(allowedProps[name])); !slices.Equal(got, want) {
			t.Errorf("%s properties written = %q; keys.json lists %q", name, got, want)
		}
		if name == "dependencies" {
			continue
		}
		if got, want := slices.Sorted(maps.Keys(gotMeas[name])), slices.Sorted(slices.Values(allowedMeasurements[name])); !slices.Equal(got, want) {
			t.Errorf("%s measurements written = %q; keys.json lists %q", name, got, want)
		}
	}
}
