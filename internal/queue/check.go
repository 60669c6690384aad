package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/watch"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// ErrCheck marks a check message body that is not shaped as the handler writes it.
var ErrCheck = errors.New("invalid sign-in check")

// maxCheckDelay is the longest visibility delay a Storage queue accepts: seven days.
const maxCheckDelay = 7 * 24 * time.Hour

// checkBody is the signed body of a check message: {"check": {…}}. statusHandle and ticket are
// null when the request has none.
type checkBody struct {
	Check *checkJSON `json:"check"`
}

type checkJSON struct {
	RequestID    string  `json:"requestId"`
	Caller       string  `json:"caller"`
	StatusHandle *string `json:"statusHandle"`
	Ticket       *string `json:"ticket"`
	UPN          string  `json:"upn"`
	UserID       string  `json:"userId"`
	RevokedAt    string  `json:"revokedAt"`
	After        string  `json:"after"`
}

// CheckQueue implements watch.Enqueuer: it seals each check with the first secret of Keys and
// enqueues it on the watch queue (Client), hidden until it comes due.
type CheckQueue struct {
	Client *Client
	Keys   webhook.Keys     // the secret that signs what the handler enqueues itself
	Now    func() time.Time // nil means time.Now
}

var _ watch.Enqueuer = (*CheckQueue)(nil)

// EnqueueCheck implements watch.Enqueuer.
func (q *CheckQueue) EnqueueCheck(ctx context.Context, c watch.Check, visibleIn time.Duration) error {
	now := time.Now
	if q.Now != nil {
		now = q.Now
	}
	text, err := SealCheck(q.Keys, now(), c)
	if err != nil {
		return err
	}
	return q.Client.EnqueueDelayed(ctx, text, visibleIn)
}

// SealCheck returns the text of c's message: the check body signed as a Standard Webhooks
// envelope with a new "msg_…" id, the same envelope as a deferred request's.
func SealCheck(k webhook.Keys, at time.Time, c watch.Check) ([]byte, error) {
	j := checkJSON{
		RequestID: c.RequestID, Caller: c.Caller, UPN: c.UPN, UserID: c.UserID,
		RevokedAt: c.RevokedAt.UTC().Format(time.RFC3339), After: c.After,
	}
	if c.StatusHandle != "" {
		j.StatusHandle = &c.StatusHandle
	}
	if c.Ticket != "" {
		j.Ticket = &c.Ticket
	}
	if err := validCheck(j); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(checkBody{Check: &j}); err != nil {
		return nil, fmt.Errorf("seal check: %w", err)
	}
	return Seal(k, NewMessageID(), at, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// ParseCheck decodes a verified check body strictly: unknown members, missing ones, trailing
// data and values the handler never writes are ErrCheck.
func ParseCheck(body []byte) (watch.Check, error) {
	var b checkBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || b.Check == nil {
		return watch.Check{}, fmt.Errorf("%w: not a check body", ErrCheck)
	}
	if _, err := dec.Token(); err != io.EOF {
		return watch.Check{}, fmt.Errorf("%w: data after the JSON object", ErrCheck)
	}
	j := *b.Check
	if err := validCheck(j); err != nil {
		return watch.Check{}, err
	}
	c := watch.Check{RequestID: j.RequestID, Caller: j.Caller, UPN: j.UPN, UserID: j.UserID, After: j.After}
	c.RevokedAt, _ = time.Parse(time.RFC3339, j.RevokedAt)
	c.Delay, _ = time.ParseDuration(j.After)
	if j.StatusHandle != nil {
		c.StatusHandle = *j.StatusHandle
	}
	if j.Ticket != nil {
		c.Ticket = *j.Ticket
	}
	return c, nil
}

func validCheck(j checkJSON) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrCheck, what) }
	switch {
	case !webhook.ValidID(j.RequestID):
		return bad("requestId must be 1-256 printable ASCII characters")
	case j.Caller == "" || len(j.Caller) > maxCallerLength || !printable(j.Caller):
		return bad("caller must be printable ASCII")
	case j.StatusHandle != nil && !ValidHandle(*j.StatusHandle):
		return bad("statusHandle is not a status handle")
	case j.Ticket != nil && len(*j.Ticket) > 256:
		return bad("ticket too long")
	case !request.IsUPN(j.UPN) && !request.IsObjectID(j.UPN):
		return bad("upn is neither a UPN nor an object ID")
	case !request.IsObjectID(j.UserID):
		return bad("userId is not an object ID")
	}
	if _, err := time.Parse(time.RFC3339, j.RevokedAt); err != nil {
		return bad("revokedAt is not an RFC 3339 time")
	}
	if d, err := time.ParseDuration(j.After); err != nil || d <= 0 || d > maxCheckDelay {
		return bad("after is not a duration of at most 168h")
	}
	return nil
}
