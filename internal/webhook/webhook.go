// Package webhook verifies and produces Standard Webhooks signatures (webhook-id,
// webhook-timestamp, webhook-signature) with a rotating list of secrets. The HMAC itself is the
// standard-webhooks library's; this package adds what it lacks: several secrets, an empty-secret
// guard, a configurable tolerance and an injectable clock.
package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Header names of the Standard Webhooks scheme.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// Reasons a message is refused; they double as the WebhookRejected reasons of docs/telemetry.md.
var (
	ErrMissing   = errors.New("missing_signature")
	ErrSignature = errors.New("bad_signature")
	ErrExpired   = errors.New("expired")
)

// Key lengths Standard Webhooks requires of a secret once decoded: at least 192 bits, so that it
// cannot be guessed, and at most SHA-256's block size, beyond which HMAC would hash the key first.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// maxIDLength bounds webhook-id: it is echoed into responses, logs and the idempotency store.
const maxIDLength = 256

// Keys holds the verification secrets in configuration order; the first one signs.
type Keys struct {
	hooks []*standardwebhooks.Webhook
}

// ParseSecrets parses "whsec_<base64>" secrets. An empty, undecodable, too short or too long secret is
// an error: a short HMAC key can be guessed (an empty one would let anyone sign). Errors never
// repeat a secret.
func ParseSecrets(secrets []string) (Keys, error) {
	var k Keys
	for i, s := range secrets {
		raw, ok := strings.CutPrefix(strings.TrimSpace(s), "whsec_")
		if !ok {
			return Keys{}, fmt.Errorf("secret %d: must start with whsec_", i+1)
		}
		if raw == "" {
			return Keys{}, fmt.Errorf("secret %d: is empty", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return Keys{}, fmt.Errorf("secret %d: not valid base64", i+1)
		}
		if len(key) == 0 {
			return Keys{}, fmt.Errorf("secret %d: is empty", i+1)
		}
		if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
			return Keys{}, fmt.Errorf("secret %d: must decode to %d-%d bytes, as Standard Webhooks requires (a new one: printf 'whsec_%%s' \"$(openssl rand -base64 32)\")", i+1, MinKeyBytes, MaxKeyBytes)
		}
		wh, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			return Keys{}, fmt.Errorf("secret %d: %w", i+1, err)
		}
		k.hooks = append(k.hooks, wh)
	}
	return k, nil
}

// Len returns the number of secrets.
func (k Keys) Len() int { return len(k.hooks) }

// Signed is a message whose signature was verified.
type Signed struct {
	ID        string
	Timestamp time.Time
	KeyIndex  int // 0-based index of the secret that verified it
}

// Verify checks the signature headers over body with every secret in turn. maxAge bounds how old
// the timestamp may be and future how far ahead of now; the comparison is constant-time (the
// library uses hmac.Equal).
func (k Keys) Verify(h http.Header, body []byte, now time.Time, maxAge, future time.Duration) (Signed, error) {
	id, ts, sig := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sig == "" {
		return Signed{}, ErrMissing
	}
	if !ValidID(id) {
		return Signed{}, ErrSignature
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return Signed{}, ErrSignature
	}
	// The signature is checked before the timestamp so that an attacker learns nothing about
	// our clock from an unsigned probe.
	for i, wh := range k.hooks {
		if wh.VerifyIgnoringTimestamp(body, h) != nil {
			continue
		}
		at := time.Unix(unix, 0)
		if now.Sub(at) > maxAge || at.Sub(now) > future {
			return Signed{}, ErrExpired
		}
		return Signed{ID: id, Timestamp: at, KeyIndex: i}, nil
	}
	return Signed{}, ErrSignature
}

// Sign returns the webhook-signature value for body under the first secret.
func (k Keys) Sign(id string, at time.Time, body []byte) (string, error) {
	if len(k.hooks) == 0 {
		return "", errors.New("no webhook secret to sign with")
	}
	return k.hooks[0].Sign(id, at, body)
}

// Headers returns the three Standard Webhooks headers for body, signed with the first secret.
func (k Keys) Headers(id string, at time.Time, body []byte) (http.Header, error) {
	sig, err := k.Sign(id, at, body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h, nil
}

// ValidID reports whether id is usable as a request id: 1 to 256 printable ASCII characters. Ids
// are echoed in responses, logs and the idempotency store.
func ValidID(id string) bool {
	return id != "" && len(id) <= maxIDLength && printableASCII(id)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
