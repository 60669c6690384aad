// Package e2e runs the built handler binary as the Azure Functions host does and drives it over
// HTTP, with requests signed by the independent standardwebhooks npm package, against local fakes
// of the managed identity endpoint, Microsoft Graph, Entra ID, Application Insights ingestion and
// a real Azurite queue service.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// handlerBin is the binary built once for the package in TestMain.
var handlerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "entra-revoke-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	handlerBin = filepath.Join(dir, "handler")
	root, err := testenv.FindRepoRoot()
	if err == nil {
		err = testenv.BuildHandler(root, handlerBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running handler, started by testenv's launcher.
type proc struct {
	*testenv.Process
	cmd    *exec.Cmd // the launcher's, for tests that signal the process themselves
	Stdout *testenv.Buffer
	Stderr *testenv.Buffer
}

// baseEnv is the child's whole environment: nothing of the developer's AZURE_* or proxies leaks in.
func baseEnv(t *testing.T) map[string]string {
	return map[string]string{
		"PATH": os.Getenv("PATH"),
		"HOME": t.TempDir(),
	}
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// run starts the handler with env and args and returns at once.
func run(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	return launch(t, testenv.Options{Bin: handlerBin, Args: args, Env: envList(env)}, &testenv.Buffer{})
}

// launch starts o with stdout to out (stderr is always kept whole) and prints both when the test
// fails; what is left running is killed when the test ends.
func launch(t *testing.T, o testenv.Options, out io.Writer) *proc {
	t.Helper()
	p := &proc{Stdout: &testenv.Buffer{}, Stderr: &testenv.Buffer{}}
	if b, ok := out.(*testenv.Buffer); ok {
		p.Stdout = b
	}
	o.Stdout, o.Stderr = out, p.Stderr
	p.Process = testenv.StartProcess(t, o)
	p.cmd = p.Cmd
	t.Cleanup(func() {
		p.Kill()
		if !t.Failed() {
			return
		}
		if p.Stdout == out {
			t.Logf("handler stdout:\n%s\nhandler stderr:\n%s", p.Stdout, p.Stderr)
		} else { // stdout was counted, not kept; the end of stderr is what there is
			e := p.Stderr.String()
			t.Logf("end of handler stderr:\n%s", e[max(0, len(e)-4096):])
		}
	})
	return p
}

// startHandler starts the handler as the Functions host does (FUNCTIONS_CUSTOMHANDLER_PORT, also
// set in env) and waits until GET / answers 200.
func startHandler(t *testing.T, env map[string]string) *proc {
	t.Helper()
	return startListening(t, env, &testenv.Buffer{})
}

// startListening is startHandler with stdout going to out.
func startListening(t *testing.T, env map[string]string, out io.Writer) *proc {
	t.Helper()
	p := launch(t, testenv.Options{Bin: handlerBin, Env: envList(env), Listen: true}, out)
	env[testenv.PortVariable] = p.Port
	if _, err := p.WaitReady(15*time.Second, 20*time.Millisecond); err != nil {
		t.Fatalf("handler: %v\nstderr: %s\nstdout: %s", err, p.Stderr, p.Stdout)
	}
	return p
}

// exitCode waits for the process to end and returns its exit code.
func (p *proc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	code, err := p.Wait(within)
	if err != nil {
		t.Fatalf("handler: %v", err)
	}
	return code
}

// terminate sends SIGTERM, as the Functions host does at scale-in, and returns at once.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.Terminate(); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// post sends body to the handler with headers and returns status, headers and body.
func post(t *testing.T, url string, h http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// lines returns the stdout JSON lines that contain all of the given fragments.
func lines(out string, fragments ...string) []string {
	var found []string
	for _, l := range strings.Split(out, "\n") {
		ok := l != ""
		for _, f := range fragments {
			ok = ok && strings.Contains(l, f)
		}
		if ok {
			found = append(found, l)
		}
	}
	return found
}
