package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// ErrMalformed marks a message text that is neither a signed envelope nor a JSON object: it can
// never succeed, so the handler poisons it.
var ErrMalformed = errors.New("malformed queue message")

// Envelope is the signed queue message (docs/custom-handler.md): the Standard Webhooks headers of an HTTP request carried
// next to the request body they sign.
type Envelope struct {
	ID        string `json:"webhook-id"`
	Timestamp string `json:"webhook-timestamp"`
	Signature string `json:"webhook-signature"`
	Body      string `json:"body"`
}

// envelopeFields are the JSON names of Envelope's fields.
var envelopeFields = [...]string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature, "body"}

// Seal signs body with the first of k's secrets under id and at, and returns the JSON of the
// signed Envelope: the text of a queue message, before base64.
func Seal(k webhook.Keys, id string, at time.Time, body []byte) ([]byte, error) {
	if !webhook.ValidID(id) {
		return nil, errors.New("seal: webhook-id must be 1-256 printable ASCII characters")
	}
	if at.Unix() < 0 {
		return nil, errors.New("seal: timestamp before 1970")
	}
	// The body travels as a JSON string: invalid UTF-8 would be replaced on the way and the
	// signature would no longer match.
	if !utf8.Valid(body) {
		return nil, errors.New("seal: body is not valid UTF-8")
	}
	h, err := k.Headers(id, at, body)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	env := Envelope{
		ID:        id,
		Timestamp: h.Get(webhook.HeaderTimestamp),
		Signature: h.Get(webhook.HeaderSignature),
		Body:      string(body),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the message is not HTML; keep it readable in Storage Explorer
	if err := enc.Encode(env); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseMessage classifies a message text (after the host's base64 decoding): a signed envelope
// (exactly the four fields, all strings), or an unsigned request (a JSON object with none of the
// envelope's fields, left for request decoding). Anything else — not UTF-8, not JSON, not an
// object, trailing data, or an object with some envelope fields but not a well-formed envelope —
// is ErrMalformed. The envelope's signature is not checked here: see Envelope.Header.
func ParseMessage(text []byte) (env Envelope, signed bool, err error) {
	if !utf8.Valid(text) {
		return Envelope{}, false, fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Envelope{}, false, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Envelope{}, false, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	present := 0
	for _, name := range envelopeFields {
		if _, ok := fields[name]; ok {
			present++
		}
	}
	if present == 0 {
		return Envelope{}, false, nil
	}
	// A message that names envelope fields meant to be signed; reading it as an unsigned request
	// would only hide what is wrong with it.
	if present != len(envelopeFields) || len(fields) != len(envelopeFields) {
		return Envelope{}, false, fmt.Errorf("%w: an envelope needs exactly webhook-id, webhook-timestamp, webhook-signature and body", ErrMalformed)
	}
	values := [len(envelopeFields)]string{}
	for i, name := range envelopeFields {
		raw := bytes.TrimSpace(fields[name])
		if len(raw) == 0 || raw[0] != '"' {
			return Envelope{}, false, fmt.Errorf("%w: envelope field %s is not a string", ErrMalformed, name)
		}
		if err := json.Unmarshal(raw, &values[i]); err != nil {
			return Envelope{}, false, fmt.Errorf("%w: envelope field %s is not a string", ErrMalformed, name)
		}
	}
	return Envelope{ID: values[0], Timestamp: values[1], Signature: values[2], Body: values[3]}, true, nil
}

// Header returns the envelope's three webhook-* headers, for webhook.Keys.Verify over []byte(e.Body).
func (e Envelope) Header() http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, e.ID)
	h.Set(webhook.HeaderTimestamp, e.Timestamp)
	h.Set(webhook.HeaderSignature, e.Signature)
	return h
}
