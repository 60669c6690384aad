package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// ingestion is an Application Insights ingestion endpoint: it keeps the envelopes it is sent.
type ingestion struct {
	mu     sync.Mutex
	events []map[string]string // SessionRevocation properties
	srv    *httptest.Server
}

func newIngestion(t *testing.T) *ingestion {
	t.Helper()
	in := &ingestion{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2.1/track" {
			http.NotFound(w, r)
			return
		}
		n := 0
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var env struct {
				Data struct {
					BaseType string `json:"baseType"`
					BaseData struct {
						Name       string            `json:"name"`
						Properties map[string]string `json:"properties"`
					} `json:"baseData"`
				} `json:"data"`
			}
			if json.Unmarshal(sc.Bytes(), &env) != nil {
				continue
			}
			n++
			if env.Data.BaseType == "EventData" && env.Data.BaseData.Name == "SessionRevocation" {
				in.mu.Lock()
				in.events = append(in.events, env.Data.BaseData.Properties)
				in.mu.Unlock()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"itemsReceived":%d,"itemsAccepted":%d,"errors":[]}`, n, n)
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *ingestion) connectionString() string {
	return "InstrumentationKey=0b3b1a5e-6f0e-4d6c-9a53-0c1f2e3d4a5b;IngestionEndpoint=" + in.srv.URL + "/"
}

func (in *ingestion) sessionRevocations() []map[string]string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]map[string]string(nil), in.events...)
}

// handler revoke records its outcomes in Application Insights like the server, with trigger
// "cli" and the identity that signed in as the caller, flushed before it exits.
func TestRevokeAuditsToApplicationInsights(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	f.identity.SetRoles([]string{"User.RevokeSessions.All"}) // a managed identity's token: oid names it
	in := newIngestion(t)

	r := mustRun(t, f.with("APPLICATIONINSIGHTS_CONNECTION_STRING", in.connectionString()), "", "revoke", "--ticket", "INC7", "alice@contoso.com", bobID)
	if r.code != 0 {
		t.Fatalf("exit %d; want 0\n%s", r.code, r)
	}
	events := in.sessionRevocations()
	if len(events) != 2 {
		t.Fatalf("SessionRevocation events = %d; want 2, flushed before exit: %v\n%s", len(events), events, r)
	}
	const caller = "cli:00000000-0000-0000-0000-0000000000a2" // the token's oid
	for _, e := range events {
		if e["trigger"] != "cli" || e["caller"] != caller || e["status"] != "revoked" || e["ticket"] != "INC7" {
			t.Errorf("event %v; want trigger cli, caller %s, status revoked, ticket INC7", e, caller)
		}
	}
	tok := f.identity.Token()
	if strings.Contains(r.stdout+r.stderr, strings.Split(tok, ".")[1]) {
		t.Errorf("output contains the token\n%s", r)
	}
}
