package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// timerStatus is the schedule status the host sends a timer-triggered custom handler.
const timerStatus = `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2025-11-21T03:30:00+00:00","Next":"2025-11-22T03:30:00+00:00","LastUpdated":"2025-11-21T03:30:00.0129437+00:00"},"IsPastDue":false}`

var errTable = errors.New("table unreachable")

// countingState counts cleanups on top of a memory store.
type countingState struct {
	*state.Memory
	runs    int
	deleted int
	err     error
}

func (c *countingState) Cleanup(ctx context.Context) (int, error) {
	c.runs++
	if c.err != nil {
		return c.deleted, c.err
	}
	return c.deleted, nil
}

func TestStateCleanupRoute(t *testing.T) {
	t.Parallel()
	asString, _ := json.Marshal(timerStatus)
	tests := []struct {
		name    string
		body    string
		err     error
		want    int
		wantLog string
		runs    int
	}{
		{"the host's invocation", string(testenv.Fixture(t, "timer-state-cleanup.json")), nil, 200, "deleted 7 expired entries", 1},
		{"timer as a JSON-encoded string", `{"Data":{"timer":` + string(asString) + `},"Metadata":{}}`, nil, 200, "deleted 7 expired entries", 1},
		{"budget ran out", `{"Data":{"timer":` + timerStatus + `},"Metadata":{}}`, context.DeadlineExceeded, 200, "the rest at the next run", 1},
		{"store failed", `{"Data":{"timer":` + timerStatus + `},"Metadata":{}}`, errTable, 500, "failed after deleting 7", 1},
		{"not an invocation", `{"upn":"alice@contoso.com"}`, nil, 400, "could not be decoded", 0},
		{"timer not a schedule", `{"Data":{"timer":42},"Metadata":{}}`, nil, 400, "could not be decoded", 0},
		{"trailing data", `{"Data":{"timer":{}},"Metadata":{}} {}`, nil, 400, "could not be decoded", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := &countingState{Memory: state.NewMemory(state.MemoryConfig{}), deleted: 7, err: tt.err}
			h := server.NewServer(server.Deps{State: st, Audit: &audit{}})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/state-cleanup", strings.NewReader(tt.body)))
			var rep hostReply
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.Outputs == nil || !bytes.Contains(w.Body.Bytes(), []byte(`"ReturnValue":null`)) {
				t.Fatalf("reply %s (%v); want {Outputs:{}, Logs:[…], ReturnValue:null}", w.Body, err)
			}
			if w.Code != tt.want || len(rep.Logs) != 1 || !strings.Contains(rep.Logs[0], tt.wantLog) || st.runs != tt.runs {
				t.Errorf("POST /state-cleanup %s = %d %v after %d cleanups; want %d with a log containing %q after %d", tt.body, w.Code, rep.Logs, st.runs, tt.want, tt.wantLog, tt.runs)
			}
		})
	}
}

// The real memory store's cleanup drops what has expired.
func TestStateCleanupDeletesExpired(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_763_769_541, 0)
	clock := func() time.Time { return now }
	st := state.NewMemory(state.MemoryConfig{Now: clock})
	if err := st.PutStatus(context.Background(), "AAAAAAAAAAAAAAAAAAAAAA", []byte(`{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	h := server.NewServer(server.Deps{State: st, Audit: &audit{}, Now: clock})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/state-cleanup", strings.NewReader(`{"Data":{"timer":`+timerStatus+`},"Metadata":{}}`)))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "deleted 1 expired") {
		t.Errorf("cleanup = %d %s; want 200 with one entry deleted", w.Code, w.Body)
	}
}

func TestHealthReportsState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	w := h.do(httptest.NewRequest(http.MethodGet, "/api/health", nil))
	var body struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.State != "memory" {
		t.Errorf("health = %s; want state memory", w.Body)
	}
}
