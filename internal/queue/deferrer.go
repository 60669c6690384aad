package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Deferrer implements revoke.Deferrer: it writes a request body for the deferred users (upn for
// one, upns for several; ticket, reason, requestedBy and dryRun kept) together with the request's
// Origin, seals it with the first secret, and enqueues it for the queue trigger to finish.
type Deferrer struct {
	Client *Client
	Keys   webhook.Keys
	Now    func() time.Time // nil means time.Now
}

var _ revoke.Deferrer = (*Deferrer)(nil)

// deferredBody is the signed body of a deferred request: a request body plus its origin, under
// the member named by OriginMember.
type deferredBody struct {
	request.Body
	Origin *Origin `json:"deferred"`
}

// Defer queues def's users as a new message (Message, enqueued).
func (d *Deferrer) Defer(ctx context.Context, def revoke.Deferral) error {
	if d.Client == nil {
		return fmt.Errorf("defer %d users: no queue client", len(def.Users))
	}
	text, err := d.Message(def)
	if err != nil {
		return err
	}
	if err := d.Client.Enqueue(ctx, text); err != nil {
		return fmt.Errorf("defer %d users: %w", len(def.Users), err)
	}
	return nil
}

// Message returns the text of the message that queues def's users: a new message with its own
// "msg_…" webhook-id, signed with the first secret. The request keeps its identity through the
// queue inside what is signed: its request id, its caller and its status handle travel in the
// body's origin member. A request id that cannot be carried (empty, too long, not printable
// ASCII) is replaced by a new one, since a message its own reader refuses would be lost.
func (d *Deferrer) Message(def revoke.Deferral) ([]byte, error) {
	n := len(def.Users)
	if n == 0 {
		return nil, errors.New("defer: no users")
	}
	// The queue trigger validates the body as a request; one it refuses would be poisoned and
	// the users never revoked, so refuse here, where the caller can still report a failure.
	if n > request.MaxUsers {
		return nil, fmt.Errorf("defer %d users: at most %d fit in one request", n, request.MaxUsers)
	}
	origin := Origin{RequestID: def.Meta.RequestID, Caller: def.Meta.Caller, StatusHandle: def.Meta.StatusHandle, CallbackURL: def.Meta.CallbackURL}
	if origin.CallbackURL != "" {
		origin.StatusURL = def.Meta.StatusURL
	}
	if !webhook.ValidID(origin.RequestID) {
		origin.RequestID = NewMessageID()
	}
	if err := origin.validate(); err != nil {
		return nil, fmt.Errorf("defer %d users: %w", n, err)
	}
	b := deferredBody{
		Body:   request.Body{Ticket: def.Ticket, Reason: def.Reason, RequestedBy: def.RequestedBy, DryRun: def.DryRun},
		Origin: &origin,
	}
	if n == 1 {
		b.UPN = def.Users[0]
	} else {
		b.UPNs = def.Users
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, fmt.Errorf("defer %d users: %w", n, err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))

	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	text, err := Seal(d.Keys, NewMessageID(), now(), body)
	if err != nil {
		return nil, fmt.Errorf("defer %d users: %w", n, err)
	}
	return text, nil
}

// NewMessageID returns a new random webhook-id in the "msg_" style of Standard Webhooks.
func NewMessageID() string {
	return "msg_" + rand.Text()
}
