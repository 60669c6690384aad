package testenv

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
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

// listeningLine is what Azurite's queue service prints once it listens, followed by its address.
const listeningLine = "Azurite Queue service successfully listens on "

// Azurite is a running Azurite queue service.
type Azurite struct {
	QueueEndpoint    string // http://127.0.0.1:PORT/devstoreaccount1
	ConnectionString string // full connection string for the development account
}

// StartAzurite starts Azurite's queue service from testdata/node on 127.0.0.1 with a port the
// kernel picks, keeping everything in memory, and stops it (its whole process group) when t ends.
// Start one per test package (a parent test whose subtests share it), not one per test.
func StartAzurite(t testing.TB) Azurite {
	t.Helper()
	dir := Node(t)
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-queue")
	cmd := exec.Command("node", bin,
		"--queueHost", "127.0.0.1",
		"--queuePort", "0", // the kernel picks a free port, and Azurite prints it: no race for a port
		"--inMemoryPersistence",
		"--extentMemoryLimit", "64", // MB; the default is half the machine's memory
		"--skipApiVersionCheck", // the Go SDK may speak a newer API version than this Azurite
		"--loose",               // ignore headers Azurite does not implement instead of failing
		"--silent",              // no access log
		"--disableTelemetry",    // no network calls out of the sandbox
	)
	// Azurite writes nothing with in-memory persistence, but would use its working directory if it did.
	cmd.Dir = t.TempDir()
	setProcessGroup(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start azurite: %v", err)
	}

	var (
		mu     sync.Mutex
		output bytes.Buffer // kept for failure messages, bounded below
	)
	addr := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if output.Len() < 64<<10 {
				output.WriteString(line + "\n")
			}
			mu.Unlock()
			if a, ok := strings.CutPrefix(line, listeningLine); ok {
				select {
				case addr <- strings.TrimSpace(a):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr) // keep draining after an over-long line
	}()
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		_ = pw.Close()
	}()
	logs := func() string {
		mu.Lock()
		defer mu.Unlock()
		return output.String()
	}

	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		signalGroup(cmd, false)
		select {
		case <-exited:
		case <-time.After(azuriteStopTimeout):
			signalGroup(cmd, true)
			<-exited
		}
		<-readDone
	}
	t.Cleanup(stop)

	var base string
	select {
	case base = <-addr:
	case err := <-exited:
		stopped = true
		<-readDone
		t.Fatalf("azurite exited before listening: %v\n%s", err, logs())
	case <-time.After(azuriteStartTimeout):
		stop()
		t.Fatalf("azurite did not listen within %v\n%s", azuriteStartTimeout, logs())
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		stop()
		t.Fatalf("azurite listens on %q, want http://127.0.0.1:PORT\n%s", base, logs())
	}
	endpoint := base + "/" + AzuriteAccount
	if err := waitAnswering(endpoint); err != nil {
		stop()
		t.Fatalf("azurite at %s: %v\n%s", endpoint, err, logs())
	}
	return Azurite{
		QueueEndpoint: endpoint,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + AzuriteAccount +
			";AccountKey=" + AzuriteKey + ";QueueEndpoint=" + endpoint + ";",
	}
}

// waitAnswering polls endpoint until it gives any HTTP answer (unauthenticated requests get 403).
func waitAnswering(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), azuriteStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?comp=list", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
