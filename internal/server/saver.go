package server

import (
	"context"
	"log/slog"
	"sync"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// progressSaver saves a queue message's progress as its users settle, not once the whole message
// is done: one slow or throttled user then keeps nobody else unsaved, and a crash repeats only the
// users in flight. Writes are coalesced — one at a time, each with every outcome known when it
// starts — so a 100-user message costs a handful of writes, not a hundred.
type progressSaver struct {
	state  Messages
	key    state.MessageKey
	logger *slog.Logger
	ctx    context.Context

	mu      sync.Mutex
	results []revoke.UserResult // prior outcomes and those settled since
	dirty   bool                // settled since the write in flight began
	writing bool
	wg      sync.WaitGroup
}

func newProgressSaver(ctx context.Context, d Deps, key state.MessageKey, prior []revoke.UserResult) *progressSaver {
	return &progressSaver{state: d.State, key: key, logger: d.Logger, ctx: ctx, results: append([]revoke.UserResult(nil), prior...)}
}

// settled is revoke.Job.Settled: it records r and makes sure a write will include it.
func (p *progressSaver) settled(r revoke.UserResult) {
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
		err := p.state.SaveMessageProgress(ctx, p.key, progress, false)
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
