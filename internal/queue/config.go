package queue

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
)

// PoisonSuffix is appended to the queue name to name the poison queue, as the host does.
const PoisonSuffix = "-poison"

// ErrConfig marks a storage configuration that cannot be used. Its messages never repeat a key
// or a signature.
var ErrConfig = errors.New("invalid storage configuration")

// Config says where a queue lives, with the storage account as the settings parsed it (from
// AzureWebJobsStorage): its queue service and one way to sign in — the shared key, a SAS, or
// the Credential of an identity-based connection (a managed identity).
type Config struct {
	ServiceURL  string                 // e.g. https://<account>.queue.core.windows.net, or Azurite's
	AccountName string                 // with AccountKey: the shared key
	AccountKey  string                 // a secret
	SAS         string                 // a shared access signature, without the leading '?'; a secret
	Credential  azcore.TokenCredential // identity-based: neither a key nor a SAS
	Queue       string                 // the queue's name; its poison queue is Queue+"-poison"
}

// parseServiceURL checks an identity-based service URL with the outbound URL rule: a bearer token
// goes there, so https (or loopback).
func parseServiceURL(s string) (string, error) {
	u, err := endpoint.Parse(s)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// maxQueueNameLength leaves room for PoisonSuffix within Azure's 63-character limit.
const maxQueueNameLength = 63 - len(PoisonSuffix)

// validateQueueName follows Azure's queue naming rules: 3-63 lowercase letters, digits and single
// hyphens, starting and ending with a letter or digit; the poison queue's name must fit too.
func validateQueueName(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: queue name %q: %s", ErrConfig, s, why)
	}
	if len(s) < 3 || len(s) > maxQueueNameLength {
		return bad(fmt.Sprintf("must be 3-%d characters", maxQueueNameLength))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(s)-1 || s[i-1] == '-' {
				return bad("hyphens must be single and inside the name")
			}
		default:
			return bad("only lowercase letters, digits and hyphens")
		}
	}
	return nil
}
