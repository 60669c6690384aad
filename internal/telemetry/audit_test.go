package telemetry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// lineKeys returns the keys of one JSON object line in the order they appear.
func lineKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line %q: not an object (%v, %v)", line, tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
	return keys
}

// TestAuditLineFieldOrder pins the stdout line's fields and their order: log/slog's time, level
// and msg, then the event name, its properties in the documented order and its measurements.
func TestAuditLineFieldOrder(t *testing.T) {
	t.Parallel()
	var out testenv.Buffer
	tel := mustNew(t, Config{Stdout: &out})
	tel.Outcome(context.Background(), fullOutcome())
	tel.Rejected(context.Background(), Rejection{Reason: "bad_token", Trigger: revoke.TriggerHTTP, RequestID: "r1", ClientIP: "203.0.113.7"})
	tel.StateFallback(WithOperation(context.Background(), Operation{ID: "op", InvocationID: "inv-9"}), "claim", errors.New("table unreachable"))
	mustClose(t, tel)

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := [][]string{
		{"time", "level", "msg", "event", "status", "upn", "userId", "trigger", "requestId", "invocationId",
			"caller", "ticket", "reason", "requestedBy", "dryRun", "graphRequestId", "errorCode", "errorMessage",
			"verified", "sessionsValidFrom", "dequeueCount", "guard", "warning", "durationMs", "graphMs", "attempts"},
		{"time", "level", "msg", "event", "reason", "trigger", "requestId", "clientIp"},
		{"time", "level", "msg", "event", "operation", "error", "invocationId"},
	}
	if len(lines) != len(want) {
		t.Fatalf("stdout has %d lines; want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		if got := lineKeys(t, line); !slices.Equal(got, want[i]) {
			t.Errorf("line %d keys = %v; want %v\n%s", i, got, want[i], line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if ts, _ := m["time"].(string); ts == "" {
			t.Errorf("line %d time = %v; want RFC 3339", i, m["time"])
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d time %q: %v", i, ts, err)
		}
	}
	checkLine(t, lines[2], eventStateFallback,
		map[string]string{"operation": "claim", "error": "table unreachable", "invocationId": "inv-9"}, nil)
}

// TestAuditLinesWholeUnderLoad writes outcomes from many goroutines to a stdout that takes its
// time: every line arrives whole, none is lost.
func TestAuditLinesWholeUnderLoad(t *testing.T) {
	t.Parallel()
	out := &slowWriter{}
	tel := mustNew(t, Config{Stdout: out})
	const writers, each = 16, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				tel.Outcome(context.Background(), revoke.Outcome{
					Meta:   revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: fmt.Sprintf("w%d-%d", w, i)},
					Status: revoke.StatusRevoked, UPN: "alice@contoso.com", Reason: strings.Repeat("r", i*10),
				})
			}
		})
	}
	wg.Wait()
	mustClose(t, tel)

	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out.bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("torn line %q: %v", sc.Text(), err)
		}
		seen[m["requestId"].(string)] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct lines; want %d", len(seen), writers*each)
	}
}

// slowWriter yields on every write, so that concurrent writers would interleave if lines were
// written in pieces.
type slowWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	for i, b := range p {
		w.mu.Lock()
		w.buf.WriteByte(b)
		w.mu.Unlock()
		if i%64 == 0 {
			time.Sleep(0) // let others run between pieces of one write
		}
	}
	return len(p), nil
}

