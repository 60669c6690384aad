package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/watch"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// The watch phase: what the sign-in watch costs. Users are revoked by 100-user requests with
// WATCH_AFTER=15m on two instances sharing Azurite; each revocation schedules one check, hidden
// for 15 minutes. Waiting 15 minutes would measure nothing but the wait, so the phase makes the
// checks due at once: for each revoked user it writes the same check the handler scheduled (same
// request id, caller, status handle, user and revokedAt, signed with the same secret) and delivers
// it to /revoke-watch, as the host would once the queue shows it, 8 at a time per instance (the
// host's queue batch). The drain is held to Graph's reports limit (5 sign-in log requests per
// 10 s per app) across both instances, so its floor is (users-5)/5×10 s.

// watchResult is the watch phase's figures.
type watchResult struct {
	Users           int            `json:"users"`
	Instances       int            `json:"instances"`
	Scheduled       int            `json:"checksScheduled"`
	SubmitP50       time.Duration  `json:"submitMedianNs"` // one 100-user request, scheduling included
	Drain           time.Duration  `json:"drainNs"`
	Floor           time.Duration  `json:"floorNs"` // the reports limit's minimum for Users requests
	Requests        int            `json:"signInRequests"`
	MaxInWindow     int            `json:"maxRequestsIn10s"`
	Retried         int            `json:"deliveriesRetried"`
	Findings        map[string]int `json:"findings"`
	ChecksPerMinute float64        `json:"checksPerMinute"`
}

