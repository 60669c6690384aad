// Package testenv gives tests the real things they run against: the repository's paths and host
// fixtures, the host's invocations (invocation.go), an Application Insights ingestion endpoint
// (ingestion.go), the standardwebhooks npm package (an implementation of the signature scheme
// independent of ours) and Azurite, installed under testdata/node by `make node-tools`, the one
// launcher that starts child processes (the handler binary, Azurite) for the tests and the load
// tool (process.go), and the waits that poll a condition (wait.go). It imports nothing of this
// module, so that every package's tests can use it. It is for tests and bench/ only; production
// code must never import it.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// modulePath identifies the repository's go.mod while walking up from a package directory.
const modulePath = "github.com/entra-revoke/entra-revoke"

// nodeTimeout bounds one run of a node script. Node starts in well under a second; the margin is
// for a machine busy compiling.
const nodeTimeout = 60 * time.Second

// RepoRoot returns the repository root: the nearest directory above the test's working directory
// (its package directory under go test) whose go.mod declares this module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := FindRepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return dir
}

func declaresModule(gomod []byte) bool {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == modulePath {
			return true
		}
	}
	return false
}

// Node returns the path of testdata/node after checking that node is on PATH and that the npm
// packages are installed. Tests never run npm themselves: several test binaries run at once.
// Without them, a -short run (make unit: Go alone) skips the test and says why; a full run fails,
// so that make test never passes by skipping what it must prove.
func Node(t testing.TB) string {
	t.Helper()
	dir, err := NodeDir(RepoRoot(t))
	if err != nil {
		if testing.Short() {
			t.Skipf("needs Node and the npm test tooling (Azurite, standardwebhooks), skipped in -short mode: %v", err)
		}
		t.Fatalf("%v", err)
	}
	return dir
}

// NodeSign signs body with the standardwebhooks npm package and returns the three webhook-*
// headers it produced.
func NodeSign(t testing.TB, secret, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	dir := Node(t)
	stdout, stderr, err := runNode(t, dir, body, "sign.mjs",
		"--secret", secret, "--id", id, "--timestamp", strconv.FormatInt(at.Unix(), 10))
	if err != nil {
		t.Fatalf("node sign.mjs: %v: %s", err, stderr)
	}
	var fields map[string]string
	if err := json.Unmarshal(stdout, &fields); err != nil {
		t.Fatalf("node sign.mjs printed %q: %v", stdout, err)
	}
	h := http.Header{}
	for k, v := range fields {
		h.Set(k, v)
	}
	return h
}

// NodeVerify checks the signature headers h over body with the standardwebhooks npm package. It
// returns nil when the package accepts them and the package's error otherwise. That package checks
// webhook-timestamp against the real clock (5 minutes either way), so only fresh signatures pass.
// body must be UTF-8: it reaches the script as a JSON string.
func NodeVerify(t testing.TB, secret string, h http.Header, body []byte) error {
	t.Helper()
	if !utf8.Valid(body) {
		t.Fatalf("NodeVerify: body %q is not UTF-8", body)
	}
	dir := Node(t)
	headers := map[string]string{}
	for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if v := h.Get(name); v != "" {
			headers[name] = v
		}
	}
	in, err := json.Marshal(map[string]any{"secret": secret, "headers": headers, "body": string(body)})
	if err != nil {
		t.Fatalf("NodeVerify: %v", err)
	}
	stdout, stderr, err := runNode(t, dir, in, "verify.mjs")
	var exit *exec.ExitError
	switch {
	case err == nil && strings.TrimSpace(string(stdout)) == "ok":
		return nil
	case err == nil:
		t.Fatalf("node verify.mjs exited 0 but printed %q", stdout)
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return errors.New(strings.TrimSpace(string(stderr)))
	default:
		t.Fatalf("node verify.mjs: %v: %s", err, stderr)
	}
	return nil
}

func runNode(t testing.TB, dir string, stdin []byte, script string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// FixtureDir returns testdata/host: the Functions host's invocations and a forwarded HTTP request,
// shaped as the host really sends them (see testdata/host/README.md).
func FixtureDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "testdata", "host")
}

// Fixture returns the contents of one file of testdata/host.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(FixtureDir(t), name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}
