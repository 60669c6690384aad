package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
)

// tokenSource is a credential whose answer a test changes between reads.
type tokenSource struct {
	mu    sync.Mutex
	token string
	err   error
	calls chan struct{} // when set, receives each call
}

func (s *tokenSource) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.mu.Lock()
	token, err, calls := s.token, s.err, s.calls
	s.mu.Unlock()
	if calls != nil {
		calls <- struct{}{}
	}
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (s *tokenSource) set(token string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token, s.err = token, err
}

var _ azcore.TokenCredential = (*tokenSource)(nil)

// read is one read of the permission: what the identity answers, and what health then says and
// how long the watch waits.
type read struct {
	token     string // "" with err
	err       error
	wantGraph string
	wantWait  time.Duration
}

func TestPermissionWatchRead(t *testing.T) {
	t.Parallel()
	noIdentity := errors.New("ManagedIdentityCredential: unavailable")
	revokeOnly := graphtest.AppToken([]string{graph.RoleRevoke})
	both := graphtest.AppToken([]string{graph.RoleRevoke, graph.RoleRead})
	tests := []struct {
		name    string
		lookups bool
		reads   []read
	}{
		{"token errors back off until a token comes, then refresh", false, []read{
			{err: noIdentity, wantGraph: "unknown", wantWait: 2 * time.Second},
			{err: noIdentity, wantGraph: "unknown", wantWait: 4 * time.Second},
			{err: noIdentity, wantGraph: "unknown", wantWait: 8 * time.Second},
			{token: revokeOnly, wantGraph: "ok", wantWait: 45 * time.Minute},
		}},
		{"backoff is capped", false, append(repeat(read{err: noIdentity, wantGraph: "unknown"}, 8),
			read{err: noIdentity, wantGraph: "unknown", wantWait: 5 * time.Minute},
			read{err: noIdentity, wantGraph: "unknown", wantWait: 5 * time.Minute})},
		{"a verdict survives a later token error", false, []read{
			{token: revokeOnly, wantGraph: "ok", wantWait: 45 * time.Minute},
			{err: noIdentity, wantGraph: "ok", wantWait: 45 * time.Minute},
		}},
		{"a grant removed shows at the next read", false, []read{
			{token: revokeOnly, wantGraph: "ok", wantWait: 45 * time.Minute},
			{token: graphtest.AppToken(nil), wantGraph: "missing_permission", wantWait: 45 * time.Minute},
			{token: graphtest.AppToken([]string{"User.Read.All"}), wantGraph: "missing_permission", wantWait: 45 * time.Minute},
		}},
		{"lookups need User.Read.All", true, []read{
			{token: revokeOnly, wantGraph: "missing_permission", wantWait: 45 * time.Minute},
			{token: both, wantGraph: "ok", wantWait: 45 * time.Minute},
		}},
		{"an opaque token is unknown, and read again later", false, []read{
			{token: "opaque-token-value", wantGraph: "unknown", wantWait: 45 * time.Minute},
			{token: revokeOnly, wantGraph: "ok", wantWait: 45 * time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := &tokenSource{}
			var logs bytes.Buffer
			w := newPermissionWatch(src, "https://graph.microsoft.com/.default", tt.lookups, slog.New(slog.NewJSONHandler(&logs, nil)))
			if got := w.Graph(); got != "unknown" {
				t.Fatalf("Graph() before any read = %q; want unknown", got)
			}
			for i, r := range tt.reads {
				src.set(r.token, r.err)
				wait := w.read(context.Background())
				if got := w.Graph(); got != r.wantGraph || (r.wantWait != 0 && wait != r.wantWait) {
					t.Errorf("read %d (token %.20q, error %v, lookups %t): Graph() = %q, wait %s; want %q, wait %s",
						i, r.token, r.err, tt.lookups, got, wait, r.wantGraph, r.wantWait)
				}
				if r.token != "" && strings.Contains(logs.String(), r.token) {
					t.Errorf("read %d logged the token:\n%s", i, logs.String())
				}
			}
		})
	}
}

func repeat(r read, n int) []read {
	out := make([]read, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// The log, unlike health, names what is missing, once per change of verdict.
func TestPermissionWatchLogsWhatIsMissing(t *testing.T) {
	t.Parallel()
	src := &tokenSource{token: graphtest.AppToken([]string{graph.RoleRevoke})}
	var logs bytes.Buffer
	w := newPermissionWatch(src, "https://graph.microsoft.com/.default", true, slog.New(slog.NewJSONHandler(&logs, nil)))
	w.read(context.Background())
	w.read(context.Background())
	if n := strings.Count(logs.String(), `"msg":"graph permission missing"`); n != 1 || !strings.Contains(logs.String(), `"missing":["User.Read.All"]`) {
		t.Errorf("two reads of a token without User.Read.All logged %d warnings:\n%s\nwant one naming User.Read.All", n, logs.String())
	}
}

// watch reads at once, without waiting for its first interval, and stops with its context.
func TestPermissionWatchReadsAtOnceAndStops(t *testing.T) {
	t.Parallel()
	src := &tokenSource{token: graphtest.AppToken([]string{graph.RoleRevoke}), calls: make(chan struct{}, 1)}
	w := newPermissionWatch(src, "https://graph.microsoft.com/.default", false, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.watch(ctx); close(done) }()
	<-src.calls // the first read; the next would be 45 minutes away
	cancel()
	<-done
	if got := w.Graph(); got != "ok" {
		t.Errorf("Graph() after the first read = %q; want ok", got)
	}
}

// Without a managed identity (make run on a laptop) the watch says so in one line, once, and then
// retries quietly: the SDK's multi-line error is not repeated every few seconds.
func TestPermissionWatchNoIdentityLogsOneLineOnce(t *testing.T) {
	t.Parallel()
	src := &tokenSource{err: errors.New("ManagedIdentityCredential: no response from the IMDS endpoint\n\nTo troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#managed-id")}
	var logs bytes.Buffer
	w := newPermissionWatch(src, "https://graph.microsoft.com/.default", false, slog.New(slog.NewJSONHandler(&logs, nil)))
	w.noPlatformIdentity = true
	for range 4 {
		w.read(context.Background())
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"graph: unknown, no managed identity here"`) {
		t.Fatalf("four failed reads logged:\n%s\nwant one line saying there is no managed identity", logs.String())
	}
	if strings.Contains(lines[0], "troubleshoot") {
		t.Errorf("the line carries the SDK's whole error: %s", lines[0])
	}
	if got := w.Graph(); got != "unknown" {
		t.Errorf("Graph() = %q; want unknown", got)
	}
}
