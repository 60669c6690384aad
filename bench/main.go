// Command bench measures entra-revoke on this machine, with the built handler binary run as the
// Functions host runs it, at the handler's default settings:
//
//   - cold start: process start to the first 200 on GET /, median of several starts (next to a bare
//     Go server and, when the npm test tooling is installed, a Node.js server loading the Azure SDKs);
//   - throughput: 32 callers sending signed requests through the whole path against a zero-latency
//     Graph fake, side by side with a bare net/http baseline that makes the same Graph call, in
//     alternating rounds; requests per second, latency percentiles, errors, CPU per request and
//     resident memory of each process;
//   - sweep and bulk: how cost grows with callers and with users per request;
//   - state: table state (Azurite) against memory state on the request path, with the table
//     operations per request counted by a proxy in front of Azurite's table service;
//   - incident: a bulk incident through the real queue (Azurite) to two instances sharing table
//     state, against a Graph fake that throttles at its write limit (scaled down in time) and, in
//     one run, fails some users for a minute: no user lost, poisoned or revoked twice, and the
//     drain's pace against what the write limit allows.
//
// Everything listens on 127.0.0.1. It prints a report, writes it as JSON to -results, and exits 1
// when a target is missed. docs/BENCHMARKS.md describes the method; `go run ./bench -h` lists the
// knobs.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
	"github.com/google/uuid"
)

// benchSecret signs the load test's requests. It is a public, bench-only value.
const benchSecret = "whsec_ZW50cmEtcmV2b2tlLWJlbmNoLW9ubHktc2VjcmV0"

// The targets, at the handler's default settings (GRAPH_CONCURRENCY 8) and 32 callers; see
// docs/BENCHMARKS.md.
const (
	targetColdStart   = 20 * time.Millisecond
	targetRPSRatio    = 0.4 // handler requests/s at least this fraction of the baseline's
	targetP99Ratio    = 3.0 // handler p99 at most this multiple of the baseline's
	targetRSSKiB      = 48 << 10
	targetDrainOfRate = 0.9 // of the Graph limit's throughput
)

var errTargetsMissed = errors.New("some targets were missed")

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	handler     string
	watchUsers  int
	phases      map[string]bool
	coldStarts  int
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	incident    incidentConfig
	runs        map[string]bool // bulk incident runs
	hostJSON    string
	results     string
	set         setFlags
	sweep       []int
	bulkSizes   []int
	short       time.Duration // length of each sweep and bulk run
}

// setFlags are -set KEY=VALUE overrides of the handler's settings, for experiments (for example
// -set APPLICATIONINSIGHTS_CONNECTION_STRING= to measure without the exporter).
type setFlags []string

func (f *setFlags) String() string { return strings.Join(*f, " ") }

