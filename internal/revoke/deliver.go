package revoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// Delivery is one delivery of a queue message, verified and decoded by its adapter.
type Delivery struct {
	// Job is the message's request, its Meta from the signature (and a deferred request's
	// origin): trigger, request id, caller, status handle, callbackUrl, invocation id and
	// dequeue count.
	Job Job
	// MessageID is the host's id of the message, the same across its redeliveries; "" when
	// unknown (then nothing is remembered and every user runs again).
	MessageID string
	// Text is the message as queued: its hash keys the message's progress, and it is what a
	// poison copy keeps.
	Text []byte
}

// Delivered is what a delivery achieved.
type Delivered struct {
	Result Result
	// Done: nothing is left for a redelivery, so the host may delete the message. Otherwise the
	// host must deliver it again.
	Done bool
	// Already: an earlier delivery completed the message; nothing was run.
	Already bool
	// Notes say what happened without naming users (host logs are read more widely than
	// telemetry).
	Notes []string
}

// Deliver works on one delivery of a queue message. The message is done when every user is
// final, whatever the outcomes; it is not while a later delivery could still change an outcome,
// or while its status link could not be updated. The last delivery (MaxDequeueCount) makes every
// outcome final, and keeps a copy of a message with throttled or failed users in the poison
// queue for an operator to replay.
//
// What each message achieved is kept under MessageKey: the host's message id, which stays the
// same across redeliveries, and a hash of the message text. Two different messages never share
// it — not even when they carry the same request id, or reuse an id after the first was deleted —
// so a redelivery skips only its own finished users, and only a redelivery of a completed message
// is a no-op.
//
// Errors: *RateLimitedError (the guard refused the job: deliver again later); anything else is
// internal.
func (l *Lifecycle) Deliver(ctx context.Context, d Delivery) (Delivered, error) {
	job := d.Job
	key := MessageKey{MessageID: d.MessageID, ContentHash: contentHash(d.Text)}
	remember := d.MessageID != ""
	if remember {
		sctx, cancel := context.WithTimeout(ctx, stateBudget)
		p, done, err := l.cfg.Store.MessageProgress(sctx, key)
		cancel()
		switch {
		case err != nil:
			l.cfg.Logger.Warn("message progress unavailable; running every user", "request_id", job.RequestID, "error", err)
		case done:
			return Delivered{Done: true, Already: true, Notes: []string{"message " + d.MessageID + " was already completed"}}, nil
		default:
			job.Prior = decodeProgress(p)
		}
	}

	final := job.DequeueCount >= l.cfg.MaxDequeueCount
	job.Final, job.LastDelivery, job.WaitForRate, job.Defer = final, final, true, DeferNever
	var saver *progressSaver
	if remember {
		saver = newProgressSaver(context.WithoutCancel(ctx), l.cfg.Store, key, l.cfg.Logger, job.Prior)
		job.Settled = saver.settled
	}
	wctx, cancel := l.workContext(ctx, QueueBudget)
	defer cancel()
	res, err := l.cfg.Engine.Run(wctx, job)
	if saver != nil {
		saver.wait()
	}
	if err != nil {
		return Delivered{}, err
	}

	bctx, bcancel := bookkeeping(ctx)
	defer bcancel()
	out := Delivered{Result: res, Done: true, Notes: []string{summary(res)}}
	switch {
	case res.Retryable() && !final:
		out.Done = false
		out.Notes = append(out.Notes, "some users could not be revoked yet; the host will retry")
	case res.Retryable() && l.cfg.Poison != nil:
		// Last delivery: the outcome is recorded as final, and a copy is kept in the poison
		// queue so that an operator can replay it once Graph recovers. If the copy fails, the
		// delivery fails too: the host then moves the message to the poison queue itself.
		if err := l.cfg.Poison.Poison(bctx, d.Text); err != nil {
			l.cfg.Logger.Error("poison copy failed; leaving the message to the host", "request_id", job.RequestID, "error", err)
			out.Done = false
			out.Notes = append(out.Notes, "final attempt: outcome recorded; the poison copy failed, so the host must poison the message")
		} else {
			out.Notes = append(out.Notes, "final attempt: outcome recorded, message copied to the poison queue")
		}
	}
	if job.StatusHandle != "" {
		err := l.updateStatus(bctx, job.Meta, job.Users, res, final)
		if err != nil && out.Done && !final {
			// The caller polling the link would see its users queued until the link expires:
			// fail this delivery so that the next one, which skips the users finished here,
			// writes the status again. The last delivery has no next one.
			out.Done = false
			out.Notes = append(out.Notes, "the status link could not be updated; the host will retry")
		}
	}
	l.completedLater(bctx, job.Meta, res, out.Done)
	if remember {
		if err := l.cfg.Store.SaveMessageProgress(bctx, key, encodeProgress(res.Results), out.Done); err != nil {
			l.cfg.Logger.Warn("message progress not saved", "request_id", job.RequestID, "error", err)
		}
	}
	return out, nil
}

func contentHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
