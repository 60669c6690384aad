package telemetry

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hand-written encoder must produce byte for byte what encoding/json would: the ingestion
// endpoint and every log pipeline that reads stdout parse it as JSON.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\b\f",
		"\x00\x01\x1f\x7f", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "ünïcödé 日本 🔒",
		"\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("appendString(%q) = %s; encoding/json: %s", s, got[1:], want)
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, x := range []float64{0, 1, -1, 0.5, 12.345678, 1e-7, 1e-6, 1e20, 1e21, 123456789012345678901234.0, math.SmallestNonzeroFloat64, math.MaxFloat64, -0.000001234} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		got := appendFloat(nil, x)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if string(got) != "0" {
				t.Fatalf("appendFloat(%v) = %s; want 0", x, got)
			}
			return
		}
		want, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendFloat(%v) = %s; encoding/json: %s", x, got, want)
		}
	})
}

func TestEnvelopeIsValidJSONWithHostileValues(t *testing.T) {
	tel := &Telemetry{ikey: "00000000-1111-2222-3333-444444444444", typeName: "Microsoft.ApplicationInsights.x.", role: "r\"<", instance: "i\n"}
	hostile := "a\"b\\c\n<d>&\u2028\xff"
	b := tel.envelope(time.Unix(0, 1).UTC(), Operation{ID: hostile, ParentID: hostile}, "Event", "EventData", eventData{
		name: hostile, props: []field{{"k1", hostile}, {"k2", ""}}, meas: []measure{{"m", 1.5}, {"nan", math.NaN()}},
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
	if got.Data.BaseData.Measurements["m"] != 1.5 || got.Data.BaseData.Measurements["nan"] != 0 {
		t.Errorf("measurements = %v", got.Data.BaseData.Measurements)
	}
	dep := tel.envelope(time.Unix(0, 1).UTC(), Operation{ID: "op"}, "RemoteDependency", "RemoteDependencyData", dependencyData{id: "1", name: hostile, success: true})
	if !json.Valid(dep) {
		t.Errorf("dependency envelope is not JSON: %s", dep)
	}
}

// lockedBuffer records each Write separately, so that a test can see lines were written whole.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	block  chan struct{} // when set, each Write waits for a receive
	slow   time.Duration // each Write sleeps this long
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	if b.block != nil {
		<-b.block
	}
	time.Sleep(b.slow)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func TestLineWriterKeepsLinesWholeAndLosesNone(t *testing.T) {
	for _, tt := range []struct {
		name   string
		slow   time.Duration // each write(2) takes this long, so that lines pile up
		length int           // longest line
	}{
		{"fast stdout", 0, 60},
		// Lines pile up beyond the buffer size kept for reuse between writes.
		{"slow stdout", time.Millisecond, 2000},
	} {
		t.Run(tt.name, func(t *testing.T) { testLineWriter(t, tt.slow, tt.length) })
	}
}

func testLineWriter(t *testing.T, slow time.Duration, length int) {
	out := lockedBuffer{slow: slow}
	l := newLineWriter(&out)
	const writers, lines = 16, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				line := strings.Repeat(string(rune('a'+w)), 10+i%length) + "\n"
				if n, err := l.Write([]byte(line)); n != len(line) || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
			}
		})
	}
	wg.Wait()
	l.wait()
	got := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines written; want %d", len(got), writers*lines)
	}
	for _, line := range got {
		if strings.Trim(line, line[:1]) != "" {
			t.Fatalf("torn line %q", line)
		}
	}
	t.Logf("%d lines in %d writes", len(got), out.writes)
}

func TestLineWriterBoundsWhatWaits(t *testing.T) {
	out := lockedBuffer{block: make(chan struct{})}
	l := newLineWriter(&out)
	first := make(chan struct{})
	go func() { _, _ = l.Write([]byte("first\n")); close(first) }() // blocks inside out.Write
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	queued := make(chan int, 1)
	go func() {
		n := 0
		for range maxPendingLines/len(line) + 1 {
			_, _ = l.Write(line)
			n++
		}
		queued <- n
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case n := <-queued:
		t.Fatalf("%d lines queued behind a blocked write; want Write to wait beyond %d bytes", n, maxPendingLines)
	default:
	}
	close(out.block) // stdout drains
	<-first
	<-queued
	l.wait()
	if want := 6 + (maxPendingLines/len(line)+1)*len(line); out.buf.Len() != want {
		t.Fatalf("%d bytes written; want %d", out.buf.Len(), want)
	}
}

func TestAuditLineShape(t *testing.T) {
	var out bytes.Buffer
	tel, err := New(Config{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	tel.writeLine("session revocation", eventRevocation, []field{{"status", "revoked"}, {"upn", "a@contoso.com"}}, []measure{{"durationMs", 12.5}})
	if err := tel.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("audit line is not JSON: %v: %s", err, out.Bytes())
	}
	if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
	if m["level"] != "INFO" || m["msg"] != "session revocation" || m["event"] != eventRevocation || m["status"] != "revoked" || m["durationMs"] != 12.5 {
		t.Errorf("audit line = %s", out.Bytes())
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("}\n")) || bytes.Count(out.Bytes(), []byte("\n")) != 1 {
		t.Errorf("want one line: %q", out.Bytes())
	}
}
