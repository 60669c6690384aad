package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The process launcher: the end-to-end tests, the soak and the load tool (bench/) all start the
// handler binary, the load tool's baseline server and Azurite through it. Nothing here takes a
// *testing.T, because the load tool is a program, not a test; StartProcess ties a process to a
// test.

// PortVariable is how the Functions host tells a custom handler where to listen.
const PortVariable = "FUNCTIONS_CUSTOMHANDLER_PORT"

// tailSize is how much of a child's stderr a Process keeps for its error messages.
const tailSize = 8 << 10

// Options says how to start a child.
type Options struct {
	Bin  string
	Args []string
	// Env is the child's whole environment: nothing of this process's (a developer's AZURE_*
	// variables, proxies) leaks in. Add PATH and HOME when the child needs them.
	Env []string
	Dir string // working directory; "" = this process's
	// Listen gives the child a free port on 127.0.0.1 in FUNCTIONS_CUSTOMHANDLER_PORT, replacing
	// any value in Env, as the Functions host does; Process.Port and Process.URL name it.
	Listen bool
	// Stdin is the child's input; nil is none. An *os.File is handed over as it is.
	Stdin io.Reader
	// Stdout and Stderr receive the child's output; nil discards it. The last 8 KiB of stderr are
	// kept for error messages, except when Stderr is an *os.File: that is handed over as it is,
	// so that a terminal stays a terminal to the child.
	Stdout, Stderr io.Writer
}

// Process is a running child. It runs in its own process group, which Stop and Kill signal as a
// whole, and on Linux the kernel kills it if this process dies first.
type Process struct {
	Cmd     *exec.Cmd
	Port    string    // set with Options.Listen
	URL     string    // http://127.0.0.1:Port, set with Options.Listen
	Started time.Time // just before the fork

	stderr *Tail
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// Start starts a child and returns at once.
func Start(o Options) (*Process, error) {
	p := &Process{Cmd: exec.Command(o.Bin, o.Args...), stderr: NewTail(tailSize), done: make(chan struct{})}
	env := slices.Clone(o.Env)
	if o.Listen {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		env = setEnv(env, PortVariable, port)
		p.Port, p.URL = port, "http://127.0.0.1:"+port
	}
	p.Cmd.Env, p.Cmd.Dir = env, o.Dir
	p.Cmd.Stdin, p.Cmd.Stdout = o.Stdin, o.Stdout
	if p.Cmd.Stdout == nil {
		p.Cmd.Stdout = io.Discard
	}
	switch w := o.Stderr.(type) {
	case nil:
		p.Cmd.Stderr = p.stderr
	case *os.File:
		p.Cmd.Stderr = w
	default:
		p.Cmd.Stderr = io.MultiWriter(w, p.stderr)
	}
	setProcessGroup(p.Cmd)
	p.Started = time.Now()
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(o.Bin), err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	return p, nil
}

// setEnv returns env with key set to value, replacing earlier values.
func setEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the child has exited and its output has been copied.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the child ended (exec.Cmd.Wait's error); nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// StderrTail is the end of the child's stderr so far, for error messages.
func (p *Process) StderrTail() string { return p.stderr.String() }

// Wait waits up to within for the child to exit and returns its exit code.
func (p *Process) Wait(within time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(within):
		return -1, fmt.Errorf("still running after %s", within)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0, nil
	case errors.As(p.err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), nil
	default:
		return -1, p.err
	}
}

// WaitReady polls GET / every poll until it answers 200, as the Functions host does before it
// forwards anything, and returns how long that took from Started: the cold start, at most poll
// late. It fails when the child exits first or within has passed.
func (p *Process) WaitReady(within, poll time.Duration) (time.Duration, error) {
	if p.URL == "" {
		return 0, errors.New("wait ready: the process was not started with Listen")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := p.Started.Add(within)
	for {
		if p.Exited() {
			return 0, fmt.Errorf("exited at start (%v): %s", p.err, p.StderrTail())
		}
		resp, err := client.Get(p.URL + "/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.Started), nil
			}
			err = fmt.Errorf("GET / answered %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not ready after %s: %v", within, err)
		}
		time.Sleep(poll)
	}
}

// Terminate sends SIGTERM to the child alone (its process group is left alone), as the Functions
// host does at scale-in, and returns at once.
func (p *Process) Terminate() error { return terminate(p.Cmd) }

// Stop sends SIGTERM to the child's process group and waits for the exit; after within it kills
// the group and reports that the child did not stop in time. It returns nil for a clean exit
// (status 0) and otherwise how the child ended.
func (p *Process) Stop(within time.Duration) error {
	if p.Exited() {
		return p.err
	}
	signalGroup(p.Cmd, false)
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		p.Kill()
		return fmt.Errorf("did not exit within %s of SIGTERM", within)
	}
}

// Kill sends SIGKILL to the child's process group and waits for the exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	signalGroup(p.Cmd, true)
	<-p.done
}

// StartProcess starts a child for a test and kills what is left of it (its whole process group)
// when the test ends. It fails the test when the child cannot be started.
func StartProcess(t testing.TB, o Options) *Process {
	t.Helper()
	p, err := Start(o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(p.Kill)
	return p
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago. Another process may take it
// before the child listens; on a loopback address with ports handed out in turn, that is rare.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// FindRepoRoot is RepoRoot for programs that are not tests: the nearest directory at or above the
// working directory whose go.mod declares this module.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repo root: no go.mod for %s at or above the working directory", modulePath)
		}
		dir = parent
	}
}

// BuildHandler builds the handler (the main package at the repository root) into out with `go
// build` and the given flags (for example -trimpath -ldflags "-s -w", as deployed). The compiler's
// output goes to stderr; the error names the failure. Build once per test binary or program run:
// every later start reuses the file.
func BuildHandler(root, out string, flags ...string) error {
	args := append([]string{"build"}, flags...)
	cmd := exec.Command("go", append(args, "-o", out, ".")...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the handler: %w", err)
	}
	return nil
}

// NodeDir is Node for programs that are not tests: testdata/node under root, after checking that
// node is on PATH and the npm packages are installed.
func NodeDir(root string) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is not on PATH (needed for testdata/node tooling): %w", err)
	}
	dir := filepath.Join(root, "testdata", "node")
	for _, pkg := range []string{"azurite", "standardwebhooks", "@kusto/language-service-next"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			return "", fmt.Errorf("%s is not installed in %s: run `make node-tools` (npm ci in testdata/node)", pkg, dir)
		}
	}
	return dir, nil
}

// Buffer collects a child's output while it runs; it is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail keeps the last bytes written to it; it is safe for concurrent use.
type Tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewTail keeps the last max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// String is the kept tail, without surrounding white space.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// LineFunc is a writer that hands each complete line (without its newline) to a function and
// keeps nothing but an unfinished line: a load test writes hundreds of thousands of lines. The
// line is only valid during the call. It is safe for concurrent use; calls are serialised.
type LineFunc struct {
	mu      sync.Mutex
	partial []byte
	f       func(line []byte)
}

// NewLineFunc calls f for every line written.
func NewLineFunc(f func(line []byte)) *LineFunc { return &LineFunc{f: f} }

func (l *LineFunc) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data := p
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.partial = append(l.partial, data...)
			return len(p), nil
		}
		line := data[:i]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = l.partial[:0]
		}
		l.f(line)
		data = data[i+1:]
	}
}