func (f *setFlags) Set(v string) error {
	if !strings.Contains(v, "=") {
		return errors.New("want KEY=VALUE")
	}
	*f = append(*f, v)
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "baseline" {
		return runBaseline(args[1:])
	}
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.handler, "handler", "", "handler binary to measure (default: build one from this repository, as `make build` does)")
	phases := fs.String("phases", "coldstart,throughput,sweep,bulk,state,incident", "phases to run, comma-separated")
	fs.IntVar(&o.coldStarts, "coldstarts", 21, "measured starts per server in the cold-start phase")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent callers in the throughput phase")
	fs.DurationVar(&o.duration, "duration", 8*time.Second, "length of each throughput round")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before the rounds")
	fs.IntVar(&o.rounds, "rounds", 5, "throughput rounds per server (alternating; the medians are compared)")
	fs.IntVar(&o.watchUsers, "watch-users", 1000, "revoked users whose sign-in checks the watch phase drains (1,000 take about 33 min at the reports limit)")
	fs.IntVar(&o.incident.Users, "incident-users", 3000, "users in the bulk incident")
	fs.IntVar(&o.incident.Batch, "incident-batch", 10, "users per request (and queue message) in the bulk incident (1-100)")
	fs.IntVar(&o.incident.Instances, "incident-instances", 2, "Function App instances (handler and host queue trigger) in the bulk incident")
	fs.StringVar(&o.incident.State, "incident-state", "table", "STATE_STORE of the bulk incident's handlers (table or memory)")
	fs.IntVar(&o.incident.Limit, "incident-limit", 300, "Graph's write limit in the bulk incident: revocations per -incident-window")
	fs.DurationVar(&o.incident.Window, "incident-window", 15*time.Second, "the write limit's sliding window (Graph: 3,000 per 150 s; the same 20/s)")
	fs.IntVar(&o.incident.Guard, "incident-guard", 1500, "MAX_REVOCATIONS_PER_MINUTE in the bulk incident (above the write limit's 1,200/min)")
	fs.DurationVar(&o.incident.Outage, "incident-outage", time.Minute, "how long 10 % of the users fail (5xx) in the outage run; 0 skips that run")
	fs.DurationVar(&o.incident.Timeout, "incident-timeout", 20*time.Minute, "a bulk incident run gives up after this long")
	fs.DurationVar(&o.incident.KillAt, "incident-kill", 30*time.Second, "in the crash run, SIGKILL one instance this long into the drain and start another; 0 skips that run")
	incidentRuns := fs.String("incident-runs", "outage,clean,crash", "bulk incident runs, comma-separated: outage, clean, crash")
	fs.StringVar(&o.hostJSON, "host-json", "host.json", "host.json whose queue settings the host simulation follows")
	fs.StringVar(&o.results, "results", "bench/results", "directory for the JSON report (empty: none)")
	fs.Var(&o.set, "set", "override a handler setting, KEY=VALUE (repeatable)")
	sweep := fs.String("sweep", "1,4,16,32,64", "caller counts of the concurrency sweep")
	bulk := fs.String("bulk", "1,10,100", "users per request in the bulk-size phase")
	fs.DurationVar(&o.short, "short", 4*time.Second, "length of each sweep and bulk-size run")
	cpuProfile := fs.String("cpuprofile", "", "write this program's own CPU profile (callers and fakes) to `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.runs = map[string]bool{}
	for _, r := range strings.Split(*incidentRuns, ",") {
		o.runs[strings.TrimSpace(r)] = true
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	var err error
	if o.sweep, err = intList(*sweep); err != nil {
		return fmt.Errorf("-sweep: %w", err)
	}
	if o.bulkSizes, err = intList(*bulk); err != nil {
		return fmt.Errorf("-bulk: %w", err)
	}
	for _, n := range o.bulkSizes {
		if n > 100 {
			return errors.New("-bulk: a request holds at most 100 users")
		}
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		o.phases[strings.TrimSpace(p)] = true
	}
	if o.incident.Batch < 1 || o.incident.Batch > 100 {
		return errors.New("-incident-batch must be 1 to 100")
	}
	if o.incident.Instances < 1 {
		return errors.New("-incident-instances must be at least 1")
	}

	repo, err := testenv.FindRepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "entra-revoke-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.handler == "" {
		o.handler = filepath.Join(tmp, "handler")
		fmt.Fprintln(stdout, "building the handler (go build -trimpath -ldflags '-s -w')...")
		if err := testenv.BuildHandler(repo, o.handler, "-trimpath", "-ldflags", "-s -w"); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	keys, err := webhook.ParseSecrets([]string{benchSecret})
	if err != nil {
		return err
	}

	rep := &report{Machine: describeMachine(), Started: time.Now().UTC(), LoadBefore: loadAvg(), Settings: o.set, out: stdout}
	rep.printf("machine: %s, %d CPUs, %s, %s; load average %.2f", rep.Machine.CPU, rep.Machine.CPUs, rep.Machine.Memory, rep.Machine.Go, rep.LoadBefore)

	if len(o.set) > 0 {
		rep.printf("handler settings overridden: %s", o.set.String())
	}
	env, err := startEnvironment(directory(loadUsers), 0, 0, o.set)
	if err != nil {
		return err
	}
	defer env.close()

	if o.phases["coldstart"] {
		if err := rep.coldStarts(o, env, self, repo, tmp); err != nil {
			return err
		}
	}
	if o.phases["throughput"] {
		if err := rep.throughput(o, env, self, keys); err != nil {
			return err
		}
	}
	if o.phases["sweep"] {
		if err := rep.concurrencySweep(o, env, self, keys); err != nil {
			return err
		}
	}
	if o.phases["bulk"] {
		if err := rep.bulkSizes(o, env, keys); err != nil {
			return err
		}
	}
	if o.phases["state"] || o.phases["incident"] || o.phases["watch"] {
		nodeDir, err := testenv.NodeDir(repo)
		if err != nil {
			return fmt.Errorf("the state and incident phases run Azurite: %w", err)
		}
		if o.phases["state"] {
			if err := rep.stateCost(o, keys, nodeDir, tmp); err != nil {
				return err
			}
		}
		if o.phases["watch"] {
			if err := rep.watchCost(o, keys, nodeDir, tmp); err != nil {
				return err
			}
		}
		if o.phases["incident"] {
			if o.incident.Host, err = readHostQueues(filepath.Join(repo, o.hostJSON)); err != nil {
				return err
			}
			if err := rep.bulkIncident(o, keys, nodeDir, tmp); err != nil {
				return err
			}
		}
	}
	rep.LoadAfter = loadAvg()
	rep.printf("\nload average at the end: %.2f (%d CPUs; above that, other work competed for the CPUs)", rep.LoadAfter, rep.Machine.CPUs)
	rep.verdict()
	if o.results != "" {
		if err := rep.save(filepath.Join(repo, o.results)); err != nil {
			return err
		}
	}
	if rep.missed > 0 {
		return errTargetsMissed
	}
	return nil
}

// environment is the set of fakes a handler is pointed at.
type environment struct {
	storageConn string // AzureWebJobsStorage: the storage fake, or Azurite
	state       string // STATE_STORE
	tenant      *graphtest.Tenant
	ingestion   *ingestionFake
	storage     *storageFake
	servers     []*server
	urls        map[string]string
	set         []string
}

// startEnvironment starts the tenant (the identity endpoint and Graph, whose directory holds
// users; limited to limit revocations per window when limit > 0), Application Insights ingestion
// and Storage.
func startEnvironment(users []string, limit int, window time.Duration, set []string) (*environment, error) {
	e := &environment{
		set:       set,
		tenant:    graphtest.StartTenant(graphtest.TenantOptions{WriteLimit: limit, WriteWindow: window}),
		ingestion: &ingestionFake{},
		storage:   &storageFake{},
		urls:      map[string]string{},
	}
	for _, upn := range users {
		e.tenant.Graph.AddUser(graphtest.User{ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(upn)).String(), UPN: upn})
	}
	for name, h := range map[string]http.Handler{"ingestion": e.ingestion, "storage": e.storage} {
		s, err := startServer(h)
		if err != nil {
			e.close()
			return nil, err
		}
		e.servers = append(e.servers, s)
		e.urls[name] = s.URL()
	}
	e.storageConn = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testenv.AzuriteKey + ";QueueEndpoint=" + e.urls["storage"] + "/devstoreaccount1;"
	e.state = "memory"
	return e, nil
}

