package telemetry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/request"
)

func TestParseConnectionString(t *testing.T) {
	t.Parallel()
	const ikey = "00000000-0000-0000-0000-000000000000"
	tests := []struct {
		name string
		in   string
		want ConnectionString
	}{
		{"empty: telemetry off", "", ConnectionString{}},
		{"blank: telemetry off", "  ", ConnectionString{}},
		{"portal string",
			"InstrumentationKey=" + ikey + ";IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=1234",
			ConnectionString{ikey, "https://westeurope-5.in.applicationinsights.azure.com", false}},
		{"default endpoint", "InstrumentationKey=" + ikey, ConnectionString{ikey, DefaultIngestionEndpoint, false}},
		{"AAD, any key case, spaces, trailing ;",
			" instrumentationkey = " + ikey + " ; AUTHORIZATION=aad ; ingestionEndpoint=https://x.example.com ;",
			ConnectionString{ikey, "https://x.example.com", true}},
		{"endpoint suffix", "InstrumentationKey=" + ikey + ";EndpointSuffix=applicationinsights.us",
			ConnectionString{ikey, "https://dc.applicationinsights.us", false}},
		{"endpoint suffix and location", "InstrumentationKey=" + ikey + ";EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2",
			ConnectionString{ikey, "https://chinaeast2.dc.applicationinsights.azure.cn", false}},
		{"explicit endpoint beats suffix", "InstrumentationKey=" + ikey + ";EndpointSuffix=x.us;IngestionEndpoint=https://y.example.com/",
			ConnectionString{ikey, "https://y.example.com", false}},
		{"endpoint with path", "InstrumentationKey=" + ikey + ";IngestionEndpoint=https://proxy.example.com/ai//",
			ConnectionString{ikey, "https://proxy.example.com/ai", false}},
		{"http to loopback (tests, local fakes)", "InstrumentationKey=" + ikey + ";IngestionEndpoint=http://127.0.0.1:8080",
			ConnectionString{ikey, "http://127.0.0.1:8080", false}},
		{"unknown keys ignored", "Foo=bar;InstrumentationKey=" + ikey + ";ApplicationId=",
			ConnectionString{ikey, DefaultIngestionEndpoint, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConnectionString(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseConnectionString(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	t.Parallel()
	const ikey = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
	tests := []struct{ name, in string }{
		{"no instrumentation key", "IngestionEndpoint=https://x.example.com"},
		{"empty instrumentation key", "InstrumentationKey=;IngestionEndpoint=https://x.example.com"},
		{"key not a GUID", "InstrumentationKey=not-a-guid"},
		{"key with injected text", "InstrumentationKey=00000000-0000-0000-0000-00000000000\""},
		{"segment without =", ikey + ";garbage"},
		{"empty key name", ikey + ";=x"},
		{"duplicate key", ikey + ";instrumentationkey=11111111-1111-1111-1111-111111111111"},
		{"unknown authorization", ikey + ";Authorization=ikey"},
		{"endpoint not a URL", ikey + ";IngestionEndpoint=::nope"},
		{"endpoint relative", ikey + ";IngestionEndpoint=dc.example.com"},
		{"endpoint plain http", ikey + ";IngestionEndpoint=http://dc.example.com"},
		{"endpoint ftp", ikey + ";IngestionEndpoint=ftp://dc.example.com"},
		{"endpoint with user info", ikey + ";IngestionEndpoint=https://u:p@dc.example.com"},
		{"endpoint with query", ikey + ";IngestionEndpoint=https://dc.example.com/?x=1"},
		{"endpoint with no host", ikey + ";IngestionEndpoint=https:///path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConnectionString(tt.in)
			if !errors.Is(err, ErrConnectionString) {
				t.Fatalf("ParseConnectionString(%q) = %+v, %v; want ErrConnectionString", tt.in, got, err)
			}
			if strings.Contains(err.Error(), "00000000-0000") || strings.Contains(err.Error(), "u:p@") {
				t.Errorf("error %q repeats a value from the connection string", err)
			}
		})
	}
}

func FuzzParseConnectionString(f *testing.F) {
	f.Add("InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x.example.com/;Authorization=AAD")
	f.Add("InstrumentationKey=00000000-0000-0000-0000-000000000000;EndpointSuffix=a.b;Location=c")
	f.Add(";;=;")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConnectionString(s)
		if err != nil || !c.Enabled() {
			return
		}
		if !request.IsObjectID(c.InstrumentationKey) {
			t.Errorf("ParseConnectionString(%q) accepted key %q", s, c.InstrumentationKey)
		}
		if !strings.HasPrefix(c.IngestionEndpoint, "https://") && !strings.HasPrefix(c.IngestionEndpoint, "http://") {
			t.Errorf("ParseConnectionString(%q) accepted endpoint %q", s, c.IngestionEndpoint)
		}
		if _, err := http.NewRequest(http.MethodPost, c.IngestionEndpoint+"/v2.1/track", nil); err != nil {
			t.Errorf("ParseConnectionString(%q) endpoint %q makes no request: %v", s, c.IngestionEndpoint, err)
		}
	})
}

func TestNewOperationTraceparent(t *testing.T) {
	t.Parallel()
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		name, traceparent, want string
	}{
		{"valid", "00-" + trace + "-" + span + "-01", trace},
		{"valid, not sampled", "00-" + trace + "-" + span + "-00", trace},
		{"empty", "", "inv"},
		{"uppercase hex", "00-" + strings.ToUpper(trace) + "-" + span + "-01", "inv"},
		{"version ff", "ff-" + trace + "-" + span + "-01", "inv"},
		{"version 01", "01-" + trace + "-" + span + "-01", "inv"},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-" + span + "-01", "inv"},
		{"zero parent id", "00-" + trace + "-" + strings.Repeat("0", 16) + "-01", "inv"},
		{"short trace id", "00-" + trace[1:] + "-" + span + "-01", "inv"},
		{"extra field", "00-" + trace + "-" + span + "-01-xyz", "inv"},
		{"non-hex", "00-" + trace[:31] + "g-" + span + "-01", "inv"},
		{"wrong separators", "00_" + trace + "_" + span + "_01", "inv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op := NewOperation(tt.traceparent, "inv", "")
			if op.ID != tt.want {
				t.Errorf("NewOperation(%q, %q).ID = %q; want %q", tt.traceparent, "inv", op.ID, tt.want)
			}
			// The caller's span is the parent of ours exactly when its trace id is taken.
			wantParent := ""
			if tt.want == trace {
				wantParent = span
			}
			if op.ParentID != wantParent {
				t.Errorf("NewOperation(%q, %q).ParentID = %q; want %q", tt.traceparent, "inv", op.ParentID, wantParent)
			}
		})
	}
}

