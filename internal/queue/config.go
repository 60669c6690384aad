package queue

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// EnvConnection names the storage connection setting in errors.
const EnvConnection = settings.EnvStorage

// PoisonSuffix is appended to the queue name to name the poison queue, as the host does.
const PoisonSuffix = "-poison"

// DevelopmentStorage is what "UseDevelopmentStorage=true" stands for: Azurite's well-known account.
const DevelopmentStorage = settings.DevelopmentStorage

// ErrConfig marks a storage setting that cannot be used. Its messages name the setting but never
// repeat a value, since connection strings carry account keys.
var ErrConfig = errors.New("invalid storage configuration")

// Config says where the request queue lives. Exactly one of ConnectionString or ServiceURL (an
// identity-based connection) is set.
type Config struct {
	ConnectionString string                 // a storage connection string ("UseDevelopmentStorage=true" included)
	ServiceURL       string                 // identity-based connection: https://<account>.queue.core.windows.net
	Credential       azcore.TokenCredential // used with ServiceURL (managed identity); set by the caller
	ClientID         string                 // AzureWebJobsStorage__clientId: the user-assigned identity the host uses for storage, if any
	Queue            string                 // REVOKE_QUEUE; the poison queue is Queue+"-poison"
}

// ConfigFor is the queue configuration of the storage account that the settings name (see
// settings.Storage); the caller adds the Credential of an identity-based connection.
func ConfigFor(st settings.Storage, queueName string) Config {
	cfg := Config{Queue: queueName}
	if st.ConnectionString != "" {
		cfg.ConnectionString = st.ConnectionString
	} else {
		cfg.ServiceURL, cfg.ClientID = st.QueueServiceURL, st.ClientID
	}
	return cfg
}

// isDevelopmentStorage reports whether s is the "UseDevelopmentStorage=true" shorthand, which the
// Go SDK does not understand.
func isDevelopmentStorage(s string) bool {
	k, v, ok := strings.Cut(strings.TrimSuffix(strings.TrimSpace(s), ";"), "=")
	return ok && strings.EqualFold(strings.TrimSpace(k), "UseDevelopmentStorage") &&
		strings.EqualFold(strings.TrimSpace(v), "true")
}

// connection is a parsed storage connection string.
type connection struct {
	serviceURL  string // the queue service, without trailing slash and without query
	accountName string
	accountKey  string
	sas         string // SharedAccessSignature, without the leading '?'
}

// parseConnectionString parses a storage connection string with the settings' own parser, so that
// what the settings accept the client accepts too. Errors never contain values.
func parseConnectionString(s string) (connection, error) {
	st, err := settings.ParseStorageConnectionString(s)
	if err != nil {
		return connection{}, fmt.Errorf("%w: %s: %v", ErrConfig, EnvConnection, err)
	}
	return connection{serviceURL: st.QueueServiceURL, accountName: st.AccountName, accountKey: st.AccountKey, sas: st.SharedAccessSignature}, nil
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
		return fmt.Errorf("%w: REVOKE_QUEUE %q: %s", ErrConfig, s, why)
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