// loadUsers is the size of the directory the load phases pick users from.
const loadUsers = 1000

// directory is the users the load phases revoke: user0@contoso.com to user<n-1>@contoso.com.
func directory(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "user" + strconv.Itoa(i) + "@contoso.com"
	}
	return out
}

// exporting reports whether the handler exports to Application Insights (not switched off with
// -set APPLICATIONINSIGHTS_CONNECTION_STRING=).
func (e *environment) exporting() bool {
	return e.setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "on") != ""
}

// setting is the value a -set override gives key (the last one wins, as in handlerEnv), else def.
func (e *environment) setting(key, def string) string {
	v := def
	for _, kv := range e.set {
		if val, ok := strings.CutPrefix(kv, key+"="); ok {
			v = val
		}
	}
	return v
}

func (e *environment) close() {
	for _, s := range e.servers {
		s.Close()
	}
	e.tenant.Close()
}

// handlerEnv is the Function App's settings, pointed at the fakes: every feature on the request path
// is enabled (webhook signatures, guard rails, the rate guard, storage for deferral, Application
// Insights), as in production, and everything else is left at its default. The load phases keep
// state in memory (their storage fake speaks no Table protocol); the state and incident phases
// point storage at Azurite.
func (e *environment) handlerEnv(ratePerMinute int) []string {
	env := []string{
		"HOME=" + os.TempDir(),
		"WEBHOOK_SECRETS=" + benchSecret,
		"GRAPH_BASE_URL=" + e.tenant.Graph.URL(),
		"IDENTITY_ENDPOINT=" + e.tenant.Identity.URL(),
		"IDENTITY_HEADER=" + e.tenant.Identity.Secret(),
		"APPLICATIONINSIGHTS_CONNECTION_STRING=InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=" + e.urls["ingestion"] + "/",
		"AzureWebJobsStorage=" + e.storageConn,
		"PROTECTED_USERS=breakglass@contoso.com",
		"ALLOWED_DOMAINS=contoso.com",
		"MAX_REVOCATIONS_PER_MINUTE=" + strconv.Itoa(ratePerMinute),
		"WEBSITE_SITE_NAME=entra-revoke-bench",
		"STATE_STORE=" + e.state,
	}
	for _, kv := range e.set {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(s string) bool { return strings.HasPrefix(s, k+"=") })
		env = append(env, kv)
	}
	return env
}

// startHandler starts the handler with the rate guard at ratePerMinute.
func (e *environment) startHandler(bin string, ratePerMinute int) (*process, error) {
	return startChild(bin, nil, e.handlerEnv(ratePerMinute))
}

func (e *environment) startBaseline(self string) (*process, error) {
	return startChild(self, []string{"baseline", "-graph", e.tenant.Graph.URL(), "-token", e.tenant.Identity.Token()}, []string{"HOME=" + os.TempDir()})
}

