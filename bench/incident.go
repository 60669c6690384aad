package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// The bulk incident: a SOAR playbook hands thousands of users to the handlers in 10-user
// requests with "Prefer: respond-async"; they go through the real queue (Azurite) to two Function
// App instances, each a handler with its own simulated host queue trigger, sharing state in
// Azure Table storage (Azurite's table service, behind a proxy that counts the requests). Graph
// throttles at its identity write limit (scaled down in time) and, in the outage run, fails some
// users with 5xx for a while before recovering. Nothing may be lost, poisoned or revoked twice.

// queueName is REVOKE_QUEUE's default; the handlers are left at it.
const queueName = "revoke-requests"

// incidentConfig is one bulk-incident run.
type incidentConfig struct {
	Users     int           // users to revoke
	Batch     int           // users per request (and so per queue message)
	Instances int           // Function App instances: handler plus host queue trigger
	Limit     int           // Graph's write limit: revocations ...
	Window    time.Duration // ... per sliding window
	Guard     int           // MAX_REVOCATIONS_PER_MINUTE
	State     string        // STATE_STORE
	Outage    time.Duration // how long the failing users fail, from the start of the drain; 0: none
	Timeout   time.Duration // the drain gives up after this long
	// KillAt, when set, SIGKILLs the first instance this long into the drain and starts a new
	// one in its place (the crash run).
	KillAt time.Duration
	Host   hostQueues
}

// incidentResult is what one run showed.
type incidentResult struct {
	Name            string        `json:"name"`
	Users           int           `json:"users"`
	Batch           int           `json:"usersPerMessage"`
	Instances       int           `json:"instances"`
	State           string        `json:"stateStore"`
	Limit           int           `json:"limit"`
	Window          time.Duration `json:"windowNs"`
	Outage          time.Duration `json:"outageNs"`
	FailingUsers    int           `json:"failingUsers"`
	Submitted       int           `json:"requestsSubmitted"`
	SubmitErrors    int           `json:"submitErrors"`
	FirstSubmitErr  string        `json:"firstSubmitError,omitempty"`
	Elapsed         time.Duration `json:"elapsedNs"`
	Ideal           time.Duration `json:"idealNs"` // the write limit's own minimum for this many users
	Efficiency      float64       `json:"efficiency"`
	Rate            float64       `json:"revocationsPerSecond"`
	LimitRate       float64       `json:"limitPerSecond"`
	TimedOut        bool          `json:"timedOut"`
	Revoked         int           `json:"revokedUsers"`
	Lost            int           `json:"lostUsers"`
	Duplicates      int           `json:"duplicateRevocations"`
	Host            hostStats     `json:"host"`
	PoisonQueue     int64         `json:"poisonQueueMessages"` // by the host or the handlers
	Left            int64         `json:"messagesLeft"`
	GraphRequests   int64         `json:"graphRequests"`
	Graph429        int64         `json:"graph429"`
	Graph5xx        int64         `json:"graph5xx"`
	OutcomeLines    int64         `json:"revokedOutcomeLines"`
	StatusLinks     int           `json:"statusLinks"`
	StatusFinal     int           `json:"statusLinksFinalElsewhere"` // answered 200 by another instance
	StatusProblem   string        `json:"statusProblem,omitempty"`
	SubmitTable     tableOps      `json:"tableOpsSubmitting"`
	DrainTable      tableOps      `json:"tableOpsDraining"`
	TablePerUser    float64       `json:"tableOpsPerRevocation"`
	HandlerCPU      time.Duration `json:"handlerCpuPerRevocationNs"` // all instances
	AzuriteCPU      time.Duration `json:"azuriteCpuPerRevocationNs"`
	RSSMaxKiB       int64         `json:"rssMaxKiB"` // the larger instance
	HandlersStopped string        `json:"handlersStopped"`
	KillAt          time.Duration `json:"killAtNs,omitempty"`
	KilledInFlight  int           `json:"killedInFlightMessages,omitempty"` // messages the killed instance held
	Accepted        int           `json:"graphAcceptedRevocations"`         // duplicates included
	LoadAvg         float64       `json:"loadAvg1m"`
}

// incidentUser is the u-th user of the incident.
func incidentUser(u int) string { return fmt.Sprintf("bulk%05d@contoso.com", u) }

// failing says whether user u is one the outage fails, and with which status: every 20th user a
// 500 (the Graph client does not retry it), every 20th from the 10th a 503 (it does, within the
// invocation's budget): 10 % of the users.
func failing(u int) int {
	switch u % 20 {
	case 0:
		return http.StatusInternalServerError
	case 10:
		return http.StatusServiceUnavailable
	}
	return 0
}

