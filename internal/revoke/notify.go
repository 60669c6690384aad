package revoke

import (
	"context"
	"encoding/json"
)

// Notifier sends a request's revocation.completed event to its callbackUrl. Sending never fails
// nor delays a revocation: it only enqueues.
type Notifier interface {
	Completed(ctx context.Context, c Completion)
}

// Completion is a request's final answer, for its caller's callbackUrl.
type Completion struct {
	Meta      Meta   // the request: its id, caller and CallbackURL
	Status    int    // what the synchronous call answered, or would have answered
	Body      []byte // the answer's body, as the synchronous call answers it
	StatusURL string // the status link, when the request has one
}

// completedNow sends revocation.completed for an answer in which every user is final. A request
// answered with queued users gets its event from the queue delivery that finishes it instead.
func (l *Lifecycle) completedNow(ctx context.Context, meta Meta, res Result, ans Answer) {
	if l.cfg.Notifier == nil || meta.CallbackURL == "" || AnyQueued(res) {
		return
	}
	ctx, cancel := bookkeeping(ctx)
	defer cancel()
	l.cfg.Notifier.Completed(ctx, Completion{Meta: meta, Status: ans.Status, Body: ans.Body, StatusURL: ans.Location})
}

// completedLater sends revocation.completed once a deferred request's last queued users have
// their final outcome (done: this delivery finished the message). The request's users are read
// from its status record, with this delivery's outcomes applied in case the record's update
// failed; without a record, the message's own users are the request.
func (l *Lifecycle) completedLater(ctx context.Context, meta Meta, res Result, done bool) {
	if l.cfg.Notifier == nil || meta.CallbackURL == "" || !done {
		return
	}
	whole := res
	if meta.StatusHandle != "" {
		if record, err := l.cfg.Store.GetStatus(ctx, meta.StatusHandle); err == nil {
			var final []UserResult
			for _, u := range res.Results {
				if u.Status != StatusQueued {
					final = append(final, u)
				}
			}
			if merged, err := applyOutcomes(record, final); err == nil {
				var r Result
				if json.Unmarshal(merged, &r) == nil && len(r.Results) > 0 {
					whole = r
				}
			}
		}
	}
	if AnyQueued(whole) {
		return
	}
	whole.Status = Overall(whole.Results)
	ans := l.cfg.Render.Render(whole, "", false)
	l.cfg.Notifier.Completed(ctx, Completion{Meta: meta, Status: ans.Status, Body: ans.Body, StatusURL: meta.StatusURL})
}
