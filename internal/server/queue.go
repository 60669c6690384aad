package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// maxInvocationBytes bounds the host's invocation: a queue message is at most 64 KiB of base64,
// which the host's double JSON encoding and metadata can inflate several times.
const maxInvocationBytes = 1 << 20

// hostReply is the custom-handler response the Functions host expects for a non-HTTP trigger.
type hostReply struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

func reply(w http.ResponseWriter, status int, logs ...string) {
	if logs == nil {
		logs = []string{}
	}
	encode(w, status, hostReply{Outputs: map[string]any{}, Logs: logs})
}

// handleQueue serves POST /revoke-queue, the queue trigger's invocation (queue contract). It answers 200
// when the message is finished, whatever the users' outcomes, and non-2xx only while a retry could
// still change an outcome, so that the host delivers the message again.
func handleQueue(d Deps, progress *attempts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := decodeQueueInvocation(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			// Without the message text there is nothing to poison; the host retries and then
			// poisons it itself.
			d.Logger.Error("queue invocation undecodable", "error", err)
			reply(w, http.StatusBadRequest, "invocation could not be decoded")
			return
		}
		ctx := r.Context()
		invocationID := r.Header.Get("X-Azure-Functions-InvocationId")

		body, meta, reason := openMessage(d, inv)
		if reason != "" {
			poison(ctx, w, d, inv, meta.RequestID, reason)
			return
		}
		req, err := d.Validator.Decode(body)
		if err != nil {
			poison(ctx, w, d, inv, meta.RequestID, "invalid_request")
			return
		}
		meta.Trigger, meta.InvocationID, meta.DequeueCount = revoke.TriggerQueue, invocationID, inv.DequeueCount

		key := meta.RequestID
		prior, done := progress.get(key, d.Now())
		if done {
			reply(w, http.StatusOK, fmt.Sprintf("message %s was already completed", key))
			return
		}
		final := inv.DequeueCount >= d.MaxDequeueCount
		ctx, cancel := workContext(r, d, queueBudget)
		defer cancel()
		res, err := d.Engine.Run(ctx, revoke.Job{
			Meta: meta, Users: req.Users(), Ticket: req.Ticket, Reason: req.Reason,
			RequestedBy: req.RequestedBy, DryRun: req.DryRun, Final: final, LastDelivery: final, WaitForRate: true, Prior: prior,
		})
		var rl *revoke.RateLimitedError
		if errors.As(err, &rl) {
			reply(w, http.StatusServiceUnavailable, "rate guard reached; the host will retry this message")
			return
		}
		if err != nil {
			d.Logger.Error("queue revocation failed", "request_id", key, "error", err)
			reply(w, http.StatusInternalServerError, "internal error")
			return
		}
		logs := []string{summary(res)}
		if res.Retryable() && !final {
			progress.put(key, res.Results, false, d.Now())
			reply(w, http.StatusServiceUnavailable, append(logs, "some users could not be revoked yet; the host will retry")...)
			return
		}
		progress.put(key, res.Results, true, d.Now())
		if res.Retryable() && d.Poison != nil {
			// Last delivery: the outcome is recorded as final, and a copy is kept in the poison
			// queue so that an operator can replay it once Graph recovers. Nothing is lost.
			if err := d.Poison.Poison(ctx, inv.Message); err != nil {
				d.Logger.Error("poison copy failed", "request_id", key, "error", err)
			}
			logs = append(logs, "final attempt: outcome recorded, message copied to the poison queue")
		}
		reply(w, http.StatusOK, logs...)
	})
}