// runIncident runs one bulk incident from scratch: a fresh Azurite, tenant and handlers.
func runIncident(name string, cfg incidentConfig, o options, keys webhook.Keys, nodeDir, tmp string, say func(string, ...any)) (incidentResult, error) {
	res := incidentResult{Name: name, Users: cfg.Users, Batch: cfg.Batch, Instances: cfg.Instances, State: cfg.State,
		Limit: cfg.Limit, Window: cfg.Window, Outage: cfg.Outage, KillAt: cfg.KillAt}
	users := make([]string, cfg.Users)
	for u := range users {
		users[u] = incidentUser(u)
	}
	env, err := startEnvironment(users, cfg.Limit, cfg.Window, o.set)
	if err != nil {
		return res, err
	}
	defer env.close()
	st, err := startStorage(nodeDir, tmp)
	if err != nil {
		return res, err
	}
	defer st.close()
	env.storageConn, env.state = st.handlerConnection(), cfg.State

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, poison, err := st.queues()
	if err != nil {
		return res, err
	}
	for _, c := range []*azqueue.QueueClient{q, poison} {
		if _, err := c.Create(ctx, nil); err != nil {
			return res, fmt.Errorf("create queue: %w", err)
		}
	}

	handlers := make([]*process, cfg.Instances)
	defer func() {
		for _, h := range handlers {
			if h != nil {
				h.Kill()
			}
		}
	}()
	for i := range handlers {
		if handlers[i], err = ready(env.startHandler(o.handler, cfg.Guard)); err != nil {
			return res, fmt.Errorf("start handler %d: %w", i+1, err)
		}
	}

	// Submit: 10-user requests, respond-async, spread over the instances.
	before := st.proxy.counts()
	links := submitIncident(handlers, users, cfg.Batch, keys, &res)
	res.SubmitTable = st.proxy.counts().minus(before)
	say("  %s: %d requests of %d users submitted to %d instances (%d errors%s)", name, res.Submitted, cfg.Batch, cfg.Instances, res.SubmitErrors, firstOf(res.FirstSubmitErr))

	// Drain.
	start := time.Now()
	if cfg.Outage > 0 {
		for u := range users {
			if status := failing(u); status != 0 {
				env.tenant.Fail(status, start.Add(cfg.Outage), users[u])
				res.FailingUsers++
			}
		}
	}
	cpu0 := cpuOf(handlers)
	az0, _ := cpuTime(st.azurite.Pid())
	drainStart := st.proxy.counts()
	var (
		listeners []*hostListener
		samplers  []*rssSampler
		stopLs    []context.CancelFunc
		wg        sync.WaitGroup
	)
	listen := func(h *process) {
		l := &hostListener{host: cfg.Host, queue: q, poison: poison, handler: h.URL,
			client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Host.BatchSize + cfg.Host.NewBatchThreshold + 1}}}
		lctx, stop := context.WithCancel(ctx)
		listeners, stopLs = append(listeners, l), append(stopLs, stop)
		samplers = append(samplers, sampleRSS(h.Pid(), 500*time.Millisecond))
		wg.Go(func() { l.run(lctx) })
	}
	for _, h := range handlers {
		listen(h)
	}
	killed := -1
	tick := func() {
		if cfg.KillAt <= 0 || killed >= 0 || time.Since(start) < cfg.KillAt {
			return
		}
		// The first instance dies mid-drain: SIGKILL, no drain of its own. Its listener goes
		// with it; what its invocations held comes back when the host's lease would end.
		killed = 0
		handlers[0].Kill()
		stopLs[0]()
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		res.KilledInFlight = listeners[0].release(rctx, time.Second)
		rcancel()
		h, err := ready(env.startHandler(o.handler, cfg.Guard))
		if err != nil {
			say("  %s: the replacement instance did not start: %v", name, err)
			return
		}
		handlers = append(handlers, h)
		listen(h)
		say("  %s %4.0fs: instance 1 killed (%d messages in flight), a new instance started", name, time.Since(start).Seconds(), res.KilledInFlight)
	}
	res.TimedOut = !waitDrained(ctx, q, func() []*hostListener { tick(); return listeners }, cfg.Timeout, func() {
		s := env.tenant.Stats()
		say("  %s %4.0fs: %d/%d users revoked, %d Graph 429s, %d Graph 5xx, %d redeliveries", name,
			time.Since(start).Seconds(), s.Revocations, cfg.Users, s.Throttled, s.Failed, sumHost(listeners).Redeliveries)
	})
	// The drain ended with the last invocation that answered 2xx, not when that was noticed.
	res.Elapsed = time.Since(start)
	var last time.Time
	for _, l := range listeners {
		last = maxTime(last, time.Unix(0, l.settled.Load()))
	}
	if !res.TimedOut && last.After(start) {
		res.Elapsed = last.Sub(start)
	}
	cancel()
	wg.Wait()
	for _, s := range samplers {
		res.RSSMaxKiB = max(res.RSSMaxKiB, s.finish())
	}
	res.DrainTable = st.proxy.counts().minus(drainStart)
	cpu1 := cpuOf(handlers)
	az1, _ := cpuTime(st.azurite.Pid())
	res.LoadAvg = loadAvg()

	// Account for every user.
	res.Host = sumHost(listeners)
	per := env.tenant.RevocationsByUser()
	for _, u := range users {
		switch n := per[u]; {
		case n == 0:
			res.Lost++
		case n > 1:
			res.Duplicates += n - 1
			res.Revoked++
		default:
			res.Revoked++
		}
	}
	gs := env.tenant.Stats()
	res.GraphRequests, res.Graph429, res.Graph5xx = gs.Requests, gs.Throttled, gs.Failed
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	res.PoisonQueue = approximateCount(sctx, poison)
	res.Left = approximateCount(sctx, q)
	res.StatusLinks = len(links)
	live := handlers
	if killed >= 0 {
		live = append(handlers[:killed:killed], handlers[killed+1:]...)
	}
	res.StatusFinal, res.StatusProblem = checkStatusLinks(live, links)

	var stops []string
	for i, h := range handlers {
		if i == killed {
			_, _ = h.Wait(stopWithin) // its stdout read to the end
		} else if err := h.stop(); err != nil {
			stops = append(stops, fmt.Sprintf("instance %d: %v", i+1, err))
		}
		res.OutcomeLines += h.revoked.Load()
	}
	res.Accepted = res.Revoked + res.Duplicates
	res.HandlersStopped = okOr(stops)

	res.LimitRate = float64(cfg.Limit) / cfg.Window.Seconds()
	res.Rate = float64(res.Revoked) / res.Elapsed.Seconds()
	// A sliding window lets Limit through at once and then Limit per Window: the fastest possible
	// drain of N users takes (ceil(N/Limit) - 1) windows.
	res.Ideal = time.Duration(math.Max(0, math.Ceil(float64(cfg.Users)/float64(cfg.Limit))-1)) * cfg.Window
	if res.Elapsed > 0 {
		res.Efficiency = min(1, float64(res.Ideal)/float64(res.Elapsed))
	}
	if res.Revoked > 0 {
		res.TablePerUser = float64(res.DrainTable.Total) / float64(res.Revoked)
		res.HandlerCPU = (cpu1 - cpu0) / time.Duration(res.Revoked)
		res.AzuriteCPU = (az1 - az0) / time.Duration(res.Revoked)
	}
	return res, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func firstOf(s string) string {
	if s == "" {
		return ""
	}
	return "; first: " + s
}

