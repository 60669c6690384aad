package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// stateCost is what keeping state in Azure Table storage costs next to memory, on the request
// path: two handlers at their defaults against the same Azurite, one with STATE_STORE=memory and
// one with STATE_STORE=table, measured in alternating rounds with single-user requests, each a
// new request id.
type stateCost struct {
	Rounds       []loadResult  `json:"rounds"`
	MemoryRPS    float64       `json:"memoryRps"`
	TableRPS     float64       `json:"tableRps"`
	MemoryP50    time.Duration `json:"memoryP50Ns"`
	TableP50     time.Duration `json:"tableP50Ns"`
	MemoryP99    time.Duration `json:"memoryP99Ns"`
	TableP99     time.Duration `json:"tableP99Ns"`
	MemoryCPU    time.Duration `json:"memoryCpuPerRequestNs"`
	TableCPU     time.Duration `json:"tableCpuPerRequestNs"`
	AzuriteCPU   time.Duration `json:"azuriteCpuPerRequestNs"` // Azurite's, per table-state request
	Requests     int           `json:"tableRequests"`          // measured, with table state
	Table        tableOps      `json:"tableOps"`               // during the table rounds
	OpsPerReq    float64       `json:"tableOpsPerRequest"`
	Conns        int64         `json:"tableConnections"` // opened to the table endpoint during the table rounds
	MemoryErrors int           `json:"memoryErrors"`
	TableErrors  int           `json:"tableErrors"`
}