func TestNewOperation(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		traceparent, invocation, request string
		want                             Operation
	}{
		{tp, "inv", "req", Operation{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "inv"}},
		{"bogus", "inv", "req", Operation{"inv", "", "inv"}},
		{"", "", "req", Operation{"req", "", ""}},
	}
	for _, tt := range tests {
		got := NewOperation(tt.traceparent, tt.invocation, tt.request)
		if got != tt.want {
			t.Errorf("NewOperation(%q, %q, %q) = %+v; want %+v", tt.traceparent, tt.invocation, tt.request, got, tt.want)
		}
		if back := OperationFrom(WithOperation(context.Background(), got)); back != got {
			t.Errorf("OperationFrom(WithOperation(%+v)) = %+v", got, back)
		}
	}
	if got := OperationFrom(context.Background()); got != (Operation{}) {
		t.Errorf("OperationFrom(empty context) = %+v; want zero", got)
	}
}

func FuzzNewOperation(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, tp string) {
		op := NewOperation(tp, "fallback", "")
		if got := op.ID; got != "fallback" && (len(got) != 32 || !isLowerHex(got) || !strings.Contains(tp, got)) {
			t.Errorf("NewOperation(%q).ID = %q; want a 32-hex trace id from it or the fallback", tp, got)
		}
		if p := op.ParentID; p != "" && (len(p) != 16 || !isLowerHex(p) || !strings.Contains(tp, p)) {
			t.Errorf("NewOperation(%q).ParentID = %q; want a 16-hex span id from it or nothing", tp, p)
		}
	})
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0.00:00:00.0000000"},
		{-time.Second, "0.00:00:00.0000000"},
		{100 * time.Nanosecond, "0.00:00:00.0000001"},
		{99 * time.Nanosecond, "0.00:00:00.0000000"},
		{1234567891 * time.Nanosecond, "0.00:00:01.2345678"},
		{25*time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond, "1.01:02:03.0040000"},
		{30 * 24 * time.Hour, "30.00:00:00.0000000"},
		{23*time.Hour + 59*time.Minute + 59*time.Second + 999999999*time.Nanosecond, "0.23:59:59.9999999"},
		{10*time.Hour + 10*time.Minute + 10*time.Second + 1010*time.Microsecond, "0.10:10:10.0010100"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.in); got != tt.want {
			t.Errorf("formatDuration(%v) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRing(t *testing.T) {
	t.Parallel()
	item := func(s string) []byte { return []byte(s) }
	strs := func(b [][]byte) []string {
		var out []string
		for _, x := range b {
			out = append(out, string(x))
		}
		return out
	}
	r := ring{buf: make([][]byte, 3)}
	for _, s := range []string{"a", "b", "c"} {
		if r.pushBack(item(s)) {
			t.Fatalf("pushBack(%q) into a non-full ring dropped", s)
		}
	}
	if !r.pushBack(item("d")) {
		t.Fatal("pushBack into a full ring did not report a drop")
	}
	if r.pushFront(item("z")) {
		t.Fatal("pushFront into a full ring succeeded; the requeued (oldest) item must be dropped")
	}
	if got := strs(r.popFront(2)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("popFront(2) = %v; want [b c] (a dropped)", got)
	}
	if !r.pushFront(item("y")) || !r.pushFront(item("x")) {
		t.Fatal("pushFront into a ring with room failed")
	}
	if got := strs(r.popFront(10)); !slices.Equal(got, []string{"x", "y", "d"}) {
		t.Fatalf("popFront(10) = %v; want [x y d]", got)
	}
	if r.n != 0 || r.popFront(1) != nil || len(r.buf) != 3 {
		t.Fatalf("ring after draining: n=%d cap=%d; want empty with capacity 3", r.n, len(r.buf))
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, upn, want string }{
		{"Resource 'Alice@Contoso.com' does not exist", "alice@contoso.com", "Resource '[upn]' does not exist"},
		{"/users/alice%40contoso.com/x", "alice@contoso.com", "/users/[upn]/x"},
		{"guest jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "", "guest [redacted]"},
		{"encoded jane_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com!", "", "encoded [redacted]!"},
		{"no upn here: 3f1c0e2a-1111-4222-8333-444455556666", "", "no upn here: 3f1c0e2a-1111-4222-8333-444455556666"},
	}
	for _, tt := range tests {
		if got := scrub(tt.in, tt.upn); got != tt.want {
			t.Errorf("scrub(%q, %q) = %q; want %q", tt.in, tt.upn, got, tt.want)
		}
	}
}

func TestTemplateGraph(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"POST /users/alice@contoso.com/revokeSignInSessions", "POST /users/{id}/revokeSignInSessions"},
		{"https://graph.microsoft.com/v1.0/users/a%40b.com?$select=id", "https://graph.microsoft.com/v1.0/users/{id}?$select=id"},
		{"POST /users/{id}/revokeSignInSessions", "POST /users/{id}/revokeSignInSessions"},
		// Looks templated but is not: the fast path must not let these through.
		{"GET /users/{id}x@contoso.com", "GET /users/{id}"},
		{"GET /USERS/{id}/x /Users/bob@contoso.com", "GET /USERS/{id}/x /Users/{id}"},
		{"https://h/v1.0/users/{id}?$select=id&next=/users/eve@contoso.com", "https://h/v1.0/users/{id}?$select=id&next=/users/{id}"},
		{"/users/{id}", "/users/{id}"},
		{"/users/", "/users/"},
	}
	for _, tt := range tests {
		if got := templateGraph(tt.in); got != tt.want {
			t.Errorf("templateGraph(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
