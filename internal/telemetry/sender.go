package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-revoke/entra-revoke/internal/retryafter"
)

// AADScope is the token scope for Application Insights ingestion with Authorization=AAD.
const AADScope = "https://monitor.azure.com//.default"

const (
	// attemptTimeout bounds one token fetch plus POST: ingestion answers in well under a second
	// when healthy, and a hung connection must not stall the sender for long.
	attemptTimeout = 30 * time.Second
	// maxBackoff caps the wait between failed attempts when the endpoint gives no Retry-After,
	// so telemetry resumes within a minute of the endpoint coming back.
	maxBackoff = time.Minute
	// maxRetryAfter caps an endpoint's Retry-After: a buggy or hostile value must not silence
	// telemetry for hours (the buffer drops the oldest items meanwhile).
	maxRetryAfter = 5 * time.Minute
	// maxResponseBody bounds what is read of a response: a track response is a few hundred bytes.
	maxResponseBody = 1 << 20
)

// sender owns the buffer and the single goroutine that posts batches to /v2.1/track.
type sender struct {
	url       string
	cred      azcore.TokenCredential // nil unless Authorization=AAD
	client    *http.Client
	log       *slog.Logger
	batchSize int
	interval  time.Duration
	dropEvent func(n int64) []byte

	mu         sync.Mutex
	q          ring
	inflight   int
	closed     bool
	unreported int64 // drops not yet reported in a TelemetryDropped event
	sent       int64
	dropped    int64
	failed     int64

	kick     chan struct{} // a full batch is waiting
	stopping chan struct{} // closed by close: the loop exits after its current attempt
	done     chan struct{} // closed when the loop has exited
	abortCtx context.Context
	abort    context.CancelFunc // cancels the loop's in-flight attempt when Close's budget ends

	failing bool // touched only by the loop, then by drain once the loop is gone
}

func newSender(cfg Config, dropEvent func(int64) []byte) *sender {
	s := &sender{
		url:       cfg.Connection.IngestionEndpoint + "/v2.1/track",
		client:    cfg.HTTPClient,
		log:       cfg.Logger,
		batchSize: cfg.BatchSize,
		interval:  cfg.Interval,
		dropEvent: dropEvent,
		kick:      make(chan struct{}, 1),
		stopping:  make(chan struct{}),
		done:      make(chan struct{}),
	}
	if cfg.Connection.AAD {
		s.cred = cfg.Credential
	}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.batchSize == 0 {
		s.batchSize = DefaultBatchSize
	}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	size := cfg.MaxBuffer
	if size == 0 {
		size = DefaultMaxBuffer
	}
	s.q.buf = make([][]byte, size)
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	return s
}

// push buffers an item without ever blocking: a full buffer drops its oldest item.
func (s *sender) push(item []byte) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.dropped++
	case s.q.pushBack(item):
		s.dropped++
		s.unreported++
	}
	full := s.q.n >= s.batchSize
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

func (s *sender) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Buffered: int64(s.q.n + s.inflight), Sent: s.sent, Dropped: s.dropped, Failed: s.failed}
}

// take removes the next batch from the buffer, adding a TelemetryDropped event when items were
// dropped since the last report.
func (s *sender) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch := s.q.popFront(s.batchSize)
	if s.unreported > 0 {
		if ev := s.dropEvent(s.unreported); ev != nil {
			batch = append(batch, ev)
			s.unreported = 0
		}
	}
	s.inflight += len(batch)
	return batch
}

