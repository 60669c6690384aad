package watch

import (
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []SignIn
		want    Finding
		latest  []int // error codes of latest, in order
		latestT []int // minutes of latest, in order
	}{
		{"none", nil, Clean, nil, nil},
		{"success wins over everything", []SignIn{{At: at(1), ErrorCode: 50173}, {At: at(2), ErrorCode: 0}}, SignedInAgain, []int{0, 50173}, []int{2, 1}},
		{"each revocation code is reuse", []SignIn{{At: at(1), ErrorCode: 50126}, {At: at(2), ErrorCode: 70008}}, ReuseBlocked, []int{70008, 50126}, []int{2, 1}},
		{"50132", []SignIn{{At: at(1), ErrorCode: 50132}}, ReuseBlocked, []int{50132}, []int{1}},
		{"50133", []SignIn{{At: at(1), ErrorCode: 50133}}, ReuseBlocked, []int{50133}, []int{1}},
		{"other refusals", []SignIn{{At: at(1), ErrorCode: 50126}, {At: at(3), ErrorCode: 53003}}, AttemptsFailed, []int{53003, 50126}, []int{3, 1}},
		{"successes first, newest first, at most five", []SignIn{
			{At: at(9), ErrorCode: 50126}, {At: at(1), ErrorCode: 0}, {At: at(8), ErrorCode: 50126}, {At: at(2), ErrorCode: 0},
			{At: at(7), ErrorCode: 50126}, {At: at(6), ErrorCode: 50126}, {At: at(5), ErrorCode: 50126},
		}, SignedInAgain, []int{0, 0, 50126, 50126, 50126}, []int{2, 1, 9, 8, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Decide("15m", at(15), tt.in)
			if r.Finding != tt.want || r.SignIns != len(tt.in) || r.After != "15m" || len(r.Latest) != len(tt.latest) {
				t.Fatalf("Decide(%v) = %+v; want %s with %d latest", tt.in, r, tt.want, len(tt.latest))
			}
			for i, s := range r.Latest {
				if s.ErrorCode != tt.latest[i] || s.At != at(tt.latestT[i]).Format(time.RFC3339) {
					t.Errorf("latest[%d] = %+v; want errorCode %d at minute %d", i, s, tt.latest[i], tt.latestT[i])
				}
			}
		})
	}
}

// fakes of the watcher's collaborators.
type fakeReader struct {
	calls int
	err   error
	out   []SignIn
}

func (f *fakeReader) SignIns(context.Context, string, time.Time) ([]SignIn, error) {
	f.calls++
	return f.out, f.err
}

type fakeOnce struct {
	done, busy      bool
	finished, freed int
}

func (f *fakeOnce) Begin(context.Context, string) (string, bool, error) {
	if f.busy {
		return "", false, ErrBusy
	}
	return "lease", f.done, nil
}
func (f *fakeOnce) Finish(context.Context, string, string, []byte) error {
	f.finished++
	f.done = true
	return nil
}
func (f *fakeOnce) Abandon(context.Context, string, string) error { f.freed++; return nil }

type fakeSink struct{ events []Event }

func (f *fakeSink) Watched(_ context.Context, e Event) { f.events = append(f.events, e) }

var (
	_ Reader = (*fakeReader)(nil)
	_ Once   = (*fakeOnce)(nil)
	_ Sink   = (*fakeSink)(nil)
)

