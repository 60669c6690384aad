package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// hostQueues is the queue trigger's behaviour from host.json (extensions.queues).
type hostQueues struct {
	BatchSize          int           `json:"batchSize"`
	NewBatchThreshold  int           `json:"newBatchThreshold"`
	MaxDequeueCount    int           `json:"maxDequeueCount"`
	VisibilityTimeout  time.Duration `json:"-"`
	MaxPollingInterval time.Duration `json:"-"`
}

// readHostQueues reads host.json; missing values take the Functions host's defaults.
func readHostQueues(path string) (hostQueues, error) {
	h := hostQueues{BatchSize: 16, MaxDequeueCount: 5, MaxPollingInterval: time.Minute}
	raw, err := os.ReadFile(path)
	if err != nil {
		return h, err
	}
	var doc struct {
		Extensions struct {
			Queues struct {
				BatchSize          *int   `json:"batchSize"`
				NewBatchThreshold  *int   `json:"newBatchThreshold"`
				MaxDequeueCount    *int   `json:"maxDequeueCount"`
				VisibilityTimeout  string `json:"visibilityTimeout"`
				MaxPollingInterval string `json:"maxPollingInterval"`
			} `json:"queues"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return h, fmt.Errorf("host.json: %w", err)
	}
	q := doc.Extensions.Queues
	if q.BatchSize != nil {
		h.BatchSize = *q.BatchSize
	}
	h.NewBatchThreshold = h.BatchSize / 2
	if q.NewBatchThreshold != nil {
		h.NewBatchThreshold = *q.NewBatchThreshold
	}
	if q.MaxDequeueCount != nil {
		h.MaxDequeueCount = *q.MaxDequeueCount
	}
	if h.VisibilityTimeout, err = hostDuration(q.VisibilityTimeout, 0); err != nil {
		return h, err
	}
	if h.MaxPollingInterval, err = hostDuration(q.MaxPollingInterval, time.Minute); err != nil {
		return h, err
	}
	return h, nil
}

// hostDuration parses a .NET TimeSpan "hh:mm:ss".
func hostDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	var hh, mm, ss int
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &hh, &mm, &ss); err != nil {
		return 0, fmt.Errorf("host.json: duration %q: %w", s, err)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second, nil
}

// drainUser is the u-th user of the bulk drain.
func drainUser(u int) string { return fmt.Sprintf("bulk%05d@contoso.com", u) }

// drainUsers is the directory of a drain of n users.
func drainUsers(n int) []string {
	out := make([]string, n)
	for u := range out {
		out[u] = drainUser(u)
	}
	return out
}

// drainConfig is one bulk-incident simulation.
type drainConfig struct {
	Users   int           // users to revoke
	Batch   int           // users per queue message (1: one message per user)
	Limit   int           // Graph's quota: requests ...
	Window  time.Duration // ... per window
	Guard   int           // MAX_REVOCATIONS_PER_MINUTE of the handler
	Host    hostQueues
	Keys    webhook.Keys
	Handler string // handler URL
	Tenant  *graphtest.Tenant
	Storage *storageFake
	Stdout  *process // the handler, whose revoked outcome lines are counted
	Pid     int
	Report  func(format string, a ...any)
}

// drainResult says whether every user was revoked, once, at what fraction of the quota's rate.
type drainResult struct {
	Users           int           `json:"users"`
	Messages        int           `json:"messages"`
	Batch           int           `json:"usersPerMessage"`
	Limit           int           `json:"limit"`
	Window          time.Duration `json:"windowNs"`
	Guard           int           `json:"guardPerMinute"`
	Host            hostQueues    `json:"host"`
	Elapsed         time.Duration `json:"elapsedNs"`
	Rate            float64       `json:"revocationsPerSecond"`
	LimitRate       float64       `json:"limitPerSecond"`
	OfLimit         float64       `json:"fractionOfLimit"`
	Ideal           time.Duration `json:"idealNs"` // the quota's own minimum for this many users
	Revoked         int           `json:"revokedUsers"`
	Lost            int           `json:"lostUsers"`
	Duplicates      int           `json:"duplicateRevocations"`
	Invocations     int           `json:"invocations"`
	Redeliveries    int           `json:"redeliveries"`
	MaxDequeue      int           `json:"maxDequeueCount"`
	HostPoisoned    int           `json:"poisonedByHost"`
	HandlerPoisoned int64         `json:"poisonedByHandler"`
	FinalFailures   int           `json:"finalFailures"`
	GraphRequests   int64         `json:"graphRequests"`
	Graph429        int64         `json:"graph429"`
	OutcomeLines    int64         `json:"revokedOutcomeLines"`
	RSSMaxKiB       int64         `json:"rssMaxKiB"`
	LoadAvg         float64       `json:"loadAvg1m"`
}

type hostMessage struct {
	id        string
	text      []byte
	dequeue   int
	visibleAt time.Time
}

type invocationResult struct {
	msg    *hostMessage
	status int
	logs   string
	err    error
}

// runDrain enqueues the users as signed messages and plays the Functions host's queue trigger
// against the handler: batches of BatchSize, a new batch when no more than NewBatchThreshold are
// in flight, a failed message visible again after VisibilityTimeout with DequeueCount+1, and moved
// to the poison queue after MaxDequeueCount failed deliveries.
func runDrain(cfg drainConfig) (drainResult, error) {
	res := drainResult{Users: cfg.Users, Batch: cfg.Batch, Limit: cfg.Limit, Window: cfg.Window, Guard: cfg.Guard, Host: cfg.Host}
	var pending []*hostMessage
	now := time.Now()
	for first := 0; first < cfg.Users; first += cfg.Batch {
		var upns []string
		for u := first; u < min(first+cfg.Batch, cfg.Users); u++ {
			upns = append(upns, drainUser(u))
		}
		b := map[string]any{"ticket": "SIR-BULK", "reason": "mass compromise"}
		if len(upns) == 1 {
			b["upn"] = upns[0]
		} else {
			b["upns"] = upns
		}
		body, _ := json.Marshal(b)
		id := fmt.Sprintf("msg_drain_%05d", first)
		text, err := queue.Seal(cfg.Keys, id, now, body)
		if err != nil {
			return res, err
		}
		pending = append(pending, &hostMessage{id: uuid.NewString(), text: text})
	}
	res.Messages = len(pending)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Host.BatchSize + cfg.Host.NewBatchThreshold}}
	results := make(chan invocationResult)
	invoke := func(m *hostMessage) {
		// The host's functionTimeout (host.json) is 5 minutes.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		r := invocationResult{msg: m}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Handler+"/revoke-queue", bytes.NewReader(hostInvocation(m.text, m.id, m.dequeue)))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Azure-Functions-InvocationId", uuid.NewString())
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r.status, r.logs = resp.StatusCode, string(b)
			}
		}
		r.err = err
		results <- r
	}

	rss := sampleRSS(cfg.Pid, 500*time.Millisecond)
	start := time.Now()
	lastReport := start
	inflight, done := 0, 0
	poll := 100 * time.Millisecond
	for len(pending) > 0 || inflight > 0 {
		if inflight <= cfg.Host.NewBatchThreshold {
			n := 0
			for n < cfg.Host.BatchSize && len(pending) > 0 && !pending[0].visibleAt.After(time.Now()) {
				m := pending[0]
				pending = pending[1:]
				m.dequeue++
				res.MaxDequeue = max(res.MaxDequeue, m.dequeue)
				if m.dequeue > 1 {
					res.Redeliveries++
				}
				res.Invocations++
				inflight++
				n++
				go invoke(m)
			}
			if n > 0 {
				poll = 100 * time.Millisecond
				continue
			}
		}
		var wake <-chan time.Time
		if inflight <= cfg.Host.NewBatchThreshold && len(pending) > 0 {
			// Nothing visible: the host polls again with a growing interval.
			wake = time.After(poll)
			poll = min(2*poll, cfg.Host.MaxPollingInterval)
		}
		select {
		case r := <-results:
			inflight--
			switch {
			case r.err == nil && r.status/100 == 2:
				done++
				if strings.Contains(r.logs, "final attempt") {
					res.FinalFailures++
				}
			case r.msg.dequeue >= cfg.Host.MaxDequeueCount:
				res.HostPoisoned++
			default:
				r.msg.visibleAt = time.Now().Add(cfg.Host.VisibilityTimeout)
				pending = append(pending, r.msg)
			}
		case <-wake:
		}
		if time.Since(lastReport) >= 30*time.Second {
			lastReport = time.Now()
			st := cfg.Tenant.Stats()
			cfg.Report("  drain %4.0fs: %d/%d messages done, %d Graph revocations, %d Graph 429s, %d redeliveries",
				time.Since(start).Seconds(), done, res.Messages, st.Revocations, st.Throttled, res.Redeliveries)
		}
	}
	res.Elapsed = time.Since(start)
	res.RSSMaxKiB = rss.finish()
	res.LoadAvg = loadAvg()

	per := cfg.Tenant.RevocationsByUser()
	for u := range cfg.Users {
		switch n := per[drainUser(u)]; {
		case n == 0:
			res.Lost++
		case n > 1:
			res.Duplicates += n - 1
			res.Revoked++
		default:
			res.Revoked++
		}
	}
	st := cfg.Tenant.Stats()
	res.GraphRequests, res.Graph429 = st.Requests, st.Throttled
	res.HandlerPoisoned = cfg.Storage.poisoned.Load()
	res.OutcomeLines = cfg.Stdout.revoked.Load()
	res.LimitRate = float64(cfg.Limit) / cfg.Window.Seconds()
	res.Rate = float64(res.Revoked) / res.Elapsed.Seconds()
	res.OfLimit = res.Rate / res.LimitRate
	// A sliding window lets Limit through at once and then Limit per Window: the fastest possible
	// drain of N users takes (ceil(N/Limit) - 1) windows.
	res.Ideal = time.Duration(math.Max(0, math.Ceil(float64(cfg.Users)/float64(cfg.Limit))-1)) * cfg.Window
	return res, nil
}

// hostInvocation wraps a message text the way the Functions host sends it to a custom handler: the
// text JSON-encoded twice, DequeueCount a string, Id and PopReceipt with embedded quotes.
func hostInvocation(text []byte, msgID string, dequeueCount int) []byte {
	inner, _ := json.Marshal(string(text))
	outer, _ := json.Marshal(string(inner))
	quotedID, _ := json.Marshal(`"` + msgID + `"`)
	now := time.Now().UTC()
	return []byte(`{"Data":{"message":` + string(outer) + `},"Metadata":{"DequeueCount":"` + strconv.Itoa(dequeueCount) +
		`","Id":` + string(quotedID) + `,"PopReceipt":"\"AgAAAAMAAAAAAAAA\"","InsertionTime":"` + now.Format(time.RFC3339) +
		`","sys":{"MethodName":"revoke-queue","UtcNow":"` + now.Format(time.RFC3339Nano) + `"}}}`)
}
