package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// OriginMember is the member that a deferring handler adds to the request body of a message it
// enqueues. The request decoder of POST /api/revoke knows no such field and refuses it, so only a
// body signed with one of WEBHOOK_SECRETS or QUEUE_SECRETS — by the handler itself, or by a caller trusted with a
// secret, which may revoke anyone anyway — can carry it.
const OriginMember = "deferred"

// Limits on an origin's fields; real values are far shorter.
const (
	maxCallerLength = 256
	minHandleLength = 22 // 128 bits in unpadded base64url
	maxHandleLength = 128
	// maxCallbackLength is the longest callbackUrl a request may name.
	maxCallbackLength = 2048
)

// ErrOrigin marks a signed body whose origin member is not shaped as the handler writes it.
var ErrOrigin = errors.New("invalid deferred origin")

// Origin is what a deferred request keeps of the request it came from, so that its final outcome is
// recorded as that request's: the caller's request id (webhook-id, Idempotency-Key or a generated
// id), the authenticated caller ("webhook:<key index>", "entra:<client id>"), and the opaque
// handle of its status record, if it has one.
type Origin struct {
	RequestID    string `json:"requestId"`
	Caller       string `json:"caller"`
	StatusHandle string `json:"statusHandle,omitempty"`
	CallbackURL  string `json:"callbackUrl,omitempty"` // checked again against the allow-list at each delivery
	StatusURL    string `json:"statusUrl,omitempty"`   // the status link, for the callback's event
}

func (o Origin) validate() error {
	if !webhook.ValidID(o.RequestID) {
		return fmt.Errorf("%w: requestId must be 1-256 printable ASCII characters", ErrOrigin)
	}
	if o.Caller == "" || len(o.Caller) > maxCallerLength || !printable(o.Caller) {
		return fmt.Errorf("%w: caller must be 1-%d printable ASCII characters", ErrOrigin, maxCallerLength)
	}
	for _, u := range []string{o.CallbackURL, o.StatusURL} {
		if len(u) > maxCallbackLength || !printable(u) {
			return fmt.Errorf("%w: callbackUrl and statusUrl must be at most %d printable ASCII characters", ErrOrigin, maxCallbackLength)
		}
	}
	if o.StatusHandle != "" && !ValidHandle(o.StatusHandle) {
		return fmt.Errorf("%w: statusHandle is not a status handle", ErrOrigin)
	}
	return nil
}

// ValidHandle reports whether h looks like a status handle: 22 to 128 characters of the URL-safe
// base64 alphabet. It says nothing of whether such a status exists.
func ValidHandle(h string) bool {
	if len(h) < minHandleLength || len(h) > maxHandleLength {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// SplitBody separates a signed request body into the request proper — for the strict request
// decoder — and the origin a deferring handler wrote into it, if any. A body without the member is
// returned unchanged, byte for byte. With it, the other members are re-encoded without it (the
// signature was checked over the original bytes already). Duplicate members at the top level are
// refused, since encoding/json would keep one of them silently; what is inside the request members
// is left to the request decoder. Every failure wraps ErrOrigin.
func SplitBody(body []byte) (req []byte, origin *Origin, err error) {
	members, err := topLevelMembers(body)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := members[OriginMember]
	if !ok {
		return body, nil, nil
	}
	delete(members, OriginMember)
	o, err := parseOrigin(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrOrigin, err)
	}
	if err := o.validate(); err != nil {
		return nil, nil, err
	}
	req, err = json.Marshal(members)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrOrigin, err)
	}
	return req, &o, nil
}

// topLevelMembers reads one JSON object, refusing duplicate names and trailing data.
func topLevelMembers(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: the body is not a JSON object", ErrOrigin)
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: the body is not a JSON object", ErrOrigin)
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: the body is not a JSON object", ErrOrigin)
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("%w: member %q appears twice", ErrOrigin, name)
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: the body is not a JSON object", ErrOrigin)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrOrigin)
	}
	return members, nil
}

// parseOrigin decodes the origin member: an object of string members, each known and present once.
func parseOrigin(raw json.RawMessage) (Origin, error) {
	members, err := topLevelMembers(raw)
	if err != nil {
		return Origin{}, errors.New("not a JSON object with distinct members")
	}
	var o Origin
	fields := map[string]*string{"requestId": &o.RequestID, "caller": &o.Caller, "statusHandle": &o.StatusHandle, "callbackUrl": &o.CallbackURL, "statusUrl": &o.StatusURL}
	for name, v := range members {
		dst, ok := fields[name]
		if !ok {
			return Origin{}, fmt.Errorf("unknown member %q", name)
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] != '"' {
			return Origin{}, fmt.Errorf("member %q is not a string", name)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return Origin{}, fmt.Errorf("member %q is not a string", name)
		}
	}
	return o, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