func (r *report) watchCost(o options, keys webhook.Keys, nodeDir, tmp string) error {
	r.printf("\nsign-in watch: %d revoked users, WATCH_AFTER=15m, 2 instances, table state (Azurite)", o.watchUsers)
	users := make([]string, o.watchUsers)
	for i := range users {
		users[i] = fmt.Sprintf("watch%d@contoso.com", i)
	}
	env, err := startEnvironment(users, 0, 0, append(append([]string(nil), o.set...), "WATCH_AFTER=15m", "WATCH_QUEUE=revoke-watch"))
	if err != nil {
		return err
	}
	defer env.close()
	st, err := startStorage(nodeDir, tmp)
	if err != nil {
		return err
	}
	defer st.close()
	env.storageConn, env.state = st.handlerConnection(), "table"
	handlers := make([]*process, 2)
	defer func() {
		for _, h := range handlers {
			if h != nil {
				h.Kill()
			}
		}
	}()
	for i := range handlers {
		if handlers[i], err = ready(env.startHandler(o.handler, 100000)); err != nil {
			return fmt.Errorf("start handler %d: %w", i+1, err)
		}
	}
	res := watchResult{Users: len(users), Instances: 2, Findings: map[string]int{}}
	client := &http.Client{Timeout: 2 * time.Minute}

	// Revoke, 100 users a request, and remember what each check will carry.
	var checks []watch.Check
	var submits []time.Duration
	for start := 0; start < len(users); start += 100 {
		batch := users[start:min(start+100, len(users))]
		id := "msg_watchbench_" + fmt.Sprint(start)
		body, _ := json.Marshal(map[string]any{"upns": batch})
		h, err := keys.Headers(id, time.Now(), body)
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPost, handlers[(start/100)%2].URL+"/api/revoke", bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		var out struct {
			StatusURL string `json:"statusUrl"`
			Results   []struct {
				UPN, Status, UserID, RevokedAt string
			} `json:"results"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		submits = append(submits, time.Since(t0))
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("revoke batch %d: %d %v", start, resp.StatusCode, err)
		}
		handle := out.StatusURL[strings.LastIndex(out.StatusURL, "/")+1:]
		for _, u := range out.Results {
			at, _ := time.Parse(time.RFC3339, u.RevokedAt)
			checks = append(checks, watch.Check{
				RequestID: id, Caller: "webhook:0", StatusHandle: handle, UPN: u.UPN,
				UserID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(u.UPN)).String(), RevokedAt: at, After: "15m", Delay: 15 * time.Minute,
			})
		}
	}
	slicesSort(submits)
	res.SubmitP50 = submits[len(submits)/2]
	svc, err := azqueue.NewServiceClientFromConnectionString(st.handlerConnection(), nil)
	if err != nil {
		return err
	}
	props, err := svc.NewQueueClient("revoke-watch").GetProperties(context.Background(), nil)
	if err != nil {
		return err
	}
	res.Scheduled = int(*props.ApproximateMessagesCount)

	// Drain: deliver every check now, 8 at a time per instance, redelivering what asks for it.
	var next atomic.Int64
	var retried atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range 16 {
		p := handlers[w%2]
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(checks) {
					return
				}
				text, err := queue.SealCheck(keys, time.Now(), checks[i])
				if err != nil {
					return
				}
				for n := 1; n <= 20; n++ {
					status, reply := deliverWatch(client, p.URL, text, fmt.Sprintf("wb-%d", i), n)
					// A postponed check's copy waits a minute in the queue; the bench hands it
					// over again at once, as the queue would a message already due.
					if status == http.StatusOK && !strings.Contains(reply, "postponed") {
						mu.Lock()
						for _, f := range []string{"clean", "signed_in_again", "reuse_blocked", "attempts_failed", "unavailable"} {
							if strings.Contains(reply, ": "+f+" ") {
								res.Findings[f]++
							}
						}
						mu.Unlock()
						break
					}
					retried.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res.Drain = time.Since(begin)
	res.Retried = int(retried.Load())
	times := env.tenant.Graph.SignInTimes()
	res.Requests = len(times)
	for i, a := range times {
		n := 0
		for _, b := range times[i:] {
			if b.Sub(a) < 10*time.Second {
				n++
			}
		}
		res.MaxInWindow = max(res.MaxInWindow, n)
	}
	res.Floor = time.Duration(max(0, len(checks)-5)/5) * 10 * time.Second
	res.ChecksPerMinute = float64(len(checks)) / res.Drain.Minutes()
	r.Watch = &res
	r.printf("  %d checks scheduled for %d users; a 100-user request with scheduling: median %s", res.Scheduled, res.Users, ms(res.SubmitP50))
	r.printf("  drained in %s (%.1f checks/min; the limit's floor %s), %d sign-in requests, at most %d in any 10 s, %d deliveries postponed or retried, findings %v",
		res.Drain.Round(time.Second), res.ChecksPerMinute, res.Floor, res.Requests, res.MaxInWindow, res.Retried, res.Findings)
	r.judge("sign-in watch: every revoked user has one check scheduled", fmt.Sprintf("%d of %d", res.Scheduled, res.Users), res.Scheduled == res.Users)
	r.judge("sign-in watch: at most 5 sign-in log requests in any 10 s across instances", fmt.Sprint(res.MaxInWindow), res.MaxInWindow <= 5)
	r.judge("sign-in watch: the drain keeps >= 90 % of the pace the reports limit allows",
		fmt.Sprintf("%.0f %%", 100*res.Floor.Seconds()/res.Drain.Seconds()), res.Drain.Seconds() <= res.Floor.Seconds()/0.9+10)
	return nil
}

// deliverWatch hands a check to /revoke-watch as the host does.
func deliverWatch(client *http.Client, base string, text []byte, id string, dequeueCount int) (int, string) {
	inner, _ := json.Marshal(string(text))
	outer, _ := json.Marshal(string(inner))
	qid, _ := json.Marshal(`"` + id + `"`)
	inv := fmt.Sprintf(`{"Data":{"message":%s},"Metadata":{"DequeueCount":"%d","Id":%s,"PopReceipt":"\"x\""}}`, outer, dequeueCount, qid)
	resp, err := client.Post(base+"/revoke-watch", "application/json", strings.NewReader(inv))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func slicesSort(ds []time.Duration) { slices.Sort(ds) }
