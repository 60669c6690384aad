package webhook

import (
	"errors"
	"strings"
	"time"
)

// SignAll returns the webhook-signature value for body under every secret, space-separated: the
// Standard Webhooks way to rotate a secret the receiver holds, since it accepts any one of them.
func (k Keys) SignAll(id string, at time.Time, body []byte) (string, error) {
	if len(k.hooks) == 0 {
		return "", errors.New("no webhook secret to sign with")
	}
	sigs := make([]string, 0, len(k.hooks))
	for _, wh := range k.hooks {
		s, err := wh.Sign(id, at, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, s)
	}
	return strings.Join(sigs, " "), nil
}