// settle accounts for a finished attempt and puts retry (in order) back at the front of the
// buffer, where they are the oldest items: if the buffer filled up meanwhile, they are the ones
// dropped.
func (s *sender) settle(batch [][]byte, accepted, failed int, retry [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight -= len(batch)
	s.sent += int64(accepted)
	s.failed += int64(failed)
	for i := len(retry) - 1; i >= 0; i-- {
		if !s.q.pushFront(retry[i]) {
			s.dropped++
			s.unreported++
		}
	}
}

func (s *sender) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// loop sends whatever is buffered each interval, or as soon as a full batch is waiting.
func (s *sender) loop() {
	defer close(s.done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-s.stopping:
			return
		case <-s.kick:
		case <-tick.C:
		}
		for !s.isStopping() {
			batch := s.take()
			if len(batch) == 0 {
				break
			}
			r := s.send(s.abortCtx, batch)
			s.note(r)
			if !r.retry {
				failures = 0
				continue
			}
			failures++
			if !sleep(s.abortCtx, s.stopping, s.backoff(r, failures)) {
				return
			}
		}
	}
}

// close stops the loop and flushes within ctx.
func (s *sender) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, s.abort)
	defer stop()
	close(s.stopping)
	<-s.done // prompt: the loop's wait selects on stopping, its attempt on abortCtx
	defer s.abort()
	return s.drain(ctx)
}

// drain sends until the buffer is empty or ctx ends, still honouring Retry-After within ctx.
func (s *sender) drain(ctx context.Context) error {
	failures := 0
	for {
		batch := s.take()
		if len(batch) == 0 {
			return nil
		}
		r := s.send(ctx, batch)
		s.note(r)
		if !r.retry {
			failures = 0
			continue
		}
		failures++
		if !sleep(ctx, nil, s.backoff(r, failures)) {
			break
		}
	}
	s.mu.Lock()
	n := s.q.n
	s.q.clear()
	s.dropped += int64(n)
	s.mu.Unlock()
	return fmt.Errorf("telemetry flush: %d items not sent: %w", n, ctx.Err())
}

// result is what one attempt means for the sender.
type result struct {
	retry    bool          // some or all items went back into the buffer
	delay    time.Duration // Retry-After, when hasDelay
	hasDelay bool
	status   int   // HTTP status, 0 without a response
	refused  int   // items refused for good
	err      error // transport or token error
}

// send posts one batch and settles it: accepted items are counted, retryable ones requeued,
// the others counted as failed.
func (s *sender) send(ctx context.Context, batch [][]byte) result {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	status, header, body, err := s.post(ctx, batch)
	if err != nil {
		s.settle(batch, 0, 0, batch)
		return result{retry: true, err: err}
	}
	r := result{status: status}
	r.delay, r.hasDelay = retryafter.Parse(header.Get("Retry-After"), time.Now(), maxRetryAfter)
	switch {
	case status == http.StatusOK || status == http.StatusPartialContent:
		accepted, retry := partial(batch, status, body)
		r.refused = len(batch) - accepted - len(retry)
		r.retry = len(retry) > 0
		s.settle(batch, accepted, r.refused, retry)
	case retryableBatch(status, s.cred != nil):
		r.retry = true
		s.settle(batch, 0, 0, batch)
	default:
		r.refused = len(batch)
		s.settle(batch, 0, len(batch), nil)
	}
	return r
}

