package graph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// countingPacer lets everything through and counts.
type countingPacer struct{ n int }

func (p *countingPacer) Take(context.Context) (time.Duration, bool) { p.n++; return 0, true }

func TestSignInsFilterPagingAndShape(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	since := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	for i := range 230 {
		f.graph.AddSignIns(graphtest.SignIn{UserID: alice.ID, Created: since.Add(time.Duration(i) * time.Second), App: "Outlook", IP: "203.0.113.7", City: "Oslo", Country: "NO", ErrorCode: 50126, Interactive: true})
	}
	f.graph.AddSignIns(
		graphtest.SignIn{UserID: alice.ID, Created: since.Add(-time.Minute), App: "before"},
		graphtest.SignIn{UserID: guest.ID, Created: since.Add(time.Minute), App: "someone else"},
	)
	pacer := &countingPacer{}
	got, err := f.c.SignInsReader(pacer).SignIns(mustContext(t, 10*time.Second), alice.ID, since)
	if err != nil {
		t.Fatalf("SignIns = %v", err)
	}
	if len(got) != 200 {
		t.Errorf("SignIns read %d; want 200 (the cap)", len(got))
	}
	reqs := f.graph.SignInRequests()
	if len(reqs) != 4 || pacer.n != 4 {
		t.Errorf("%d requests, %d paced; want 4 of 50, each paced", len(reqs), pacer.n)
	}
	wantFilter := "userId eq '" + alice.ID + "' and createdDateTime ge 2026-12-05T08:00:00Z"
	if q := reqs[0].Query; q.Get("$filter") != wantFilter || q.Get("$top") != "50" {
		t.Errorf("first request query %v; want $filter=%q $top=50", q, wantFilter)
	}
	if s := got[0]; s.App != "Outlook" || s.IP != "203.0.113.7" || s.Location != "Oslo, NO" || s.ErrorCode != 50126 || !s.Interactive || s.At.IsZero() {
		t.Errorf("first sign-in = %+v; want Graph's fields mapped", s)
	}
	for _, c := range f.calls.got() {
		if strings.Contains(c.Data, alice.ID) || c.Name != "GET /auditLogs/signIns" {
			t.Errorf("dependency %+v names the user or the wrong operation", c)
		}
	}
}

func TestSignInsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		script     []graphtest.Response
		wantReason string // "" = transient
		wantErr    bool
		wantWaits  int
	}{
		{"missing permission", []graphtest.Response{graphtest.Forbidden()}, watch.ReasonMissingPermission, true, 0},
		{"no premium licence", []graphtest.Response{graphtest.NoPremiumLicense()}, watch.ReasonNoPremiumLicense, true, 0},
		{"user gone", []graphtest.Response{{Status: 404}}, watch.ReasonUserGone, true, 0},
		{"other 403 is transient", []graphtest.Response{{Status: 403, Code: "UnknownError"}}, "", true, 0},
		{"500 is transient", []graphtest.Response{{Status: 500}}, "", true, 0},
		{"429 honours Retry-After then succeeds", []graphtest.Response{graphtest.TooManyRequests("3")}, "", false, 1},
		{"503 five times gives up", []graphtest.Response{graphtest.ServiceUnavailable(), graphtest.ServiceUnavailable(), graphtest.ServiceUnavailable(), graphtest.ServiceUnavailable(), graphtest.ServiceUnavailable()}, "", true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFixture(t)
			f.graph.ScriptSignIns(tt.script...)
			_, err := f.c.SignInsReader(nil).SignIns(mustContext(t, 30*time.Second), alice.ID, time.Now().Add(-time.Hour))
			var re *watch.ReadError
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("SignIns = %v; want success", err)
			case tt.wantErr && !errors.As(err, &re):
				t.Fatalf("SignIns = %v; want a *watch.ReadError", err)
			case tt.wantErr && re.Reason != tt.wantReason:
				t.Errorf("reason = %q; want %q", re.Reason, tt.wantReason)
			}
			if w := f.waits.got(); len(w) != tt.wantWaits || (tt.name == "429 honours Retry-After then succeeds" && w[0] != 3*time.Second) {
				t.Errorf("waits = %v; want %d (Retry-After honoured)", w, tt.wantWaits)
			}
		})
	}
}

func TestSignInsRefusesAFilterInjection(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	_, err := f.c.SignInsReader(nil).SignIns(mustContext(t, 5*time.Second), "x' or userId ne 'y", time.Now())
	if err == nil || len(f.graph.SignInRequests()) != 0 {
		t.Errorf("SignIns(hostile id) = %v with %d requests; want refused before Graph", err, len(f.graph.SignInRequests()))
	}
}