// ready waits for a server just started to answer its first 200 on GET /.
func ready(p *process, err error) (*process, error) {
	if err != nil {
		return nil, err
	}
	if _, err := p.WaitReady(readyWithin, time.Millisecond); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// machine describes where the numbers were taken.
type machine struct {
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			m.Memory = fmt.Sprintf("%.1f GiB RAM", float64(kib)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// report collects results and verdicts.
type report struct {
	Machine    machine          `json:"machine"`
	Started    time.Time        `json:"started"`
	LoadBefore float64          `json:"loadAvgBefore"`
	LoadAfter  float64          `json:"loadAvgAfter"`
	ColdStarts []coldResult     `json:"coldStarts,omitempty"`
	Rounds     []loadResult     `json:"throughputRounds,omitempty"`
	Throughput *summary         `json:"throughput,omitempty"`
	Sweep      []sweepRow       `json:"concurrencySweep,omitempty"`
	Bulk       []loadResult     `json:"bulkSizes,omitempty"`
	StateCost  *stateCost       `json:"stateCost,omitempty"`
	Incident   []incidentResult `json:"bulkIncident,omitempty"`
	Watch      *watchResult     `json:"signInWatch,omitempty"`
	Settings   []string         `json:"settingsOverridden,omitempty"`
	Verdicts   []verdict        `json:"verdicts"`

	out    io.Writer
	missed int
}

type summary struct {
	HandlerRPS, BaselineRPS   float64
	RPSRatio                  float64
	HandlerP99, BaselineP99   time.Duration
	HandlerP50, BaselineP50   time.Duration
	P99Ratio                  float64
	HandlerCPU, BaselineCPU   time.Duration // per request, median of rounds
	HandlerErrors             int
	HandlerRSSMax, HandlerHWM int64
	BaselineHWM               int64
	Accounting                []string // problems found when reconciling counts; empty when all add up
}

type verdict struct {
	Target   string `json:"target"`
	Got      string `json:"got"`
	Met      bool   `json:"met"`
	Reported bool   `json:"reported,omitempty"` // a figure to report, not a target
}

func (r *report) printf(format string, a ...any) { fmt.Fprintf(r.out, format+"\n", a...) }

func (r *report) judge(target, got string, met bool) {
	r.Verdicts = append(r.Verdicts, verdict{Target: target, Got: got, Met: met})
	if !met {
		r.missed++
	}
}

// note records a figure that is reported next to the targets without a verdict.
func (r *report) note(what, got string) {
	r.Verdicts = append(r.Verdicts, verdict{Target: what, Got: got, Met: true, Reported: true})
}

func (r *report) verdict() {
	r.printf("\ntargets:")
	for _, v := range r.Verdicts {
		mark := "MET   "
		switch {
		case v.Reported:
			mark = "REPORT"
		case !v.Met:
			mark = "MISSED"
		}
		r.printf("  %s  %-62s %s", mark, v.Target, v.Got)
	}
}

func (r *report) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "bench-"+r.Started.Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	r.printf("report written to %s", path)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) coldStarts(o options, env *environment, self, repo, tmp string) error {
	r.printf("\ncold start: process start to the first 200 on GET / (%d starts each, after one unmeasured start)", o.coldStarts)
	launchers := []launcher{
		{name: "handler", start: func() (*process, error) { return env.startHandler(o.handler, 600) }},
		{name: "bare Go net/http server", start: func() (*process, error) { return env.startBaseline(self) }},
	}
	if l, ok := nodeLauncher(repo, tmp, env.handlerEnv(600)); ok {
		launchers = append(launchers, l)
	} else {
		r.printf("  (node or testdata/node/node_modules missing: no Node.js comparison; run make node-tools)")
	}
	for _, l := range launchers {
		c, err := measureColdStarts(l, o.coldStarts)
		if err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		r.ColdStarts = append(r.ColdStarts, c)
		r.printf("  %-48s median %s  p90 %s  min %s  max %s  idle RSS %.1f MiB  (load %.2f)",
			l.name, ms(c.Median), ms(c.P90), ms(c.Min), ms(c.Max), float64(c.IdleRSS)/1024, c.LoadAvg)
		if l.name == "handler" {
			r.judge("cold start median < 20 ms", ms(c.Median), c.Median < targetColdStart)
		}
	}
	return nil
}

func (r *report) throughput(o options, env *environment, self string, keys webhook.Keys) error {
	r.printf("\nthroughput: %d callers, %d rounds of %s each per server, alternating, after %s of warm-up; handler GRAPH_CONCURRENCY %s",
		o.concurrency, o.rounds, o.duration, o.warmup, env.setting("GRAPH_CONCURRENCY", "8 (default)"))
	// The handler runs at its defaults, GRAPH_CONCURRENCY included, except for the rate guard,
	// which stays on with its bookkeeping but is set above the load: at its default of 600 a
	// minute it would answer most of the load 429.
	h, err := ready(env.startHandler(o.handler, 1_000_000))
	if err != nil {
		return fmt.Errorf("start handler: %w", err)
	}
	defer h.stop()
	b, err := ready(env.startBaseline(self))
	if err != nil {
		return fmt.Errorf("start baseline: %w", err)
	}
	defer b.stop()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * o.concurrency, MaxIdleConnsPerHost: 2 * o.concurrency}}
	baselineOK := func(status int, _ []byte) bool { return status == http.StatusOK }
	targets := []struct {
		name string
		p    *process
		ok   func(int, []byte) bool
	}{{"handler", h, handlerRevoked}, {"baseline", b, baselineOK}}

	handlerSucceeded, baselineSucceeded := 0, 0
	for _, t := range targets {
		w := runLoad(client, t.p.URL+"/api/revoke", o.concurrency, o.warmup, requester{keys: keys, round: "warmup", users: loadUsers}, t.ok)
		if t.name == "handler" {
			handlerSucceeded += w.Requests - w.Errors
		} else {
			baselineSucceeded += w.Requests - w.Errors
		}
	}
	var hRPS, bRPS, hP99, bP99, hP50, bP50, hCPU, bCPU []float64
	s := &summary{}
	for round := 1; round <= o.rounds; round++ {
		order := targets
		if round%2 == 0 {
			order = []struct {
				name string
				p    *process
				ok   func(int, []byte) bool
			}{targets[1], targets[0]}
		}
		for _, t := range order {
			res := measure(client, t.p, o.concurrency, o.duration, requester{keys: keys, round: strconv.Itoa(round), users: loadUsers}, t.ok)
			res.Target = t.name
			r.Rounds = append(r.Rounds, res)
			r.printf("  round %d %-8s %7.0f req/s  p50 %s  p90 %s  p99 %s  max %s  errors %d  CPU/req %4.0f µs (callers+fakes %4.0f µs, %.2f CPUs busy)  RSS max %.1f MiB  (load %.2f)",
				round, t.name, res.RPS, ms(res.P50), ms(res.P90), ms(res.P99), ms(res.Max), res.Errors,
				float64(res.CPUPerReq)/float64(time.Microsecond), float64(res.BenchCPU)/float64(time.Microsecond), res.Busy,
				float64(res.RSSMaxKiB)/1024, res.LoadAvg)
			if res.FirstError != "" {
				r.printf("    first error: %s", res.FirstError)
			}
			if t.name == "handler" {
				handlerSucceeded += res.Requests - res.Errors
				hRPS, hP99, hP50, hCPU = append(hRPS, res.RPS), append(hP99, float64(res.P99)), append(hP50, float64(res.P50)), append(hCPU, float64(res.CPUPerReq))
				s.HandlerErrors += res.Errors
				s.HandlerRSSMax = max(s.HandlerRSSMax, res.RSSMaxKiB)
				s.HandlerHWM = max(s.HandlerHWM, res.HWMKiB)
			} else {
				baselineSucceeded += res.Requests - res.Errors
				bRPS, bP99, bP50, bCPU = append(bRPS, res.RPS), append(bP99, float64(res.P99)), append(bP50, float64(res.P50)), append(bCPU, float64(res.CPUPerReq))
				s.BaselineHWM = max(s.BaselineHWM, res.HWMKiB)
			}
		}
	}
	s.HandlerRPS, s.BaselineRPS = median(hRPS), median(bRPS)
	s.HandlerP99, s.BaselineP99 = time.Duration(median(hP99)), time.Duration(median(bP99))
	s.HandlerP50, s.BaselineP50 = time.Duration(median(hP50)), time.Duration(median(bP50))
	s.HandlerCPU, s.BaselineCPU = time.Duration(median(hCPU)), time.Duration(median(bCPU))
	s.RPSRatio = s.HandlerRPS / s.BaselineRPS
	s.P99Ratio = float64(s.HandlerP99) / float64(s.BaselineP99)

	// Reconcile: every successful request is one Graph revocation, one stdout outcome line and, once
	// the handler has flushed at SIGTERM, one SessionRevocation event; nothing was deferred.
	if err := h.stop(); err != nil {
		s.Accounting = append(s.Accounting, fmt.Sprintf("handler exit after SIGTERM: %v", err))
	}
	lines := h.revoked.Load()
	if lines != int64(handlerSucceeded) {
		s.Accounting = append(s.Accounting, fmt.Sprintf("%d revoked outcome lines on stdout for %d successful requests", lines, handlerSucceeded))
	}
	if n := env.ingestion.outcomes.Load(); env.exporting() && n != int64(handlerSucceeded) {
		s.Accounting = append(s.Accounting, fmt.Sprintf("%d SessionRevocation events ingested for %d successful requests", n, handlerSucceeded))
	}
	if n := env.tenant.Stats().Revocations; n != handlerSucceeded+baselineSucceeded {
		s.Accounting = append(s.Accounting, fmt.Sprintf("Graph fake counted %d revocations for %d successful requests", n, handlerSucceeded+baselineSucceeded))
	}
	if n := env.storage.enqueued.Load(); n != 0 {
		s.Accounting = append(s.Accounting, fmt.Sprintf("%d requests were deferred to the queue", n))
	}
	r.Throughput = s
	r.printf("  median   handler %.0f req/s, p50 %s, p99 %s, %.0f µs CPU/req | baseline %.0f req/s, p50 %s, p99 %s, %.0f µs CPU/req",
		s.HandlerRPS, ms(s.HandlerP50), ms(s.HandlerP99), float64(s.HandlerCPU)/1e3, s.BaselineRPS, ms(s.BaselineP50), ms(s.BaselineP99), float64(s.BaselineCPU)/1e3)
	r.printf("  ratios   requests/s %.2f of the baseline, p99 %.2f× the baseline; handler peak RSS %.1f MiB (baseline %.1f MiB)",
		s.RPSRatio, s.P99Ratio, float64(s.HandlerHWM)/1024, float64(s.BaselineHWM)/1024)
	r.printf("  reconciled %d handler successes against stdout, ingestion, Graph and the queue: %s", handlerSucceeded, okOr(s.Accounting))

	r.judge(fmt.Sprintf("throughput ≥ %.1f× the bare baseline", targetRPSRatio), fmt.Sprintf("%.2f×", s.RPSRatio), s.RPSRatio >= targetRPSRatio)
	r.judge(fmt.Sprintf("p99 latency ≤ %.0f× the bare baseline", targetP99Ratio), fmt.Sprintf("%.2f×", s.P99Ratio), s.P99Ratio <= targetP99Ratio)
	r.judge("zero errors (and every success accounted for)", fmt.Sprintf("%d errors, %d accounting problems", s.HandlerErrors, len(s.Accounting)), s.HandlerErrors == 0 && len(s.Accounting) == 0)
	r.judge(fmt.Sprintf("peak RSS ≤ %d MiB at %d callers", targetRSSKiB>>10, o.concurrency), fmt.Sprintf("peak %.1f MiB", float64(s.HandlerHWM)/1024), s.HandlerHWM <= targetRSSKiB)
	r.note("CPU per revocation (handler process)", fmt.Sprintf("%.0f µs (baseline %.0f µs per request)", float64(s.HandlerCPU)/1e3, float64(s.BaselineCPU)/1e3))
	return nil
}

