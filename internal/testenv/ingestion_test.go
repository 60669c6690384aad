package testenv_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const (
	event = `{"ver":1,"name":"Microsoft.ApplicationInsights.Event","time":"2026-12-05T10:00:00Z","iKey":"k","tags":{"ai.operation.id":"op"},"data":{"baseType":"EventData","baseData":{"ver":2,"name":"SessionRevocation","properties":{"requestId":"r1"},"measurements":{"users":1}}}}`
	dep   = `{"ver":1,"name":"Microsoft.ApplicationInsights.RemoteDependency","time":"2026-12-05T10:00:00Z","iKey":"k","tags":{},"data":{"baseType":"RemoteDependencyData","baseData":{"ver":2,"name":"POST /users/{id}/revokeSignInSessions"}}}`
)

func TestIngestionAcceptsWhatTheServiceAccepts(t *testing.T) {
	t.Parallel()
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(event + "\n" + dep + "\n"))
	_ = zw.Close()
	tests := []struct {
		name, path, encoding string
		body                 []byte
	}{
		{"newline-delimited", "/v2.1/track", "", []byte(event + "\n" + dep + "\n")},
		{"array", "/v2/track", "", []byte("[" + event + "," + dep + "]")},
		{"gzip", "/v2.1/track", "gzip", zipped.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := testenv.NewIngestion(t)
			status, reply := mustTrack(t, in.URL()+tt.path, tt.encoding, tt.body)
			if status != http.StatusOK || reply["itemsAccepted"] != 2.0 {
				t.Fatalf("track = %d %v; want 200 with 2 accepted", status, reply)
			}
			if got, want := in.Names(), []string{"EventData:SessionRevocation", "RemoteDependencyData:POST /users/{id}/revokeSignInSessions"}; !slices.Equal(got, want) {
				t.Errorf("Names() = %v; want %v", got, want)
			}
			ev := in.Events("SessionRevocation")
			if len(ev) != 1 || ev[0].Properties["requestId"] != "r1" || ev[0].Measurements["users"] != 1 || ev[0].Tags["ai.operation.id"] != "op" {
				t.Errorf("Events(SessionRevocation) = %+v; want the one event with its fields", ev)
			}
			if !in.Has("RemoteDependencyData:POST") || in.Has("EventData:Other") {
				t.Errorf("Has is wrong for %v", in.Names())
			}
			if !bytes.Contains(in.Raw(), []byte(`"requestId":"r1"`)) {
				t.Errorf("Raw() = %s; want the decompressed body", in.Raw())
			}
		})
	}
}

// A scripted outage: refused batches are kept as requests but not accepted, and a 206 accepts all
// but the items it names.
func TestIngestionScriptedFailures(t *testing.T) {
	t.Parallel()
	in := testenv.NewIngestion(t)
	in.Respond(func(call int, r testenv.IngestionRequest) testenv.IngestionReply {
		switch call {
		case 0:
			return testenv.IngestionReply{Status: http.StatusServiceUnavailable, RetryAfter: "1"}
		case 1:
			return testenv.IngestionReply{Status: http.StatusPartialContent, Errors: []testenv.ItemError{{Index: 0, StatusCode: 500, Message: "retry"}}}
		}
		return testenv.IngestionReply{}
	})
	body := []byte(event + "\n" + dep)
	for i, want := range []int{http.StatusServiceUnavailable, http.StatusPartialContent, http.StatusOK} {
		if status, _ := mustTrack(t, in.URL()+"/v2.1/track", "", body); status != want {
			t.Errorf("request %d = %d; want %d", i, status, want)
		}
	}
	reqs := in.Requests()
	if len(reqs) != 3 || reqs[0].Reply.RetryAfter != "1" || reqs[1].Reply.Status != http.StatusPartialContent {
		t.Fatalf("Requests() = %+v; want the three with their replies", reqs)
	}
	acc := in.WaitAccepted(t, time.Second, "three items", func(e []testenv.Envelope) bool { return len(e) == 3 })
	if got := []string{acc[0].Name, acc[1].Name, acc[2].Name}; got[0] != "POST /users/{id}/revokeSignInSessions" || got[1] != "SessionRevocation" {
		t.Errorf("accepted %v; want the dependency of the 206, then both of the 200", got)
	}
}

func mustTrack(t *testing.T, url, encoding string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-json-stream")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		t.Fatalf("reply: %v", err)
	}
	return resp.StatusCode, reply
}
