package telemetry

import (
	"io"
	"sync"
)

// maxPendingLines bounds the lines waiting while stdout is slow: beyond it, writers wait, as
// they would on a plain locked writer.
const maxPendingLines = 256 << 10

// maxKeptBuffer is the largest buffer kept for reuse between writes.
const maxKeptBuffer = 64 << 10

// lineWriter writes whole lines to w with group commit: a line is written at once when nothing is
// being written, and lines that arrive meanwhile are written together by the goroutine already
// writing, as soon as its write returns. No line waits for a timer or a buffer to fill; under
// load, one write(2) carries many lines instead of one each.
type lineWriter struct {
	w io.Writer

	mu      sync.Mutex
	room    *sync.Cond // broadcast after each write and when writing stops
	pending []byte
	spare   []byte
	writing bool
}

func newLineWriter(w io.Writer) *lineWriter {
	l := &lineWriter{w: w}
	l.room = sync.NewCond(&l.mu)
	return l
}

// Write queues p, which must hold whole lines, and writes it unless another goroutine is
// writing; that one then writes p after its current write. Errors are not reported: an audit
// line that cannot be written has nowhere else to go (log/slog ignores them too).
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	for l.writing && len(l.pending) >= maxPendingLines {
		l.room.Wait()
	}
	l.pending = append(l.pending, p...)
	if l.writing {
		l.mu.Unlock()
		return len(p), nil
	}
	l.writing = true
	for len(l.pending) > 0 {
		out := l.pending
		l.pending = l.spare[:0]
		l.mu.Unlock()
		_, _ = l.w.Write(out)
		l.mu.Lock()
		// out is free again; pending may be the old spare, so spare must not stay pointing at it.
		l.spare = nil
		if cap(out) <= maxKeptBuffer { // a burst's large buffer is not kept for good
			l.spare = out[:0]
		}
		l.room.Broadcast()
	}
	l.writing = false
	l.room.Broadcast()
	l.mu.Unlock()
	return len(p), nil
}

// wait returns once every line queued so far has been written.
func (l *lineWriter) wait() {
	l.mu.Lock()
	for l.writing {
		l.room.Wait()
	}
	l.mu.Unlock()
}