func okOr(problems []string) string {
	if len(problems) == 0 {
		return "all add up"
	}
	return strings.Join(problems, "; ")
}

func (r *report) bulkIncident(o options, keys webhook.Keys, nodeDir, tmp string) error {
	c := o.incident
	r.printf("\nbulk incident: %d users in %d-user respond-async requests, through the queue (Azurite) to %d instances, STATE_STORE=%s; Graph allows %d revocations per %s (%.0f/s); MAX_REVOCATIONS_PER_MINUTE %d; host: batch %d, new batch at %d in flight, visibility timeout %s, max dequeue count %d",
		c.Users, c.Batch, c.Instances, c.State, c.Limit, c.Window, float64(c.Limit)/c.Window.Seconds(), c.Guard,
		c.Host.BatchSize, c.Host.NewBatchThreshold, c.Host.VisibilityTimeout, c.Host.MaxDequeueCount)
	runs := []struct {
		name   string
		outage time.Duration
		kill   time.Duration
	}{{"outage", c.Outage, 0}, {"clean", 0, 0}, {"crash", 0, c.KillAt}}
	for _, run := range runs {
		if !o.runs[run.name] || run.name == "outage" && run.outage <= 0 || run.name == "crash" && run.kill <= 0 {
			continue
		}
		cfg := c
		cfg.Outage, cfg.KillAt = run.outage, run.kill
		res, err := runIncident(run.name, cfg, o, keys, nodeDir, tmp, r.printf)
		if err != nil {
			return fmt.Errorf("bulk incident (%s): %w", run.name, err)
		}
		r.Incident = append(r.Incident, res)
		r.reportIncident(res)
	}
	return nil
}

