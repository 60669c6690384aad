package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// With redaction on, telemetry carries upnHash = HMAC-SHA256(TELEMETRY_UPN_SALT, lower-case UPN),
// which nobody can recompute from the envelope alone, and never the UPN itself; `handler hash-upn`
// gives analysts the same value.
func TestRedactedTelemetryIsAKeyedHash(t *testing.T) {
	t.Parallel()
	const salt = "e2e-salt-kept-in-key-vault"
	in := testenv.NewIngestion(t)
	id, g := tenant(t)
	env := handlerEnv(t, id, g)
	env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = in.ConnectionString()
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

	events := in.Events("SessionRevocation")
	if len(events) != 1 {
		t.Fatalf("ingestion received %d SessionRevocation events; want 1", len(events))
	}
	got, raw := events[0].Properties, in.Raw()
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
