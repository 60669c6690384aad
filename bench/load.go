package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// loadResult is one closed-loop run against one server.
type loadResult struct {
	Target      string        `json:"target"`
	Concurrency int           `json:"concurrency"`
	Requests    int           `json:"requests"`
	Errors      int           `json:"errors"`
	FirstError  string        `json:"firstError,omitempty"`
	Elapsed     time.Duration `json:"elapsedNs"`
	RPS         float64       `json:"rps"`
	P50         time.Duration `json:"p50Ns"`
	P90         time.Duration `json:"p90Ns"`
	P99         time.Duration `json:"p99Ns"`
	Max         time.Duration `json:"maxNs"`
	CPUPerReq   time.Duration `json:"cpuPerRequestNs"`      // the server process's user+system CPU per request
	BenchCPU    time.Duration `json:"benchCpuPerRequestNs"` // this program's (callers and fakes) CPU per request
	Busy        float64       `json:"cpuBusy"`              // server plus this program, in CPUs (of runtime.NumCPU())
	RSSMaxKiB   int64         `json:"rssMaxKiB"`            // largest VmRSS sampled during the run
	HWMKiB      int64         `json:"hwmKiB"`               // VmHWM after the run: peak RSS since start
	LoadAvg     float64       `json:"loadAvg1m"`            // 1-minute load average at the end
}

// requester builds the signed request a caller sends: a fresh webhook-id each time, so that every
// request does the whole path (no idempotent replays), for perRequest distinct users (default 1).
type requester struct {
	keys       webhook.Keys
	round      string
	users      int // size of the directory the users are picked from
	perRequest int
}

func (q requester) body(worker, n int) []byte {
	first := worker*7919 + n*max(q.perRequest, 1)
	if q.perRequest <= 1 {
		return []byte(`{"upn":"user` + strconv.Itoa(first%q.users) + `@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`)
	}
	b := []byte(`{"upns":[`)
	for i := range q.perRequest {
		if i > 0 {
			b = append(b, ',')
		}
		// Consecutive numbers modulo a directory larger than perRequest: no duplicates.
		b = append(b, `"user`+strconv.Itoa((first+i)%q.users)+`@contoso.com"`...)
	}
	return append(b, `],"ticket":"INC0012345","reason":"Lost phone"}`...)
}

func (q requester) build(ctx context.Context, url string, worker, n int) (*http.Request, error) {
	body := q.body(worker, n)
	id := "msg_bench_" + q.round + "_" + strconv.Itoa(worker) + "_" + strconv.Itoa(n)
	h, err := q.keys.Headers(id, time.Now(), body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", id)
	return req, nil
}

// runLoad keeps conc callers busy against url for d: each sends a request, waits for the answer,
// and sends the next. ok decides whether an answer counts as a success.
func runLoad(client *http.Client, url string, conc int, d time.Duration, q requester, ok func(status int, body []byte) bool) loadResult {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		firstErr  string
		wg        sync.WaitGroup
	)
	start := time.Now()
	stopAt := start.Add(d)
	for w := range conc {
		wg.Go(func() {
			own := make([]time.Duration, 0, 4096)
			bad, firstBad := 0, ""
			for n := 0; time.Now().Before(stopAt); n++ {
				req, err := q.build(ctx, url, w, n)
				if err != nil {
					bad, firstBad = bad+1, err.Error()
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					bad++
					if firstBad == "" {
						firstBad = err.Error()
					}
					continue
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				own = append(own, time.Since(t0))
				if rerr != nil || !ok(resp.StatusCode, body) {
					bad++
					if firstBad == "" {
						firstBad = fmt.Sprintf("%d %.200s", resp.StatusCode, body)
					}
				}
			}
			mu.Lock()
			latencies = append(latencies, own...)
			errs += bad
			if firstErr == "" {
				firstErr = firstBad
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	r := loadResult{
		Concurrency: conc, Requests: len(latencies), Errors: errs, FirstError: firstErr, Elapsed: elapsed,
		RPS: float64(len(latencies)) / elapsed.Seconds(),
	}
	if n := len(latencies); n > 0 {
		r.P50, r.P90, r.P99, r.Max = pct(latencies, 50), pct(latencies, 90), pct(latencies, 99), latencies[n-1]
	}
	return r
}

// pct is the p-th percentile of sorted (nearest rank).
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
