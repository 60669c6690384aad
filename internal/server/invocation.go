package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// errInvocation marks a queue-trigger invocation that is not shaped as the Functions host sends it.
var errInvocation = errors.New("invalid queue-trigger invocation")

// queueBinding is the queue trigger's binding name in revoke-queue/function.json: the key of the
// message in the invocation's Data.
const queueBinding = "message"

// Limits on metadata that ends up in logs and telemetry. Real values are far shorter (a GUID, a
// pop receipt of a few dozen characters).
const (
	maxMessageIDLength  = 256
	maxPopReceiptLength = 1024
)

// queueInvocation is the Functions host's queue-trigger request to POST /revoke-queue, decoded as
// the host really sends it.
type queueInvocation struct {
	Message       []byte    // the message text (after the host's base64 decoding), after both JSON decodings
	DequeueCount  int       // deliveries so far, this one included (1 on the first)
	ID            string    // the queue message id, quotes stripped
	PopReceipt    string    // quotes stripped
	InsertionTime time.Time // zero when the host did not send it
}

// decodeQueueInvocation decodes a queue-trigger invocation: {"Data": {"message": …}, "Metadata": {…}}.
// The host serialises every input with JsonConvert.SerializeObject before serialising the whole
// invocation, so Data.message is a JSON string holding a JSON string, and metadata values such as
// Id and PopReceipt carry embedded quotes. Unknown keys (other metadata, the host's copies of a
// JSON message's properties, sys) are ignored. The caller bounds r.
func decodeQueueInvocation(r io.Reader) (queueInvocation, error) {
	var raw struct {
		Data     map[string]json.RawMessage `json:"Data"`
		Metadata map[string]json.RawMessage `json:"Metadata"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&raw); err != nil {
		return queueInvocation{}, fmt.Errorf("%w: not a JSON object: %w", errInvocation, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return queueInvocation{}, fmt.Errorf("%w: data after the JSON object", errInvocation)
	}
	if raw.Data == nil {
		return queueInvocation{}, fmt.Errorf("%w: no Data", errInvocation)
	}
	msg, ok := raw.Data[queueBinding]
	if !ok {
		return queueInvocation{}, fmt.Errorf("%w: no Data.%s", errInvocation, queueBinding)
	}
	outer, err := jsonString(msg)
	if err != nil {
		return queueInvocation{}, fmt.Errorf("%w: Data.%s: %w", errInvocation, queueBinding, err)
	}
	// The second decoding. A host that stopped double-encoding would show here first; failing
	// loudly beats treating the JSON text of a string as the message.
	inner, err := jsonString([]byte(outer))
	if err != nil {
		return queueInvocation{}, fmt.Errorf("%w: Data.%s is not double-encoded: %w", errInvocation, queueBinding, err)
	}
	inv := queueInvocation{Message: []byte(inner)}

	if raw.Metadata == nil {
		return queueInvocation{}, fmt.Errorf("%w: no Metadata", errInvocation)
	}
	if inv.DequeueCount, err = dequeueCount(raw.Metadata["DequeueCount"]); err != nil {
		return queueInvocation{}, fmt.Errorf("%w: Metadata.DequeueCount: %w", errInvocation, err)
	}
	if inv.ID, err = metadataText(raw.Metadata["Id"], maxMessageIDLength); err != nil {
		return queueInvocation{}, fmt.Errorf("%w: Metadata.Id: %w", errInvocation, err)
	}
	if inv.PopReceipt, err = metadataText(raw.Metadata["PopReceipt"], maxPopReceiptLength); err != nil {
		return queueInvocation{}, fmt.Errorf("%w: Metadata.PopReceipt: %w", errInvocation, err)
	}
	if raw, ok := raw.Metadata["InsertionTime"]; ok {
		s, err := metadataString(raw)
		if err == nil {
			inv.InsertionTime, err = time.Parse(time.RFC3339Nano, s)
		}
		if err != nil {
			return queueInvocation{}, fmt.Errorf("%w: Metadata.InsertionTime: not an RFC 3339 time", errInvocation)
		}
	}
	return inv, nil
}

// jsonString decodes raw, which must be exactly one JSON string (null is not a string).
func jsonString(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", errors.New("not a JSON string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("not a JSON string")
	}
	return s, nil
}

// metadataString reads a metadata value: a JSON string whose content may itself be a JSON string
// (the host's embedded quotes), which is then decoded too.
func metadataString(raw json.RawMessage) (string, error) {
	s, err := jsonString(raw)
	if err != nil {
		return "", err
	}
	if len(s) > 0 && s[0] == '"' {
		return jsonString([]byte(s))
	}
	return s, nil
}

// metadataText reads an optional printable metadata value of at most limit bytes.
func metadataText(raw json.RawMessage, limit int) (string, error) {
	if raw == nil {
		return "", nil
	}
	s, err := metadataString(raw)
	if err != nil {
		return "", err
	}
	if len(s) > limit || !printableASCII(s) {
		return "", fmt.Errorf("want at most %d printable ASCII characters", limit)
	}
	return s, nil
}

// dequeueCount reads the required DequeueCount: a string such as "1" (the host's form), also
// accepted with embedded quotes or as a JSON number. It must be at least 1: the host counts the
// delivery it is making.
func dequeueCount(raw json.RawMessage) (int, error) {
	if raw == nil {
		return 0, errors.New("missing")
	}
	s := string(bytes.TrimSpace(raw))
	if len(s) > 0 && s[0] == '"' {
		var err error
		if s, err = metadataString(raw); err != nil {
			return 0, err
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 0, errors.New("want a whole number from 1 to 2147483647")
	}
	return int(n), nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// timerBinding is the timer trigger's binding name in state-cleanup/function.json.
const timerBinding = "timer"

// decodeTimerInvocation checks a timer-trigger invocation: {"Data": {"timer": …}, "Metadata": {…}},
// where the host sends the schedule status either as a JSON object or serialised once more into a
// JSON string. The handler needs none of it; the check only keeps anything else posted to the route
// from running as if it were the timer. The caller bounds r.
func decodeTimerInvocation(r io.Reader) error {
	var raw struct {
		Data     map[string]json.RawMessage `json:"Data"`
		Metadata json.RawMessage            `json:"Metadata"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("%w: not a JSON object: %w", errInvocation, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", errInvocation)
	}
	timer, ok := raw.Data[timerBinding]
	if !ok {
		return fmt.Errorf("%w: no Data.%s", errInvocation, timerBinding)
	}
	if s, err := jsonString(timer); err == nil {
		timer = json.RawMessage(s)
	}
	var status map[string]json.RawMessage
	if err := json.Unmarshal(timer, &status); err != nil || status == nil {
		return fmt.Errorf("%w: Data.%s is not a schedule status", errInvocation, timerBinding)
	}
	if m := bytes.TrimSpace(raw.Metadata); len(m) > 0 && m[0] != '{' && !bytes.Equal(m, []byte("null")) {
		return fmt.Errorf("%w: Metadata is not an object", errInvocation)
	}
	return nil
}
