package cli_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mustAppRoot places the handler binary in a new directory beside a host.json, as the host's app
// root holds them, and returns the binary's path there.
func mustAppRoot(t *testing.T, hostJSON string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(hostJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "handler")
	if err := os.Link(handlerBin, bin); err == nil {
		return bin
	}
	src, err := os.Open(handlerBin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// The handler reads maxDequeueCount from the host.json beside it, whatever its working directory,
// and a retired MAX_DEQUEUE_COUNT that disagrees stops the start.
func TestServeReadsHostJSONBesideTheExecutable(t *testing.T) {
	t.Parallel()
	bin := mustAppRoot(t, `{"version":"2.0","extensions":{"queues":{"maxDequeueCount":7}}}`)
	env := map[string]string{"WEBHOOK_SECRETS": signSecret, "MAX_DEQUEUE_COUNT": "5", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	r := mustRunBinary(t, bin, env, "", "serve")
	if r.code != 2 {
		t.Fatalf("exit %d; want 2\n%s", r.code, r)
	}
	if want := "MAX_DEQUEUE_COUNT: is retired and disagrees with the host, which delivers a message at most 7 times"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q\n%s", want, r)
	}
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("stderr has several lines; want one\n%s", r)
	}
}

// A setting the platform could not resolve from Key Vault stops the start with one line that
// says so and names it (the deployment skipped the secret, or the identity cannot read it).
func TestServeRefusesAnUnresolvedKeyVaultReference(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"WEBHOOK_SECRETS":              "@Microsoft.KeyVault(VaultName=kv-revoke;SecretName=webhook-secret)",
		"FUNCTIONS_CUSTOMHANDLER_PORT": "0",
	}
	r := mustRun(t, env, "", "serve")
	if r.code != 2 {
		t.Fatalf("exit %d; want 2\n%s", r.code, r)
	}
	stderr := strings.TrimSpace(r.stderr)
	if !strings.Contains(stderr, "WEBHOOK_SECRETS: is still a Key Vault reference") || !strings.Contains(stderr, "could not resolve it") ||
		strings.Contains(stderr, "whsec_") || strings.Contains(stderr, "no caller can authenticate") || strings.Count(stderr, "\n") != 0 {
		t.Errorf("stderr = %q; want one line naming WEBHOOK_SECRETS as an unresolved Key Vault reference, nothing else", stderr)
	}
}

// A misspelt setting is named at start, with the setting it probably meant: serve logs it,
// check prints it.
func TestMisspeltSettingWarnings(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	r := mustRun(t, f.with("DRYRUN", "true", "WEBHOOK_SECRET", signSecret), "", "check")
	if r.code != 0 {
		t.Fatalf("check: exit %d; want 0\n%s", r.code, r)
	}
	for _, want := range []string{
		"warning: DRYRUN is not a setting and is ignored: did you mean DRY_RUN?",
		"warning: WEBHOOK_SECRET is not a setting and is ignored: did you mean WEBHOOK_SECRETS?",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check stdout lacks %q\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout+r.stderr, strings.TrimPrefix(signSecret, "whsec_")) {
		t.Errorf("check printed the misspelt setting's value\n%s", r)
	}

	_, stdout := mustServeLogged(t, map[string]string{"WEBHOOK_SECRETS": signSecret, "ENTRA_AUDIENCES": "api://x"})
	var found bool
	for line := range strings.SplitSeq(stdout.String(), "\n") {
		var entry struct{ Level, Msg, Problem string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Level == "WARN" &&
			strings.HasPrefix(entry.Problem, "ENTRA_AUDIENCES is not a setting and is ignored: did you mean ENTRA_AUDIENCE?") {
			found = true
		}
	}
	if !found {
		t.Errorf("serve logged no warning naming ENTRA_AUDIENCES and ENTRA_AUDIENCE:\n%s", stdout)
	}
}