// post sends the batch as newline-delimited JSON. Uncompressed, as the ingestion API allows: a
// few kilobytes per revocation go to an endpoint in the same region.
func (s *sender) post(ctx context.Context, batch [][]byte) (int, http.Header, []byte, error) {
	// A bytes.Reader body lets net/http set the length and resend on a stale connection.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(bytes.Join(batch, []byte{'\n'})))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("track request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-json-stream")
	if s.cred != nil {
		// A token per batch: the credential caches it and refreshes it before it expires.
		tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{AADScope}})
		if err != nil {
			return 0, nil, nil, fmt.Errorf("get ingestion token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("post track: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil && resp.StatusCode == http.StatusPartialContent {
		return 0, nil, nil, fmt.Errorf("read track response: %w", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// trackResponse is the ingestion API's answer to 200 and 206.
type trackResponse struct {
	ItemsReceived int `json:"itemsReceived"`
	ItemsAccepted int `json:"itemsAccepted"`
	Errors        []struct {
		Index      int    `json:"index"`
		StatusCode int    `json:"statusCode"`
		Message    string `json:"message"`
	} `json:"errors"`
}

// partial reads a 200 or 206 answer: the items listed with a retryable status are to be sent
// again, the other listed items are refused, the rest accepted.
func partial(batch [][]byte, status int, body []byte) (accepted int, retry [][]byte) {
	var tr trackResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		if status == http.StatusOK {
			return len(batch), nil // accepted, whatever the body says
		}
		// A 206 we cannot read: send it all again; a duplicate beats a lost outcome.
		return 0, batch
	}
	failed := map[int]int{}
	for _, e := range tr.Errors {
		if e.Index >= 0 && e.Index < len(batch) {
			failed[e.Index] = e.StatusCode
		}
	}
	idx := make([]int, 0, len(failed))
	for i := range failed {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		if retryableItem(failed[i]) {
			retry = append(retry, batch[i])
		}
	}
	return len(batch) - len(failed), retry
}

// retryableItem reports whether an item-level status in a 206 answer is worth sending again.
func retryableItem(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, 439, // 439: daily quota exceeded
		http.StatusInternalServerError, http.StatusServiceUnavailable:
		return true
	}
	return false
}

// retryableBatch reports whether a whole-batch status is transient. Beyond the contract's list, 502 and
// 504 come from gateways in front of the endpoint; with AAD, 401 and 403 also happen for minutes
// after a role assignment, until it propagates.
func retryableBatch(code int, aad bool) bool {
	switch code {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	case http.StatusUnauthorized, http.StatusForbidden:
		return aad
	}
	return retryableItem(code)
}

// backoff is how long to wait after a failed attempt: Retry-After when given, else exponential
// from the batch interval (at most a second, so a long interval does not delay the first retry).
func (s *sender) backoff(r result, failures int) time.Duration {
	if r.hasDelay {
		return r.delay
	}
	d := min(s.interval, time.Second)
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// note logs state changes of the export, not every attempt: a down endpoint must not flood the logs.
// Endpoint messages are not logged: they may quote property values.
func (s *sender) note(r result) {
	if r.refused > 0 {
		s.log.Warn("telemetry items refused", "status", r.status, "items", r.refused)
	}
	switch {
	case r.retry && !s.failing:
		s.failing = true
		s.log.Warn("telemetry export failing", "status", r.status, "error", r.err)
	case !r.retry && s.failing:
		s.failing = false
		s.log.Info("telemetry export recovered", "status", r.status)
	}
}

// sleep waits d, or returns false early when ctx ends or stop closes.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// ring is a fixed-capacity FIFO of encoded envelopes: its memory never grows.
type ring struct {
	buf     [][]byte
	head, n int
}

// pushBack appends item, dropping the oldest item when full; it reports whether it dropped one.
func (r *ring) pushBack(item []byte) (dropped bool) {
	if r.n == len(r.buf) {
		r.buf[r.head] = nil
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		dropped = true
	}
	r.buf[(r.head+r.n)%len(r.buf)] = item
	r.n++
	return dropped
}

// pushFront puts item first unless the buffer is full: a requeued item is older than everything
// buffered, so it is the one to drop.
func (r *ring) pushFront(item []byte) bool {
	if r.n == len(r.buf) {
		return false
	}
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = item
	r.n++
	return true
}

// popFront removes and returns up to k items, oldest first.
func (r *ring) popFront(k int) [][]byte {
	k = min(k, r.n)
	if k == 0 {
		return nil
	}
	out := make([][]byte, k)
	for i := range out {
		out[i] = r.buf[r.head]
		r.buf[r.head] = nil
		r.head = (r.head + 1) % len(r.buf)
	}
	r.n -= k
	return out
}

func (r *ring) clear() {
	clear(r.buf)
	r.head, r.n = 0, 0
}
