package queue

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Settings read by FromEnv. They are the Functions host's own names for the AzureWebJobsStorage
// connection, so the handler writes to exactly the account the host's queue trigger reads.
const (
	EnvConnection      = "AzureWebJobsStorage"
	EnvQueueServiceURI = "AzureWebJobsStorage__queueServiceUri"
	EnvAccountName     = "AzureWebJobsStorage__accountName"
	EnvClientID        = "AzureWebJobsStorage__clientId"
)

// PoisonSuffix is appended to the queue name to name the poison queue, as the host does.
const PoisonSuffix = "-poison"

// DevelopmentStorage is the connection string that "UseDevelopmentStorage=true" stands for: Azurite's
// queue service with its well-known account. The account key is public (it is in every Azurite
// and Azure SDK document); it is not a secret.
const DevelopmentStorage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
	"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
	"QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"

// ErrConfig marks a storage setting that cannot be used. Its messages name the setting but never
// repeat a value, since connection strings carry account keys.
var ErrConfig = errors.New("invalid storage configuration")

// Config says where the request queue lives. Exactly one of ConnectionString (AzureWebJobsStorage)
// or ServiceURL (AzureWebJobsStorage__queueServiceUri, or derived from
// AzureWebJobsStorage__accountName) is set.
type Config struct {
	ConnectionString string                 // full connection string ("UseDevelopmentStorage=true" is expanded by FromEnv)
	ServiceURL       string                 // identity-based connection: https://<account>.queue.core.windows.net
	Credential       azcore.TokenCredential // used with ServiceURL (managed identity); set by the caller
	ClientID         string                 // AzureWebJobsStorage__clientId: the user-assigned identity the host uses for storage, if any
	Queue            string                 // REVOKE_QUEUE; the poison queue is Queue+"-poison"
}

// FromEnv reads the storage connection the way the Functions host does: AzureWebJobsStorage as a
// connection string first, else the identity-based AzureWebJobsStorage__queueServiceUri, else
// AzureWebJobsStorage__accountName. configured is false when none is set (the handler then runs
// without deferral). Credential is left for the caller to set for an identity-based connection.
func FromEnv(getenv func(string) string, queueName string) (cfg Config, configured bool, err error) {
	conn := strings.TrimSpace(getenv(EnvConnection))
	serviceURI := strings.TrimSpace(getenv(EnvQueueServiceURI))
	account := strings.TrimSpace(getenv(EnvAccountName))
	if conn == "" && serviceURI == "" && account == "" {
		return Config{}, false, nil
	}
	if err := validateQueueName(queueName); err != nil {
		return Config{}, true, err
	}
	cfg.Queue = queueName
	switch {
	case conn != "":
		// The host gives a connection string precedence over the identity-based settings; doing the
		// same keeps the handler and the trigger on one account.
		if isDevelopmentStorage(conn) {
			conn = DevelopmentStorage
		}
		if _, err := parseConnectionString(conn); err != nil {
			return Config{}, true, err
		}
		cfg.ConnectionString = conn
	case serviceURI != "":
		u, err := parseServiceURL(serviceURI)
		if err != nil {
			return Config{}, true, fmt.Errorf("%w: %s: %w", ErrConfig, EnvQueueServiceURI, err)
		}
		cfg.ServiceURL = u
	default:
		if !validAccountName(account) {
			return Config{}, true, fmt.Errorf("%w: %s: want 3-24 lowercase letters and digits", ErrConfig, EnvAccountName)
		}
		cfg.ServiceURL = "https://" + account + ".queue.core.windows.net"
	}
	if cfg.ServiceURL != "" {
		cfg.ClientID = strings.TrimSpace(getenv(EnvClientID))
	}
	return cfg, true, nil
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
	serviceURL  string // without trailing slash and without query
	accountName string
	accountKey  string
	sas         string // SharedAccessSignature, without the leading '?'
}

