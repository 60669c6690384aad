package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// AzuriteServices is a running Azurite with its blob, queue and table services, started by
// LaunchAzurite for programs that are not tests (the load tool). Stop it with Process.Stop.
type AzuriteServices struct {
	*Process
	BlobEndpoint  string // http://127.0.0.1:PORT/devstoreaccount1
	QueueEndpoint string
	TableEndpoint string
}

// ConnectionString is the development account's connection string with every endpoint, as
// AzureWebJobsStorage takes it.
func (a *AzuriteServices) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AzuriteAccount + ";AccountKey=" + AzuriteKey +
		";BlobEndpoint=" + a.BlobEndpoint + ";QueueEndpoint=" + a.QueueEndpoint + ";TableEndpoint=" + a.TableEndpoint + ";"
}

// azuriteListening is what Azurite (all services in one process) prints for each service once
// it listens, followed by its address.
var azuriteListening = map[string]string{
	"blob":  "Azurite Blob service is successfully listening at ",
	"queue": "Azurite Queue service is successfully listening at ",
	"table": "Azurite Table service is successfully listening at ",
}

// LaunchAzurite starts Azurite from nodeDir (testdata/node, see NodeDir) on 127.0.0.1 with ports
// the kernel picks, in memory, with workDir as its working directory (it writes nothing there in
// memory mode, but would use it). It returns once every service answers.
func LaunchAzurite(nodeDir, workDir string, within time.Duration) (*AzuriteServices, error) {
	var (
		mu    sync.Mutex
		addrs = map[string]string{}
		all   = make(chan struct{})
	)
	stdout := NewLineFunc(func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		for svc, prefix := range azuriteListening {
			if a, ok := strings.CutPrefix(string(line), prefix); ok && addrs[svc] == "" {
				addrs[svc] = strings.TrimSpace(a)
				if len(addrs) == len(azuriteListening) {
					close(all)
				}
			}
		}
	})
	p, err := Start(Options{
		Bin: "node",
		Args: []string{filepath.Join(nodeDir, "node_modules", ".bin", "azurite"),
			"--blobHost", "127.0.0.1", "--blobPort", "0", // the kernel picks free ports, and Azurite prints them
			"--queueHost", "127.0.0.1", "--queuePort", "0",
			"--tableHost", "127.0.0.1", "--tablePort", "0",
			"--inMemoryPersistence",
			"--extentMemoryLimit", "64", // MB; the default is half the machine's memory
			"--skipApiVersionCheck", // the Go SDKs may speak a newer API version than this Azurite
			"--loose",               // ignore headers Azurite does not implement instead of failing
			"--silent",              // no access log
			"--disableTelemetry",    // no network calls out
		},
		Env:    []string{"PATH=" + os.Getenv("PATH"), "HOME=" + workDir},
		Dir:    workDir,
		Stdout: stdout,
	})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*AzuriteServices, error) {
		p.Kill()
		return nil, fmt.Errorf("azurite: %w: %s", err, p.StderrTail())
	}
	select {
	case <-all:
	case <-p.Done():
		return fail(fmt.Errorf("exited before listening (%v)", p.Err()))
	case <-time.After(within):
		return fail(fmt.Errorf("not listening within %s", within))
	}
	mu.Lock()
	a := &AzuriteServices{Process: p}
	endpoints := map[string]*string{"blob": &a.BlobEndpoint, "queue": &a.QueueEndpoint, "table": &a.TableEndpoint}
	for svc, base := range addrs {
		if !strings.HasPrefix(base, "http://127.0.0.1:") {
			mu.Unlock()
			return fail(fmt.Errorf("%s service listens on %q, want http://127.0.0.1:PORT", svc, base))
		}
		*endpoints[svc] = base + "/" + AzuriteAccount
	}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for _, e := range []string{a.QueueEndpoint + "?comp=list", a.TableEndpoint + "/Tables"} {
		if err := answering(ctx, e); err != nil {
			return fail(err)
		}
	}
	return a, nil
}

// answering polls url until it gives any HTTP answer (unauthenticated requests get 403).
func answering(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
			return errors.Join(fmt.Errorf("%s not answering", url), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