func (r *report) reportIncident(res incidentResult) {
	what := "no failures"
	if res.Outage > 0 {
		what = fmt.Sprintf("%d users (10 %%) failing with 500 or 503 for the first %s", res.FailingUsers, res.Outage)
	}
	r.printf("  %s run (%s): drained in %s (the write limit's own minimum: %s): %.2f revocations/s, %.0f%% of what the limit allows%s",
		res.Name, what, res.Elapsed.Round(time.Second), res.Ideal, res.Rate, 100*res.Efficiency, map[bool]string{true: " — TIMED OUT", false: ""}[res.TimedOut])
	r.printf("    %d users revoked, %d lost, %d revoked twice; %d invocations, %d redeliveries (max dequeue count %d), %d failed invocations; poison queue %d (%d by the host); %d final failures; %d messages left; storage errors %d",
		res.Revoked, res.Lost, res.Duplicates, res.Host.Invocations, res.Host.Redeliveries, res.Host.MaxDequeue, res.Host.Failed, res.PoisonQueue, res.Host.Poisoned, res.Host.FinalFailures, res.Left, res.Host.StorageErrors)
	r.printf("    Graph saw %d requests: %d answered 429, %d answered 5xx; %d revoked outcome lines on stdout; handlers stopped: %s",
		res.GraphRequests, res.Graph429, res.Graph5xx, res.OutcomeLines, res.HandlersStopped)
	r.printf("    table operations: %.2f per revocation while draining (%s); while submitting %d requests: %s",
		res.TablePerUser, res.DrainTable, res.Submitted, res.SubmitTable)
	r.printf("    CPU per revocation: handlers %.0f µs, Azurite %.0f µs; largest handler RSS %.1f MiB (load %.2f)",
		float64(res.HandlerCPU)/1e3, float64(res.AzuriteCPU)/1e3, float64(res.RSSMaxKiB)/1024, res.LoadAvg)
	switch {
	case res.StatusLinks == 0:
		r.printf("    status links: none in the answers")
	default:
		r.printf("    status links: %d of %d answered 200 (final) on another instance%s", res.StatusFinal, res.StatusLinks, firstOf(res.StatusProblem))
	}
	name := "bulk incident, " + res.Name
	r.judge(name+": every request queued", fmt.Sprintf("%d of %d refused%s", res.SubmitErrors, res.Submitted, firstOf(res.FirstSubmitErr)), res.SubmitErrors == 0)
	r.judge(name+": no user lost, drained in time", fmt.Sprintf("%d lost, %d final failures, %d left", res.Lost, res.Host.FinalFailures, res.Left),
		res.Lost == 0 && res.Host.FinalFailures == 0 && res.Left == 0 && !res.TimedOut)
	r.judge(name+": nothing poisoned", fmt.Sprintf("poison queue %d", res.PoisonQueue), res.PoisonQueue == 0)
	if res.KillAt > 0 {
		r.printf("    instance 1 SIGKILLed %s into the drain with %d messages in flight, and replaced; Graph accepted %d revocations", res.KillAt, res.KilledInFlight, res.Accepted)
		r.judge(name+": users revoked twice at most those in flight on the killed instance (GRAPH_CONCURRENCY 8)",
			fmt.Sprintf("%d revoked twice", res.Duplicates), res.Duplicates <= 8)
		r.judge(name+": every revocation Graph accepted has its outcome line, the killed instance's included",
			fmt.Sprintf("%d outcome lines for %d accepted revocations", res.OutcomeLines, res.Accepted), res.OutcomeLines == int64(res.Accepted))
		if res.StatusLinks > 0 {
			r.judge(name+": status links final on another instance", fmt.Sprintf("%d of %d", res.StatusFinal, res.StatusLinks), res.StatusFinal == res.StatusLinks)
		}
	} else if res.State == "table" {
		r.judge(name+": no user revoked twice", fmt.Sprintf("%d duplicates, %d outcome lines", res.Duplicates, res.OutcomeLines), res.Duplicates == 0 && res.OutcomeLines == int64(res.Users))
		r.judge(name+": state in the table", fmt.Sprintf("%d table operations", res.DrainTable.Total+res.SubmitTable.Total), res.DrainTable.Total+res.SubmitTable.Total > 0)
		if res.StatusLinks > 0 {
			r.judge(name+": status links final on another instance", fmt.Sprintf("%d of %d", res.StatusFinal, res.StatusLinks), res.StatusFinal == res.StatusLinks)
		}
	} else {
		r.note(name+": users revoked twice (memory state is per instance)", strconv.Itoa(res.Duplicates))
	}
	if res.Outage == 0 && res.KillAt == 0 {
		r.judge(name+": ≥ 90% of what the write limit allows", fmt.Sprintf("%.0f%%", 100*res.Efficiency), res.Efficiency >= targetDrainOfRate)
	}
	r.note(name+": table operations per revocation", fmt.Sprintf("%.2f", res.TablePerUser))
}

