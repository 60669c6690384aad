package testenv_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// The encoder reproduces every captured queue invocation of testdata/host from the message and
// the delivery's facts alone, so that tests built on it send what the host sends.
func TestQueueInvocationMatchesTheHost(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(testenv.FixtureDir(t), "queue-*.json"))
	if err != nil || len(files) < 5 {
		t.Fatalf("queue fixtures = %v, %v; want the captured invocations", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			want := testenv.Fixture(t, filepath.Base(file))
			var fx struct {
				Data     struct{ Message string }
				Metadata struct {
					DequeueCount, Id, InsertionTime, PopReceipt string
					Sys                                         struct{ MethodName, UtcNow, RandGuid string }
				}
			}
			if err := json.Unmarshal(want, &fx); err != nil {
				t.Fatal(err)
			}
			d := testenv.QueueDelivery{Function: fx.Metadata.Sys.MethodName, RandGUID: fx.Metadata.Sys.RandGuid}
			d.Text = []byte(mustUnquote(t, fx.Data.Message))
			d.ID, d.PopReceipt = mustUnquote(t, fx.Metadata.Id), mustUnquote(t, fx.Metadata.PopReceipt)
			n, err := strconv.Atoi(fx.Metadata.DequeueCount)
			if err != nil {
				t.Fatal(err)
			}
			d.DequeueCount = n
			d.Inserted = mustTime(t, fx.Metadata.InsertionTime)
			d.Now = mustTime(t, fx.Metadata.Sys.UtcNow)
			got := d.Invocation()
			if !reflect.DeepEqual(mustJSON(t, got), mustJSON(t, want)) {
				t.Errorf("Invocation() =\n%s\nwant (as JSON)\n%s", got, want)
			}
		})
	}
}

func TestTimerInvocationHasTheHostsShape(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 11, 22, 3, 30, 0, 15327100, time.UTC)
	got := mustJSON(t, testenv.TimerInvocation("state-cleanup", now))
	want := mustJSON(t, testenv.Fixture(t, "timer-state-cleanup.json"))
	// The RandGuid is random and LastUpdated is the host's own bookkeeping; the rest is the capture.
	for _, m := range []any{got, want} {
		meta := m.(map[string]any)["Metadata"].(map[string]any)["sys"].(map[string]any)
		delete(meta, "RandGuid")
		status := m.(map[string]any)["Data"].(map[string]any)["timer"].(map[string]any)["ScheduleStatus"].(map[string]any)
		delete(status, "LastUpdated")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TimerInvocation = %v; want %v", got, want)
	}
}

func mustUnquote(t *testing.T, s string) string {
	t.Helper()
	var out string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("%q is not a JSON string: %v", s, err)
	}
	return out
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func mustJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}