func (r *report) stateCost(o options, keys webhook.Keys, nodeDir, tmp string) error {
	r.printf("\nstate: table against memory, %d callers, %d rounds of %s each, alternating, single-user requests; the handlers at their defaults against one Azurite (tables through a counting proxy)",
		o.concurrency, o.rounds, o.duration)
	env, err := startEnvironment(directory(loadUsers), 0, 0, o.set)
	if err != nil {
		return err
	}
	defer env.close()
	st, err := startStorage(nodeDir, tmp)
	if err != nil {
		return err
	}
	defer st.close()
	env.storageConn = st.handlerConnection()

	start := func(state string) (*process, error) {
		env.state = state
		return ready(env.startHandler(o.handler, 1_000_000))
	}
	mem, err := start("memory")
	if err != nil {
		return fmt.Errorf("start handler (memory): %w", err)
	}
	defer mem.Kill()
	tab, err := start("table")
	if err != nil {
		return fmt.Errorf("start handler (table): %w", err)
	}
	defer tab.Kill()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * o.concurrency, MaxIdleConnsPerHost: 2 * o.concurrency}}
	targets := []struct {
		name string
		p    *process
	}{{"memory", mem}, {"table", tab}}
	for _, t := range targets {
		runLoad(client, t.p.URL+"/api/revoke", o.concurrency, o.warmup, requester{keys: keys, round: "state-warmup-" + t.name, users: loadUsers}, handlerRevoked)
	}
	c := &stateCost{Table: tableOps{ByOp: map[string]int64{}, Refused: map[string]int64{}}}
	var memRPS, tabRPS, memP50, tabP50, memP99, tabP99, memCPU, tabCPU []float64
	var azCPU time.Duration
	for round := 1; round <= o.rounds; round++ {
		order := targets
		if round%2 == 0 {
			order = []struct {
				name string
				p    *process
			}{targets[1], targets[0]}
		}
		for _, t := range order {
			ops0, conns0 := st.proxy.counts(), st.front.conns.Load()
			az0, _ := cpuTime(st.azurite.Pid())
			res := measure(client, t.p, o.concurrency, o.duration, requester{keys: keys, round: "state" + strconv.Itoa(round) + t.name, users: loadUsers}, handlerRevoked)
			az1, _ := cpuTime(st.azurite.Pid())
			ops, conns := st.proxy.counts().minus(ops0), st.front.conns.Load()-conns0
			res.Target = "handler, STATE_STORE=" + t.name
			c.Rounds = append(c.Rounds, res)
			if t.name == "table" {
				c.Requests += res.Requests
				c.TableErrors += res.Errors
				azCPU += az1 - az0
				c.Table = c.Table.plus(ops)
				c.Conns += conns
				tabRPS, tabP50, tabP99, tabCPU = append(tabRPS, res.RPS), append(tabP50, float64(res.P50)), append(tabP99, float64(res.P99)), append(tabCPU, float64(res.CPUPerReq))
			} else {
				c.MemoryErrors += res.Errors
				memRPS, memP50, memP99, memCPU = append(memRPS, res.RPS), append(memP50, float64(res.P50)), append(memP99, float64(res.P99)), append(memCPU, float64(res.CPUPerReq))
			}
			r.printf("  round %d %-6s %7.0f req/s  p50 %s  p99 %s  errors %d  handler CPU/req %4.0f µs  Azurite CPU/req %4.0f µs  table ops %d (%.2f/req), %d connections opened  RSS max %.1f MiB  (load %.2f)",
				round, t.name, res.RPS, ms(res.P50), ms(res.P99), res.Errors, float64(res.CPUPerReq)/1e3,
				float64(az1-az0)/1e3/float64(max(res.Requests, 1)), ops.Total, float64(ops.Total)/float64(max(res.Requests, 1)), conns, float64(res.RSSMaxKiB)/1024, res.LoadAvg)
			if res.FirstError != "" {
				r.printf("    first error: %s", res.FirstError)
			}
		}
	}
	_ = mem.stop()
	_ = tab.stop()
	c.MemoryRPS, c.TableRPS = median(memRPS), median(tabRPS)
	c.MemoryP50, c.TableP50 = time.Duration(median(memP50)), time.Duration(median(tabP50))
	c.MemoryP99, c.TableP99 = time.Duration(median(memP99)), time.Duration(median(tabP99))
	c.MemoryCPU, c.TableCPU = time.Duration(median(memCPU)), time.Duration(median(tabCPU))
	if c.Requests > 0 {
		c.AzuriteCPU = azCPU / time.Duration(c.Requests)
		c.OpsPerReq = float64(c.Table.Total) / float64(c.Requests)
	}
	r.StateCost = c
	r.printf("  median   memory %.0f req/s, p50 %s, p99 %s, %.0f µs CPU/req | table %.0f req/s, p50 %s, p99 %s, %.0f µs CPU/req + Azurite %.0f µs",
		c.MemoryRPS, ms(c.MemoryP50), ms(c.MemoryP99), float64(c.MemoryCPU)/1e3, c.TableRPS, ms(c.TableP50), ms(c.TableP99), float64(c.TableCPU)/1e3, float64(c.AzuriteCPU)/1e3)
	r.printf("  table operations per single-user request: %.2f (%s); %d connections opened to the table endpoint for %d operations",
		c.OpsPerReq, c.Table, c.Conns, c.Table.Total)
	r.judge("state: table operations per single-user request ≤ 3 (and some)", fmt.Sprintf("%.2f", c.OpsPerReq), c.OpsPerReq > 0 && c.OpsPerReq <= 3)
	r.judge("state: zero errors with either store", fmt.Sprintf("%d memory, %d table", c.MemoryErrors, c.TableErrors), c.MemoryErrors == 0 && c.TableErrors == 0)
	r.note("state: table against memory, requests/s and p99", fmt.Sprintf("%.2f× and %.2f×", c.TableRPS/c.MemoryRPS, float64(c.TableP99)/float64(c.MemoryP99)))
	r.note("state: handler CPU per request, table against memory", fmt.Sprintf("%.0f µs against %.0f µs, plus Azurite's %.0f µs", float64(c.TableCPU)/1e3, float64(c.MemoryCPU)/1e3, float64(c.AzuriteCPU)/1e3))
	return nil
}