// sweepRow is the handler and the baseline at one number of callers.
type sweepRow struct {
	Callers  int        `json:"callers"`
	Handler  loadResult `json:"handler"`
	Baseline loadResult `json:"baseline"`
}

// measure runs one load against p and fills in its CPU and memory figures.
func measure(client *http.Client, p *process, conc int, d time.Duration, q requester, ok func(int, []byte) bool) loadResult {
	cpu0, _ := cpuTime(p.Pid())
	self0, _ := cpuTime(os.Getpid())
	sampler := sampleRSS(p.Pid(), 100*time.Millisecond)
	res := runLoad(client, p.URL+"/api/revoke", conc, d, q, ok)
	res.RSSMaxKiB = sampler.finish()
	_, res.HWMKiB, _ = memory(p.Pid())
	cpu1, _ := cpuTime(p.Pid())
	self1, _ := cpuTime(os.Getpid())
	if res.Requests > 0 {
		res.CPUPerReq = (cpu1 - cpu0) / time.Duration(res.Requests)
		res.BenchCPU = (self1 - self0) / time.Duration(res.Requests)
		res.Busy = (cpu1 - cpu0 + self1 - self0).Seconds() / res.Elapsed.Seconds()
	}
	res.LoadAvg = loadAvg()
	return res
}

