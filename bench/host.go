package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/google/uuid"
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

// hostListener plays one Function App instance's queue trigger against the real queue in
// Azurite, for the handler of that instance: it dequeues batches of BatchSize, takes a new batch
// when no more than NewBatchThreshold are in flight, polls with a growing interval up to
// MaxPollingInterval when the queue is empty, and after an invocation deletes the message (2xx),
// makes it visible again after VisibilityTimeout (the next dequeue counts one more delivery), or
// after MaxDequeueCount deliveries moves it to the poison queue, as the Functions host does. The
// message text is base64 in the queue (host.json's messageEncoding); the handler gets it decoded.
type hostListener struct {
	host    hostQueues
	queue   *azqueue.QueueClient
	poison  *azqueue.QueueClient
	handler string // the instance's handler URL
	client  *http.Client

	inflight atomic.Int64
	settled  atomic.Int64 // when the last invocation answered 2xx, Unix nanoseconds
	stats    hostStats
	mu       sync.Mutex // guards stats and leased
	// leased are the messages this listener's invocations hold (id to pop receipt), so that the
	// instance's death can give them back to the queue as the end of the host's lease would.
	leased map[string][2]string // pop receipt, message text
}

// hostStats counts what the simulated host did.
type hostStats struct {
	Invocations   int `json:"invocations"`
	Redeliveries  int `json:"redeliveries"` // invocations with DequeueCount > 1
	MaxDequeue    int `json:"maxDequeueCount"`
	Failed        int `json:"failedInvocations"` // non-2xx answers or no answer
	Poisoned      int `json:"poisonedByHost"`
	FinalFailures int `json:"finalFailures"` // 2xx answers whose logs say a final attempt failed
	StorageErrors int `json:"storageErrors"`
}

func (s *hostStats) add(o hostStats) {
	s.Invocations += o.Invocations
	s.Redeliveries += o.Redeliveries
	s.MaxDequeue = max(s.MaxDequeue, o.MaxDequeue)
	s.Failed += o.Failed
	s.Poisoned += o.Poisoned
	s.FinalFailures += o.FinalFailures
	s.StorageErrors += o.StorageErrors
}

// run listens until ctx ends.
func (l *hostListener) run(ctx context.Context) {
	const minPoll = 100 * time.Millisecond
	poll := minPoll
	done := make(chan struct{}, 64)
	for ctx.Err() == nil {
		if l.inflight.Load() <= int64(l.host.NewBatchThreshold) {
			n := int32(l.host.BatchSize)
			lease := int32(10 * 60) // the host leases a message for 10 minutes and renews it; invocations here end sooner
			resp, err := l.queue.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &lease})
			if err != nil && ctx.Err() == nil {
				l.count(hostStats{StorageErrors: 1})
			}
			for _, m := range resp.Messages {
				l.inflight.Add(1)
				go func() {
					l.invoke(ctx, m)
					l.inflight.Add(-1)
					done <- struct{}{}
				}()
			}
			if len(resp.Messages) > 0 {
				poll = minPoll
				continue
			}
			poll = min(2*poll, l.host.MaxPollingInterval)
		}
		select {
		case <-ctx.Done():
		case <-done:
		case <-time.After(poll):
		}
	}
}

func (l *hostListener) count(s hostStats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.add(s)
}

// invoke delivers one message to the handler and settles it in the queue.
func (l *hostListener) invoke(ctx context.Context, m *azqueue.DequeuedMessage) {
	dequeues := int(*m.DequeueCount)
	s := hostStats{Invocations: 1, MaxDequeue: dequeues}
	if dequeues > 1 {
		s.Redeliveries = 1
	}
	defer func() { l.count(s) }()
	l.lease(*m.MessageID, *m.PopReceipt, *m.MessageText)
	defer l.lease(*m.MessageID, "", "")
	text, err := base64.StdEncoding.DecodeString(*m.MessageText)
	if err != nil {
		text = []byte(*m.MessageText) // the host passes what it cannot decode as it is
	}
	// The host's functionTimeout (host.json) is 5 minutes.
	ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	status, logs, err := l.post(ictx, hostInvocation(text, *m.MessageID, dequeues))
	if ctx.Err() != nil {
		return
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	switch {
	case err == nil && status/100 == 2:
		l.settled.Store(time.Now().UnixNano())
		if strings.Contains(logs, "final attempt") {
			s.FinalFailures++
		}
		if _, err := l.queue.DeleteMessage(sctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
			s.StorageErrors++
		}
		return
	case dequeues >= l.host.MaxDequeueCount:
		s.Failed++
		s.Poisoned++
		_, err1 := l.poison.EnqueueMessage(sctx, *m.MessageText, nil)
		_, err2 := l.queue.DeleteMessage(sctx, *m.MessageID, *m.PopReceipt, nil)
		if err1 != nil || err2 != nil {
			s.StorageErrors++
		}
	default:
		s.Failed++
		vt := int32(l.host.VisibilityTimeout / time.Second)
		if _, err := l.queue.UpdateMessage(sctx, *m.MessageID, *m.PopReceipt, *m.MessageText, &azqueue.UpdateMessageOptions{VisibilityTimeout: &vt}); err != nil {
			s.StorageErrors++
		}
	}
}

func (l *hostListener) post(ctx context.Context, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.handler+"/revoke-queue", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", uuid.NewString())
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// snapshot is what the listener has counted so far.
func (l *hostListener) snapshot() hostStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// lease records (or, with an empty receipt, forgets) a message an invocation holds.
func (l *hostListener) lease(id, receipt, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leased == nil {
		l.leased = map[string][2]string{}
	}
	if receipt == "" {
		delete(l.leased, id)
		return
	}
	l.leased[id] = [2]string{receipt, text}
}

// release makes the messages of a dead instance's invocations visible again after `after`: the
// host's lease on them would run out the same way, only later (it is renewed while the instance
// lives, and lasts up to 10 minutes).
func (l *hostListener) release(ctx context.Context, after time.Duration) int {
	l.mu.Lock()
	leased := maps.Clone(l.leased)
	l.mu.Unlock()
	vt := int32(after / time.Second)
	n := 0
	for id, m := range leased {
		if _, err := l.queue.UpdateMessage(ctx, id, m[0], m[1], &azqueue.UpdateMessageOptions{VisibilityTimeout: &vt}); err == nil {
			n++
		}
	}
	return n
}
