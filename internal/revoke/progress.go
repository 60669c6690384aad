package revoke

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
)

// progress is what an unfinished attempt achieved: the users' final outcomes, which the next
// attempt applies by user (Job.Prior). Queued and retryable outcomes are left out.
type progress struct {
	Results []UserResult `json:"results"`
}

func encodeProgress(results []UserResult) []byte {
	var p progress
	for _, r := range results {
		if r.Status != "" && r.Status != StatusQueued && !r.Status.Retryable() {
			p.Results = append(p.Results, r)
		}
	}
	if len(p.Results) == 0 {
		return nil
	}
	b, _ := json.Marshal(p)
	return b
}

// decodeProgress reads progress back; anything unreadable counts as none (the users run again).
func decodeProgress(b []byte) []UserResult {
	if len(b) == 0 {
		return nil
	}
	var p progress
	if json.Unmarshal(b, &p) != nil {
		return nil
	}
	return p.Results
}

// progressSaver saves a queue message's progress as its users settle, not once the whole message
// is done: one slow or throttled user then keeps nobody else unsaved, and a crash repeats only the
// users in flight. Writes are coalesced — one at a time, each with every outcome known when it
// starts — so a 100-user message costs a handful of writes, not a hundred.
type progressSaver struct {
	messages Messages
	key      MessageKey
	logger   *slog.Logger
	ctx      context.Context

	mu      sync.Mutex
	results []UserResult // prior outcomes and those settled since
	dirty   bool         // settled since the write in flight began
	writing bool
	wg      sync.WaitGroup
}

func newProgressSaver(ctx context.Context, m Messages, key MessageKey, logger *slog.Logger, prior []UserResult) *progressSaver {
	return &progressSaver{messages: m, key: key, logger: logger, ctx: ctx, results: append([]UserResult(nil), prior...)}
}

// settled is Job.Settled: it records r and makes sure a write will include it.
func (p *progressSaver) settled(r UserResult) {
	p.mu.Lock()
	p.results = append(p.results, r)
	if p.writing {
		p.dirty = true
		p.mu.Unlock()
		return
	}
	p.writing = true
	p.wg.Add(1)
	p.mu.Unlock()
	go p.write()
}

func (p *progressSaver) write() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		progress := encodeProgress(p.results)
		p.dirty = false
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, stateBudget)
		err := p.messages.SaveMessageProgress(ctx, p.key, progress, false)
		cancel()
		if err != nil {
			p.logger.Warn("message progress not saved", "error", err)
		}
		p.mu.Lock()
		if !p.dirty {
			p.writing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// wait returns once no write is in flight, so that the delivery's last save comes after them.
func (p *progressSaver) wait() { p.wg.Wait() }
