package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Azurite's well-known development account. Its key is published in every Azurite document; it
// is not a secret.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteStartTimeout bounds Azurite's start. It takes a second or two; the margin is for two
// cores shared with compilers and other test binaries.
const azuriteStartTimeout = 60 * time.Second

// azuriteStopTimeout is how long Azurite gets to close after SIGTERM before it is killed.
const azuriteStopTimeout = 10 * time.Second

// Azurite is a running Azurite: its queue and table services, in one account.
type Azurite struct {
	QueueEndpoint string // http://127.0.0.1:PORT/devstoreaccount1
	TableEndpoint string // http://127.0.0.1:PORT/devstoreaccount1 (another port)
	// ConnectionString is the full connection string for the development account, with
	// QueueEndpoint and TableEndpoint.
	ConnectionString string

	stopTable func()
}

// StopTable kills the table service (SIGKILL, as an outage would), leaving the queue service
// running. Tests use it to take shared state away mid-test; the test's cleanup is still safe.
func (a Azurite) StopTable() { a.stopTable() }

// StartAzurite starts Azurite's queue and table services from testdata/node on 127.0.0.1 with
// ports the kernel picks, keeping everything in memory, and stops them (their whole process
// groups) when t ends. Start one per test package (a parent test whose subtests share it), not
// one per test.
func StartAzurite(t testing.TB) Azurite {
	t.Helper()
	dir := Node(t)
	common := []string{
		"--inMemoryPersistence",
		"--skipApiVersionCheck", // the Go SDK may speak a newer API version than this Azurite
		"--loose",               // ignore headers Azurite does not implement instead of failing
		"--silent",              // no access log
		"--disableTelemetry",    // no network calls out of the sandbox
	}
	queue := startService(t, dir, "azurite-queue", "Azurite Queue service successfully listens on ", append([]string{
		"--queueHost", "127.0.0.1",
		"--queuePort", "0", // the kernel picks a free port, and Azurite prints it: no race for a port
		"--extentMemoryLimit", "64", // MB; the default is half the machine's memory
	}, common...))
	// The table service, given port 0, prints the 0 it was given rather than the port it got. So
	// the port is picked here, free a moment ago; should another process take it meanwhile,
	// Azurite exits at once and another port is tried.
	var table *service
	var tableEndpoint string
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("azurite table service: %v", err)
		}
		table = startService(t, dir, "azurite-table", "Azurite Table service successfully started on ", append([]string{
			"--tableHost", "127.0.0.1",
			"--tablePort", strconv.Itoa(port),
		}, common...))
		tableEndpoint, err = table.wait()
		if err == nil {
			break
		}
		if attempt == 3 {
			queue.stop()
			t.Fatalf("azurite table service: %v", err)
		}
	}
	queueEndpoint, err := queue.wait()
	if err != nil {
		t.Fatalf("azurite queue service: %v", err)
	}
	return Azurite{
		QueueEndpoint: queueEndpoint,
		TableEndpoint: tableEndpoint,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + AzuriteAccount +
			";AccountKey=" + AzuriteKey + ";QueueEndpoint=" + queueEndpoint +
			";TableEndpoint=" + tableEndpoint + ";",
		stopTable: func() { table.kill() },
	}
}

// service is one Azurite service process being started.
type service struct {
	addr     chan string
	exited   chan error
	readDone chan struct{}
	logs     func() string
	stop     func() // SIGTERM, then SIGKILL after azuriteStopTimeout; idempotent
	kill     func() // SIGKILL at once; idempotent
}

// startService starts node_modules/.bin/<bin> with args and stops it when t ends. Its address is
// read from the line starting with listening.
func startService(t testing.TB, dir, bin, listening string, args []string) *service {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join(dir, "node_modules", ".bin", bin)}, args...)...)
	// Azurite writes nothing with in-memory persistence, but would use its working directory if it did.
	cmd.Dir = t.TempDir()
	setProcessGroup(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}

	var (
		mu     sync.Mutex
		output bytes.Buffer // kept for failure messages, bounded below
	)
	s := &service{addr: make(chan string, 1), exited: make(chan error, 1), readDone: make(chan struct{})}
	go func() {
		defer close(s.readDone)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if output.Len() < 64<<10 {
				output.WriteString(line + "\n")
			}
			mu.Unlock()
			if a, ok := strings.CutPrefix(line, listening); ok {
				select {
				case s.addr <- strings.TrimSpace(a):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr) // keep draining after an over-long line
	}()
	go func() {
		s.exited <- cmd.Wait()
		_ = pw.Close()
	}()
	s.logs = func() string {
		mu.Lock()
		defer mu.Unlock()
		return output.String()
	}

	var once sync.Once
	end := func(kill bool) {
		once.Do(func() {
			signalGroup(cmd, kill)
			select {
			case <-s.exited:
			case <-time.After(azuriteStopTimeout):
				signalGroup(cmd, true)
				<-s.exited
			}
			<-s.readDone
		})
	}
	s.stop = func() { end(false) }
	s.kill = func() { end(true) }
	t.Cleanup(s.stop)
	return s
}

// wait returns the service's endpoint for the development account once it answers.
func (s *service) wait() (string, error) {
	var base string
	select {
	case base = <-s.addr:
	case err := <-s.exited:
		s.exited <- err // for stop, which waits for it too
		<-s.readDone
		return "", fmt.Errorf("exited before listening: %v\n%s", err, s.logs())
	case <-time.After(azuriteStartTimeout):
		s.stop()
		return "", fmt.Errorf("did not listen within %v\n%s", azuriteStartTimeout, s.logs())
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base // the table service prints host:port
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		s.stop()
		return "", fmt.Errorf("listens on %q, want http://127.0.0.1:PORT\n%s", base, s.logs())
	}
	endpoint := base + "/" + AzuriteAccount
	if err := waitAnswering(endpoint); err != nil {
		s.stop()
		return "", fmt.Errorf("at %s: %v\n%s", endpoint, err, s.logs())
	}
	return endpoint, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitAnswering polls endpoint until it gives any HTTP answer (unauthenticated requests get 403).
func waitAnswering(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), azuriteStartTimeout)
	defer cancel()
	return answering(ctx, endpoint+"?comp=list")
}
