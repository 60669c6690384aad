package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// With redaction on, telemetry carries upnHash = HMAC-SHA256(TELEMETRY_UPN_SALT, lower-case UPN),
// which nobody can recompute from the envelope alone, and never the UPN itself; `handler hash-upn`
// gives analysts the same value.
func TestRedactedTelemetryIsAKeyedHash(t *testing.T) {
	t.Parallel()
	const salt = "e2e-salt-kept-in-key-vault"
	in := &rawIngestion{}
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=" + srv.URL + "/"
	env["TELEMETRY_REDACT_UPN"] = "true"
	env["TELEMETRY_UPN_SALT"] = salt
	p := startHandler(t, env)

	body := []byte(`{"upn":"Alice@Contoso.com","ticket":"INC0012345"}`)
	if status, _, b := post(t, p.URL+"/api/revoke", signedHeaders(t, "msg_redacted_upn", body), body); status != http.StatusOK {
		t.Fatalf("revoke = %d %s; want 200", status, b)
	}
	p.terminate(t) // flushes telemetry
	if code := p.exitCode(t, 12*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d; want 0", code)
	}

	// Computed here, independently of the handler's code.
	mac := hmac.New(sha256.New, []byte(salt))
	mac.Write([]byte("alice@contoso.com"))
	want := hex.EncodeToString(mac.Sum(nil))

	got, raw := in.revocationProperties(t)
	if got["upnHash"] != want {
		t.Errorf("upnHash = %q; want the HMAC keyed by TELEMETRY_UPN_SALT %q", got["upnHash"], want)
	}
	if _, ok := got["upn"]; ok {
		t.Errorf("properties carry upn %q with redaction on", got["upn"])
	}
	if bytes.Contains(bytes.ToLower(raw), []byte("alice@contoso.com")) || bytes.Contains(raw, []byte(salt)) {
		t.Errorf("telemetry contains the UPN or the salt")
	}
	if bytes.Contains(bytes.ToLower([]byte(p.Stdout.String())), []byte("alice@contoso.com")) {
		t.Errorf("the stdout audit line contains the UPN with redaction on")
	}

	h := run(t, map[string]string{"PATH": env["PATH"], "HOME": env["HOME"], "TELEMETRY_UPN_SALT": salt}, "hash-upn", "alice@contoso.com")
	if code := h.exitCode(t, 10*time.Second); code != 0 || strings.TrimSpace(h.Stdout.String()) != want {
		t.Errorf("handler hash-upn = exit %d, %q; want 0, %q", code, h.Stdout.String(), want)
	}
}

// rawIngestion is an Application Insights endpoint that keeps every batch as it arrived.
type rawIngestion struct {
	mu      sync.Mutex
	batches [][]byte
}

func (in *rawIngestion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := trackBody(r)
	if err != nil || r.URL.Path != "/v2.1/track" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	in.mu.Lock()
	in.batches = append(in.batches, raw)
	in.mu.Unlock()
	n := bytes.Count(bytes.TrimSpace(raw), []byte("\n")) + 1
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"itemsReceived":` + strconv.Itoa(n) + `,"itemsAccepted":` + strconv.Itoa(n) + `,"errors":[]}`))
}

// revocationProperties returns the properties of the one SessionRevocation event, and every batch.
func (in *rawIngestion) revocationProperties(t *testing.T) (map[string]string, []byte) {
	t.Helper()
	in.mu.Lock()
	raw := bytes.Join(in.batches, []byte("\n"))
	in.mu.Unlock()
	var found []map[string]string
	for _, l := range bytes.Split(raw, []byte("\n")) {
		if name, props, err := envelopeEvent(l); err == nil && name == "SessionRevocation" {
			found = append(found, props)
		}
	}
	if len(found) != 1 {
		t.Fatalf("ingestion received %d SessionRevocation events; want 1", len(found))
	}
	return found[0], raw
}