// parseConnectionString parses an Azure Storage connection string. Keys are matched
// case-insensitively, as the .NET host does (the Go SDK's own parser is case-sensitive and would
// reject strings the host accepts). Errors never contain values.
func parseConnectionString(s string) (connection, error) {
	fields := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return connection{}, fmt.Errorf("%w: %s: not a list of key=value pairs", ErrConfig, EnvConnection)
		}
		if _, dup := fields[k]; dup {
			return connection{}, fmt.Errorf("%w: %s: %s given twice", ErrConfig, EnvConnection, k)
		}
		fields[k] = strings.TrimSpace(v)
	}
	if _, ok := fields["usedevelopmentstorage"]; ok {
		return connection{}, fmt.Errorf("%w: %s: UseDevelopmentStorage must stand alone as UseDevelopmentStorage=true", ErrConfig, EnvConnection)
	}
	c := connection{accountName: fields["accountname"], accountKey: fields["accountkey"],
		sas: strings.TrimPrefix(fields["sharedaccesssignature"], "?")}

	switch {
	case c.accountKey != "" && c.sas != "":
		return connection{}, fmt.Errorf("%w: %s: give AccountKey or SharedAccessSignature, not both", ErrConfig, EnvConnection)
	case c.accountKey != "":
		if c.accountName == "" {
			return connection{}, fmt.Errorf("%w: %s: AccountKey needs AccountName", ErrConfig, EnvConnection)
		}
		if key, err := base64.StdEncoding.DecodeString(c.accountKey); err != nil || len(key) == 0 {
			return connection{}, fmt.Errorf("%w: %s: AccountKey is not valid base64", ErrConfig, EnvConnection)
		}
	case c.sas != "":
		if _, err := url.ParseQuery(c.sas); err != nil {
			return connection{}, fmt.Errorf("%w: %s: SharedAccessSignature is not a query string", ErrConfig, EnvConnection)
		}
	default:
		// Anonymous access cannot write to a queue: refuse now rather than on the first deferral.
		return connection{}, fmt.Errorf("%w: %s: needs AccountKey or SharedAccessSignature", ErrConfig, EnvConnection)
	}

	if ep := fields["queueendpoint"]; ep != "" {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return connection{}, fmt.Errorf("%w: %s: QueueEndpoint is not an http(s) URL without query", ErrConfig, EnvConnection)
		}
		c.serviceURL = strings.TrimSuffix(u.String(), "/")
		return c, nil
	}
	if !validAccountName(c.accountName) {
		return connection{}, fmt.Errorf("%w: %s: needs a valid AccountName or a QueueEndpoint", ErrConfig, EnvConnection)
	}
	scheme := strings.ToLower(fields["defaultendpointsprotocol"])
	if scheme == "" {
		scheme = "https"
	}
	if scheme != "https" && scheme != "http" {
		return connection{}, fmt.Errorf("%w: %s: DefaultEndpointsProtocol must be https or http", ErrConfig, EnvConnection)
	}
	suffix := fields["endpointsuffix"]
	if suffix == "" {
		suffix = "core.windows.net"
	}
	if !validDNSName(suffix) {
		return connection{}, fmt.Errorf("%w: %s: EndpointSuffix is not a DNS name", ErrConfig, EnvConnection)
	}
	c.serviceURL = scheme + "://" + c.accountName + ".queue." + suffix
	return c, nil
}

// parseServiceURL checks an identity-based service URL. Only https is accepted: a bearer token
// must never travel in clear text.
func parseServiceURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.Scheme != "https" || u.Host == "" {
		return "", errors.New("must be an https URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must not carry credentials, a query or a fragment")
	}
	if host := u.Hostname(); net.ParseIP(host) == nil && !validDNSName(host) {
		return "", errors.New("host is not a DNS name")
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// validAccountName follows Azure's storage account naming rule.
func validAccountName(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
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

// validDNSName is a loose DNS name check: labels of letters, digits and inner hyphens.
func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}
