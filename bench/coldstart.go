package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// coldResult is the time from process start to the first 200 on GET /, over several starts.
type coldResult struct {
	Target    string          `json:"target"`
	Starts    int             `json:"starts"`
	Median    time.Duration   `json:"medianNs"`
	P90       time.Duration   `json:"p90Ns"`
	Min       time.Duration   `json:"minNs"`
	Max       time.Duration   `json:"maxNs"`
	IdleRSS   int64           `json:"idleRssKiB"` // VmRSS right after the first 200, median
	All       []time.Duration `json:"allNs"`
	LoadAvg   float64         `json:"loadAvg1m"`
	Available bool            `json:"available"`
}

// launcher starts one instance of a server and says how.
type launcher struct {
	name  string
	start func() (*process, error)
}

// measureColdStarts starts the server n times (after one unmeasured start that warms the page
// cache, as an instance that has run before on the same worker would find it) and stops it each
// time with SIGTERM.
func measureColdStarts(l launcher, n int) (coldResult, error) {
	r := coldResult{Target: l.name, Starts: n, Available: true}
	var rss []float64
	for i := -1; i < n; i++ {
		p, err := l.start()
		if err != nil {
			return r, err
		}
		// Polled every 250 µs: the measured cold start is at most that late.
		took, err := p.WaitReady(readyWithin, 250*time.Microsecond)
		if err != nil {
			p.Kill()
			return r, fmt.Errorf("%s: %w", l.name, err)
		}
		resident, _, _ := memory(p.Pid())
		if err := p.stop(); err != nil && l.name == "handler" {
			return r, fmt.Errorf("%s: stop: %w (stderr: %s)", l.name, err, p.StderrTail())
		}
		if i < 0 {
			continue // warm-up start
		}
		r.All = append(r.All, took)
		rss = append(rss, float64(resident))
	}
	sorted := slices.Clone(r.All)
	slices.Sort(sorted)
	r.Median, r.P90, r.Min, r.Max = pct(sorted, 50), pct(sorted, 90), sorted[0], sorted[len(sorted)-1]
	r.IdleRSS = int64(median(rss))
	r.LoadAvg = loadAvg()
	return r, nil
}

// nodeScript is a Node.js custom handler doing what ours does before it answers GET /: load the
// Azure identity SDK and the Application Insights SDK, build a managed identity credential, start
// telemetry, listen. It is a lower bound for the Node.js equivalent (the Graph SDK is not installed
// in testdata/node and would only add to it).
const nodeScript = `
const { createRequire } = require('module');
const load = createRequire(process.argv[2]);
const identity = load('@azure/identity');
const appInsights = load('applicationinsights');
const http = require('http');
const credential = new identity.ManagedIdentityCredential();
appInsights.setup(process.env.APPLICATIONINSIGHTS_CONNECTION_STRING).setAutoCollectConsole(false).start();
http.createServer((req, res) => { res.writeHead(200); res.end(); })
  .listen(Number(process.env.FUNCTIONS_CUSTOMHANDLER_PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`

// nodeLauncher returns a launcher for the Node.js comparison, or false when node or the npm test
// tooling (make node-tools) is missing.
func nodeLauncher(repo, dir string, env []string) (launcher, bool) {
	node, err := exec.LookPath("node")
	pkg := filepath.Join(repo, "testdata", "node", "package.json")
	if err != nil {
		return launcher{}, false
	}
	for _, m := range []string{"@azure/identity", "applicationinsights"} {
		if _, err := os.Stat(filepath.Join(repo, "testdata", "node", "node_modules", m, "package.json")); err != nil {
			return launcher{}, false
		}
	}
	script := filepath.Join(dir, "node-handler.cjs")
	if err := os.WriteFile(script, []byte(nodeScript), 0o600); err != nil {
		return launcher{}, false
	}
	return launcher{name: "node (@azure/identity + applicationinsights)", start: func() (*process, error) {
		return startChild(node, []string{script, pkg}, append(env, "PATH="+os.Getenv("PATH")))
	}}, true
}