func cpuOf(ps []*process) time.Duration {
	var total time.Duration
	for _, p := range ps {
		c, _ := cpuTime(p.Pid())
		total += c
	}
	return total
}

func sumHost(ls []*hostListener) hostStats {
	var s hostStats
	for _, l := range ls {
		s.add(l.snapshot())
	}
	return s
}

// submitIncident sends the users as signed "Prefer: respond-async" requests of batch users, eight
// at a time, round robin over the instances, and returns the status links the answers gave.
func submitIncident(handlers []*process, users []string, batch int, keys webhook.Keys, res *incidentResult) []string {
	type job struct {
		n     int
		users []string
	}
	jobs := make(chan job)
	var (
		mu    sync.Mutex
		links []string
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 60 * time.Second}
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				link, err := submitOne(client, handlers[j.n%len(handlers)].URL, j.n, j.users, keys)
				mu.Lock()
				res.Submitted++
				if err != nil {
					res.SubmitErrors++
					if res.FirstSubmitErr == "" {
						res.FirstSubmitErr = err.Error()
					}
				} else if link != "" {
					links = append(links, link)
				}
				mu.Unlock()
			}
		})
	}
	for n, first := 0, 0; first < len(users); n, first = n+1, first+batch {
		jobs <- job{n: n, users: users[first:min(first+batch, len(users))]}
	}
	close(jobs)
	wg.Wait()
	return links
}