// openMessage verifies a message's signature (or accepts it unsigned when allowed) and returns the
// §3 body, or the reason it can never succeed.
func openMessage(d Deps, inv queueInvocation) (body []byte, meta revoke.Meta, reason string) {
	meta.RequestID = inv.ID
	env, signed, err := queue.ParseMessage(inv.Message)
	if err != nil {
		return nil, meta, "malformed_message"
	}
	if !signed {
		if !d.AllowUnsigned {
			return nil, meta, "unsigned_message"
		}
		meta.Caller = "queue:unsigned"
		return inv.Message, meta, ""
	}
	if webhook.ValidID(env.ID) {
		meta.RequestID = env.ID
	}
	if d.Keys.Len() == 0 {
		return nil, meta, "bad_signature"
	}
	s, err := d.Keys.Verify(env.Header(), []byte(env.Body), d.Now(), d.QueueMaxAge, d.Tolerance)
	if err != nil {
		return nil, meta, err.Error()
	}
	meta.Caller = "webhook:" + strconv.Itoa(s.KeyIndex)
	return []byte(env.Body), meta, ""
}

// poison copies a message that can never succeed to <queue>-poison, records why (the
// WebhookRejected event is the log line), and completes it. If the copy fails the invocation fails, so the host retries and poisons it itself.
func poison(ctx context.Context, w http.ResponseWriter, d Deps, inv queueInvocation, requestID, reason string) {
	d.Audit.Rejected(ctx, telemetry.Rejection{Reason: reason, Trigger: revoke.TriggerQueue, RequestID: requestID})
	if d.Poison == nil {
		reply(w, http.StatusOK, "message rejected ("+reason+"); no storage configured to keep a copy")
		return
	}
	if err := d.Poison.Poison(ctx, inv.Message); err != nil {
		d.Logger.Error("poison copy failed", "request_id", requestID, "error", err)
		reply(w, http.StatusServiceUnavailable, "message rejected ("+reason+"); poison copy failed, retrying")
		return
	}
	reply(w, http.StatusOK, "message rejected ("+reason+") and copied to the poison queue")
}

// summary counts outcomes without naming users: host logs are read more widely than telemetry.
func summary(res revoke.Result) string {
	counts := map[revoke.Status]int{}
	for _, u := range res.Results {
		counts[u.Status]++
	}
	parts := make([]string, 0, len(counts))
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d users: %s", len(res.Results), strings.Join(parts, " "))
}

// attempts remembers per request what earlier attempts achieved: a redelivered queue message, or
// an HTTP caller's retry (same id, same body) of a request that partly failed, does not revoke its
// finished users again, and a duplicate of a completed message is a no-op. It is per instance and
// best effort: another instance simply revokes again, which Graph tolerates.
type attempts struct {
	mu    sync.Mutex
	m     map[string]attempt
	order []string // insertion order; entries expire in it, so the front is the oldest
}

type attempt struct {
	results []revoke.UserResult
	done    bool
	expires time.Time
}

const (
	// attemptTTL outlives the host's retries of one message (five deliveries, minutes apart).
	attemptTTL = time.Hour
	// maxAttempts bounds memory during a huge backlog; the oldest are forgotten first.
	maxAttempts = 100_000
)

func newAttempts() *attempts { return &attempts{m: map[string]attempt{}} }

// get returns the non-retryable outcomes of earlier attempts by input index, and whether the
// request was completed.
func (p *attempts) get(key string, now time.Time) (prior []revoke.UserResult, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[key]
	if !ok || now.After(e.expires) {
		return nil, false
	}
	prior = make([]revoke.UserResult, len(e.results))
	for i, r := range e.results {
		if !r.Status.Retryable() {
			prior[i] = r
		}
	}
	return prior, e.done
}

// put records an attempt, forgetting expired entries from the front (amortised O(1)).
func (p *attempts) put(key string, results []revoke.UserResult, done bool, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, seen := p.m[key]; !seen {
		p.order = append(p.order, key)
	}
	p.m[key] = attempt{results: results, done: done, expires: now.Add(attemptTTL)}
	for len(p.order) > 0 {
		k := p.order[0]
		e, ok := p.m[k]
		if ok && !now.After(e.expires) && len(p.m) <= maxAttempts {
			break
		}
		if ok && k != key {
			delete(p.m, k)
		}
		p.order = p.order[1:]
	}
}