func handlerRevoked(status int, body []byte) bool {
	return status == http.StatusOK && strings.Contains(string(body), `"status":"revoked"`)
}

// concurrencySweep shows how latency, throughput and cost per request change with the number of
// callers, for the handler and the baseline.
func (r *report) concurrencySweep(o options, env *environment, self string, keys webhook.Keys) error {
	r.printf("\nconcurrency sweep: %s per run, handler then baseline at each caller count; handler GRAPH_CONCURRENCY %s",
		o.short, env.setting("GRAPH_CONCURRENCY", "8 (default)"))
	h, err := ready(env.startHandler(o.handler, 1_000_000))
	if err != nil {
		return fmt.Errorf("start handler: %w", err)
	}
	defer h.stop()
	b, err := ready(env.startBaseline(self))
	if err != nil {
		return fmt.Errorf("start baseline: %w", err)
	}
	defer b.stop()
	baselineOK := func(status int, _ []byte) bool { return status == http.StatusOK }
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128}}
	q := requester{keys: keys, round: "sweep-warmup", users: loadUsers}
	runLoad(client, h.URL+"/api/revoke", 8, time.Second, q, handlerRevoked)
	runLoad(client, b.URL+"/api/revoke", 8, time.Second, q, baselineOK)
	r.printf("  %7s | %9s %9s %9s %9s %8s | %9s %9s %9s %9s | %6s", "callers", "handler/s", "p50", "p99", "CPU/req", "errors", "base/s", "p50", "p99", "CPU/req", "ratio")
	for _, c := range o.sweep {
		q := requester{keys: keys, round: "sweep" + strconv.Itoa(c), users: loadUsers}
		row := sweepRow{Callers: c}
		row.Handler = measure(client, h, c, o.short, q, handlerRevoked)
		row.Handler.Target = "handler"
		row.Baseline = measure(client, b, c, o.short, q, baselineOK)
		row.Baseline.Target = "baseline"
		r.Sweep = append(r.Sweep, row)
		r.printf("  %7d | %9.0f %9s %9s %6.0f µs %8d | %9.0f %9s %9s %6.0f µs | %6.2f   (load %.2f)", c,
			row.Handler.RPS, ms(row.Handler.P50), ms(row.Handler.P99), float64(row.Handler.CPUPerReq)/1e3, row.Handler.Errors,
			row.Baseline.RPS, ms(row.Baseline.P50), ms(row.Baseline.P99), float64(row.Baseline.CPUPerReq)/1e3,
			row.Handler.RPS/row.Baseline.RPS, row.Baseline.LoadAvg)
	}
	return nil
}

// bulkSizes shows how the handler's cost grows with the users in one request.
func (r *report) bulkSizes(o options, env *environment, keys webhook.Keys) error {
	const callers = 4
	r.printf("\nbulk size: %d callers, %s per run, users per request %v", callers, o.short, o.bulkSizes)
	h, err := ready(env.startHandler(o.handler, 1_000_000))
	if err != nil {
		return fmt.Errorf("start handler: %w", err)
	}
	defer h.stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * callers}}
	runLoad(client, h.URL+"/api/revoke", callers, time.Second, requester{keys: keys, round: "bulk-warmup", users: loadUsers}, handlerRevoked)
	r.printf("  %6s | %10s %10s %10s %10s %12s %8s", "users", "requests/s", "users/s", "p50", "p99", "CPU/user", "errors")
	for _, n := range o.bulkSizes {
		q := requester{keys: keys, round: "bulk" + strconv.Itoa(n), users: loadUsers, perRequest: n}
		res := measure(client, h, callers, o.short, q, handlerRevoked)
		res.Target = fmt.Sprintf("handler, %d users per request", n)
		r.Bulk = append(r.Bulk, res)
		r.printf("  %6d | %10.1f %10.0f %10s %10s %9.0f µs %8d   (load %.2f)", n, res.RPS, res.RPS*float64(n), ms(res.P50), ms(res.P99),
			float64(res.CPUPerReq)/1e3/float64(n), res.Errors, res.LoadAvg)
	}
	return nil
}