// submitOne sends one request and expects 202 with every user queued; it returns the status link.
func submitOne(client *http.Client, base string, n int, users []string, keys webhook.Keys) (string, error) {
	body, _ := json.Marshal(map[string]any{"upns": users, "ticket": "SIR-BULK", "reason": "mass compromise"})
	id := "msg_incident_" + strconv.Itoa(n)
	h, err := keys.Headers(id, time.Now(), body)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodPost, base+"/api/revoke", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "respond-async")
	req.Header.Set("X-Azure-Functions-InvocationId", id)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var answer struct {
		Status    string `json:"status"`
		StatusURL string `json:"statusUrl"`
	}
	_ = json.Unmarshal(b, &answer)
	if resp.StatusCode != http.StatusAccepted || answer.Status != "queued" {
		return "", fmt.Errorf("%s = %d %.200s; want 202 queued", id, resp.StatusCode, b)
	}
	if answer.StatusURL == "" {
		return resp.Header.Get("Location"), nil
	}
	return answer.StatusURL, nil
}

// waitDrained waits until the queue is empty (Azurite counts invisible messages too) and no
// invocation is in flight, twice in a row a second apart, or until timeout; progress is reported
// every 30 s.
func waitDrained(ctx context.Context, q *azqueue.QueueClient, listeners func() []*hostListener, timeout time.Duration, progress func()) bool {
	deadline := time.Now().Add(timeout)
	lastReport, quiet := time.Now(), 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		ls := listeners()
		busy := approximateCount(ctx, q) != 0
		for _, l := range ls {
			busy = busy || l.inflight.Load() > 0
		}
		if busy {
			quiet = 0
		} else if quiet++; quiet >= 2 {
			return true
		}
		if time.Since(lastReport) >= 30*time.Second {
			lastReport = time.Now()
			progress()
		}
	}
	return false
}

// approximateCount is the queue's message count, -1 when it cannot be read.
func approximateCount(ctx context.Context, q *azqueue.QueueClient) int64 {
	p, err := q.GetProperties(ctx, nil)
	if err != nil || p.ApproximateMessagesCount == nil {
		return -1
	}
	return *p.ApproximateMessagesCount
}

// checkStatusLinks asks, for each link, an instance other than the one that issued it (any
// instance with one alone), and counts the links answered 200: final, every user revoked.
func checkStatusLinks(handlers []*process, links []string) (int, string) {
	client := &http.Client{Timeout: 30 * time.Second}
	final, problem := 0, ""
	for _, link := range links {
		u, err := url.Parse(link)
		if err != nil {
			problem = fmt.Sprintf("status link %q: %v", link, err)
			continue
		}
		other := handlers[0].URL
		for _, h := range handlers {
			if !strings.HasSuffix(h.URL, u.Host) {
				other = h.URL
				break
			}
		}
		resp, err := client.Get(other + u.RequestURI())
		if err != nil {
			problem = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			final++
		} else if problem == "" {
			problem = fmt.Sprintf("GET %s on another instance = %d %.200s", u.Path, resp.StatusCode, b)
		}
	}
	return final, problem
}

// storage is Azurite with a counting proxy in front of its table service.
type storage struct {
	azurite *testenv.AzuriteServices
	proxy   *tableProxy
	front   *server
}

func startStorage(nodeDir, tmp string) (*storage, error) {
	dir, err := os.MkdirTemp(tmp, "azurite-")
	if err != nil {
		return nil, err
	}
	a, err := testenv.LaunchAzurite(nodeDir, dir, 60*time.Second)
	if err != nil {
		return nil, err
	}
	p, err := newTableProxy(a.TableEndpoint)
	if err != nil {
		a.Kill()
		return nil, err
	}
	front, err := startServer(p)
	if err != nil {
		a.Kill()
		return nil, err
	}
	return &storage{azurite: a, proxy: p, front: front}, nil
}

// handlerConnection is AzureWebJobsStorage for the handlers: Azurite's queues, and its tables
// through the proxy.
func (s *storage) handlerConnection() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + testenv.AzuriteAccount + ";AccountKey=" + testenv.AzuriteKey +
		";QueueEndpoint=" + s.azurite.QueueEndpoint + ";TableEndpoint=" + s.front.URL() + "/" + testenv.AzuriteAccount + ";"
}

// queues are the request queue and its poison queue, as the host sees them.
func (s *storage) queues() (q, poison *azqueue.QueueClient, err error) {
	cred, err := azqueue.NewSharedKeyCredential(testenv.AzuriteAccount, testenv.AzuriteKey)
	if err != nil {
		return nil, nil, err
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(s.azurite.QueueEndpoint+"/", cred, nil)
	if err != nil {
		return nil, nil, err
	}
	return svc.NewQueueClient(queueName), svc.NewQueueClient(queueName + "-poison"), nil
}

func (s *storage) close() {
	s.front.Close()
	_ = s.azurite.Stop(10 * time.Second) // Azurite may exit non-zero on SIGTERM; Stop kills it if it lingers
}