func (w *slowWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

var _ io.Writer = (*slowWriter)(nil)

func TestHashUPN(t *testing.T) {
	t.Parallel()
	// Computed independently: printf '%s' alice@contoso.com | openssl dgst -sha256 -hmac 0123456789abcdef
	const want = "ad1debc444a066266cd198a97f76a7422b39b36a363ce7dae315edd6ba33439c"
	tests := []struct {
		salt, upn string
		want      string
	}{
		{"0123456789abcdef", "alice@contoso.com", want},
		{"0123456789abcdef", "Alice@Contoso.COM", want}, // UPNs are case-insensitive
	}
	for _, tt := range tests {
		if got := HashUPN(tt.salt, tt.upn); got != tt.want {
			t.Errorf("HashUPN(%q, %q) = %q; want %q", tt.salt, tt.upn, got, tt.want)
		}
	}
	if HashUPN("fedcba9876543210", "alice@contoso.com") == want {
		t.Error("HashUPN ignores the salt")
	}
}

// TestCLIOutcome: the CLI's outcomes carry trigger "cli" and caller "cli:<who signed in>" as
// they are, when not redacting.
func TestCLIOutcome(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	var out testenv.Buffer
	tel := mustNew(t, Config{Connection: f.connection(false), Stdout: &out, Interval: time.Hour})
	tel.Outcome(context.Background(), revoke.Outcome{
		Meta:   revoke.Meta{Trigger: revoke.TriggerCLI, RequestID: "cli-1", Caller: "cli:analyst@contoso.com"},
		Status: revoke.StatusRevoked, UPN: "alice@contoso.com",
	})
	mustClose(t, tel)
	want := map[string]string{"status": "revoked", "upn": "alice@contoso.com", "trigger": "cli",
		"requestId": "cli-1", "caller": "cli:analyst@contoso.com", "dryRun": "false"}
	_, acc := f.snapshot()
	if len(acc) != 1 || acc[0].Event == nil || !maps.Equal(acc[0].Event.Properties, want) {
		t.Fatalf("exported %+v; want one SessionRevocation with %v", acc, want)
	}
	checkLine(t, strings.TrimSpace(out.String()), eventRevocation, want, map[string]float64{"durationMs": 0, "graphMs": 0, "attempts": 0})
}

func TestStateFallbackEvent(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	var out testenv.Buffer
	tel := mustNew(t, Config{Connection: f.connection(false), Stdout: &out, Interval: time.Hour, RedactUPN: true, UPNSalt: "0123456789abcdef"})
	err := errors.New("GET https://acct.table.core.windows.net/revokestate()?sv=2024&sig=SECRETSIG failed for bob@contoso.com\nRESPONSE 503\nmore detail")
	tel.StateFallback(context.Background(), "claim", err)
	mustClose(t, tel)

	wantErr := "GET https://acct.table.core.windows.net/revokestate()?[query] failed for [redacted]"
	_, acc := f.snapshot()
	if len(acc) != 1 || acc[0].Event == nil || acc[0].Event.Name != eventStateFallback {
		t.Fatalf("exported %+v; want one StateFallback event", acc)
	}
	if got := acc[0].prop("operation"); got != "claim" {
		t.Errorf("operation = %q; want claim", got)
	}
	if got := acc[0].prop("error"); got != wantErr {
		t.Errorf("error = %q; want %q", got, wantErr)
	}
	if s := out.String(); strings.Contains(s, "SECRETSIG") || strings.Contains(s, "bob@") || !strings.Contains(s, `"msg":"state fallback"`) {
		t.Errorf("stdout = %s; want a state fallback line without the query or the UPN", s)
	}
}

// TestEnvelopeHostileValues: caller-controlled text in tags and properties survives the round
// trip through the ingestion format (invalid UTF-8 becomes U+FFFD, as encoding/json writes it).
func TestEnvelopeHostileValues(t *testing.T) {
	t.Parallel()
	tel := &Telemetry{ikey: testIKey, typeName: "Microsoft.ApplicationInsights.x.", role: "r\"<", instance: "i\n"}
	hostile := "a\"b\\c\n<d>&\u2028\xff"
	b := tel.envelope(time.Unix(0, 1), Operation{ID: hostile, ParentID: hostile}, "Event", "EventData", eventData{
		Ver: 2, Name: hostile, Properties: properties([]field{{"k1", hostile}}), Measurements: measurements([]measure{{"m", 1.5}, {"inf", 1 / zero()}}),
	})
	var got struct {
		Tags map[string]string
		Data struct {
			BaseData struct {
				Name         string
				Properties   map[string]string
				Measurements map[string]float64
			}
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("envelope is not JSON: %v\n%s", err, b)
	}
	want := strings.ToValidUTF8(hostile, "\uFFFD")
	if got.Tags["ai.operation.id"] != want || got.Tags["ai.operation.parentId"] != want || got.Data.BaseData.Name != want || got.Data.BaseData.Properties["k1"] != want {
		t.Errorf("values did not round-trip: %s", b)
	}
	if m := got.Data.BaseData.Measurements; m["m"] != 1.5 || m["inf"] != 0 {
		t.Errorf("measurements = %v; want m 1.5, inf 0", m)
	}
}

func zero() float64 { return 0 }
