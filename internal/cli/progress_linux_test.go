//go:build linux

package cli_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// mustPTY opens a pseudo-terminal pair, so that the binary's stderr really is a terminal.
func mustPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		t.Fatalf("unlock pty: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatalf("pty number: %v", errno)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// runOnTerminal runs the binary with stderr on a terminal and returns stdout and what reached
// the terminal.
func runOnTerminal(t *testing.T, env map[string]string, args ...string) (code int, stdout, terminal string) {
	t.Helper()
	master, slave := mustPTY(t)
	// Drain the terminal while the binary writes to it; the read ends with EIO once the last
	// slave descriptor is closed.
	read := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, master)
		read <- b.String()
	}()
	r := mustRunWith(t, testenv.Options{Bin: handlerBin, Args: args, Env: envList(env), Stderr: slave})
	slave.Close()
	return r.code, r.stdout, <-read
}

func TestRevokeProgressOnTerminal(t *testing.T) {
	t.Parallel()
	f := mustFakes(t)
	addUsers(f)
	// One user per chunk, so three users make three progress updates.
	env := f.with("GRAPH_CONCURRENCY", "1")
	users := []string{"alice@contoso.com", "bob@contoso.com", "carol@contoso.com"}

	code, stdout, terminal := runOnTerminal(t, env, append([]string{"revoke", "--dry-run"}, users...)...)
	if code != 0 {
		t.Fatalf("exit %d; want 0\nstdout:\n%s\nterminal:\n%q", code, stdout, terminal)
	}
	for _, want := range []string{"\r1/3 done", "\r2/3 done", "\r3/3 done"} {
		if !strings.Contains(terminal, want) {
			t.Errorf("terminal got %q; want it to contain %q", terminal, want)
		}
	}
	if strings.Contains(stdout, "done") {
		t.Errorf("progress went to stdout:\n%s", stdout)
	}

	code, stdout, terminal = runOnTerminal(t, env, append([]string{"revoke", "--dry-run", "--json"}, users...)...)
	if code != 0 {
		t.Fatalf("--json: exit %d; want 0\nstdout:\n%s", code, stdout)
	}
	if terminal != "" {
		t.Errorf("--json: terminal got %q; want nothing", terminal)
	}
}
