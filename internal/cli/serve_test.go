package cli_test

import (
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