func TestWatcherRun(t *testing.T) {
	t.Parallel()
	check := Check{RequestID: "r1", Caller: "webhook:0", UserID: "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a", RevokedAt: t0, After: "15m", Delay: 15 * time.Minute}
	tests := []struct {
		name        string
		reader      *fakeReader
		once        *fakeOnce
		last        bool
		wantErr     error
		wantFinding Finding
		wantReason  string
		wantEvents  int
	}{
		{"made once", &fakeReader{}, &fakeOnce{}, false, nil, Clean, "", 1},
		{"already made", &fakeReader{}, &fakeOnce{done: true}, false, nil, "", "", 0},
		{"busy elsewhere retries", &fakeReader{}, &fakeOnce{busy: true}, false, ErrRetry, "", "", 0},
		{"busy on the last delivery is left to the holder", &fakeReader{}, &fakeOnce{busy: true}, true, nil, "", "", 0},
		{"transient failure retries", &fakeReader{err: &ReadError{Err: errors.New("503")}}, &fakeOnce{}, false, ErrRetry, "", "", 0},
		{"transient failure on the last delivery", &fakeReader{err: &ReadError{Err: errors.New("503")}}, &fakeOnce{}, true, nil, Unavailable, ReasonFailed, 1},
		{"final reason at once", &fakeReader{err: &ReadError{Reason: ReasonNoPremiumLicense}}, &fakeOnce{}, false, nil, Unavailable, ReasonNoPremiumLicense, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			w := &Watcher{Reader: tt.reader, Once: tt.once, Sink: sink, Now: func() time.Time { return at(16) }}
			res, _, err := w.Run(context.Background(), Delivery{Check: check, Last: tt.last})
			if !errors.Is(err, tt.wantErr) || res.Finding != tt.wantFinding || res.Reason != tt.wantReason || len(sink.events) != tt.wantEvents {
				t.Errorf("Run = %+v, %v, %d events; want %q %q, %v, %d events", res, err, len(sink.events), tt.wantFinding, tt.wantReason, tt.wantErr, tt.wantEvents)
			}
			if errors.Is(err, ErrRetry) && tt.reader.calls > 0 && tt.once.freed != 1 {
				t.Errorf("a retried check was not released (%d)", tt.once.freed)
			}
			if tt.wantEvents == 1 && tt.once.finished != 1 {
				t.Errorf("a made check was marked done %d times; want 1", tt.once.finished)
			}
		})
	}
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	c := Check{RequestID: "r1", Caller: "webhook:0", UserID: "ABC", After: "15m"}
	same := c
	same.UserID = "abc"
	same.StatusHandle, same.UPN = "other", "x@contoso.com"
	if c.Key() != same.Key() {
		t.Errorf("keys of one check differ: %q %q", c.Key(), same.Key())
	}
	for _, other := range []Check{
		{RequestID: "r2", Caller: "webhook:0", UserID: "abc", After: "15m"},
		{RequestID: "r1", Caller: "entra:x", UserID: "abc", After: "15m"},
		{RequestID: "r1", Caller: "webhook:0", UserID: "abd", After: "15m"},
		{RequestID: "r1", Caller: "webhook:0", UserID: "abc", After: "2h"},
	} {
		if other.Key() == c.Key() {
			t.Errorf("%+v shares the key of %+v", other, c)
		}
	}
}

type fakeQueue struct{ delays []time.Duration }

func (f *fakeQueue) EnqueueCheck(_ context.Context, _ Check, in time.Duration) error {
	f.delays = append(f.delays, in)
	return nil
}

// A check that waited in vain for the reports limit goes back on the queue for later, even on
// its last delivery: a busy Graph is no reason to record "failed".
func TestWatcherPostponesWhenThrottled(t *testing.T) {
	t.Parallel()
	for _, last := range []bool{false, true} {
		q := &fakeQueue{}
		once := &fakeOnce{}
		sink := &fakeSink{}
		w := &Watcher{Reader: &fakeReader{err: &ReadError{Throttled: true, Err: errors.New("reports limit")}}, Once: once, Sink: sink, Requeue: q}
		_, already, err := w.Run(context.Background(), Delivery{Check: Check{RequestID: "r", UserID: "u", After: "15m"}, Last: last})
		if !errors.Is(err, ErrPostponed) || already || len(q.delays) != 1 || q.delays[0] <= 0 || once.freed != 1 || len(sink.events) != 0 {
			t.Errorf("last %v: Run = %v, %v; requeued %v, released %d, events %d; want postponed, released, nothing recorded", last, already, err, q.delays, once.freed, len(sink.events))
		}
	}
}
