// Package e2e runs the built handler binary as the Azure Functions host does and drives it over
// HTTP, with requests signed by the independent standardwebhooks npm package, against local fakes
// of the managed identity endpoint, Microsoft Graph, Entra ID, Application Insights ingestion and
// a real Azurite queue service.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	build := exec.Command("go", "build", "-o", handlerBin, ".")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build handler:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a child's output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running handler.
type proc struct {
	cmd    *exec.Cmd
	URL    string
	Stdout *syncBuffer
	Stderr *syncBuffer
	done   chan struct{}
	err    error
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
	p := &proc{cmd: exec.Command(handlerBin, args...), Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = envList(env)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("handler stdout:\n%s\nhandler stderr:\n%s", p.Stdout, p.Stderr)
		}
	})
	return p
}

// startHandler starts the handler as the Functions host does (FUNCTIONS_CUSTOMHANDLER_PORT) and
// waits until GET / answers 200.
func startHandler(t *testing.T, env map[string]string) *proc {
	t.Helper()
	port := freePort(t)
	env["FUNCTIONS_CUSTOMHANDLER_PORT"] = port
	p := run(t, env)
	p.URL = "http://127.0.0.1:" + port
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("handler exited at start: %v\nstderr: %s\nstdout: %s", p.err, p.Stderr, p.Stdout)
		default:
		}
		resp, err := http.Get(p.URL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler not ready after 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exitCode waits for the process to end and returns its exit code.
func (p *proc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("handler still running after %s", within)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
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
