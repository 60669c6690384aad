package settings

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/request"
)

// Storage is the AzureWebJobsStorage account that the Functions host and the handler share: the
// request queue and the state table live there. The zero value means no storage is configured.
type Storage struct {
	// ConnectionString is AzureWebJobsStorage rewritten with canonical keys and both endpoints
	// explicit ("UseDevelopmentStorage=true" expanded to Azurite's), so that any Azure SDK parses
	// it. Empty for an identity-based connection. A secret: it carries the key or the SAS.
	ConnectionString string
	QueueServiceURL  string // e.g. https://<account>.queue.core.windows.net, without a trailing slash
	TableServiceURL  string // e.g. https://<account>.table.core.windows.net; empty when it cannot be known
	// With a connection string: the shared key (AccountName, AccountKey) or a SAS, never both.
	AccountName           string
	AccountKey            string // a secret
	SharedAccessSignature string // without the leading '?'; a secret
	// ClientID is AzureWebJobsStorage__clientId: the user-assigned identity of an identity-based
	// connection; empty for the system-assigned one.
	ClientID string
}

// Configured reports whether any storage is configured.
func (s Storage) Configured() bool { return s.QueueServiceURL != "" || s.TableServiceURL != "" }

// IdentityBased reports whether the account is reached with a managed identity's tokens rather
// than a key or SAS from a connection string.
func (s Storage) IdentityBased() bool { return s.Configured() && s.ConnectionString == "" }

// Azurite's well-known development account. Its key is public (in every Azurite and Azure SDK
// document); it is not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// DevelopmentStorage is what "UseDevelopmentStorage=true" stands for: Azurite's account with its
// queue service on 127.0.0.1:10001 and its table service on 127.0.0.1:10002.
const DevelopmentStorage = "DefaultEndpointsProtocol=http;AccountName=" + devAccount + ";AccountKey=" + devKey + ";" +
	"QueueEndpoint=http://127.0.0.1:10001/" + devAccount + ";TableEndpoint=http://127.0.0.1:10002/" + devAccount + ";"

// storage reads the AzureWebJobsStorage connection as the Functions host does: the connection
// string first (the host gives it precedence, and the handler must write where the trigger reads),
// else the identity-based AzureWebJobsStorage__* settings.
func (p *parser) storage() Storage {
	if conn := p.str(EnvStorage); conn != "" {
		st, err := ParseStorageConnectionString(conn)
		if err != nil {
			p.fail(EnvStorage, err.Error())
			return Storage{}
		}
		return st
	}
	var st Storage
	queueURI, tableURI, account := p.str(EnvStorageQueueServiceURI), p.str(EnvStorageTableServiceURI), p.str(EnvStorageAccountName)
	if queueURI == "" && tableURI == "" && account == "" {
		return Storage{}
	}
	if account != "" && !validAccountName(account) {
		p.fail(EnvStorageAccountName, "must be a storage account name: 3-24 lowercase letters and digits")
		account = ""
	}
	if queueURI != "" {
		st.QueueServiceURL = p.serviceURL(EnvStorageQueueServiceURI, queueURI)
	} else if account != "" {
		st.QueueServiceURL = "https://" + account + ".queue.core.windows.net"
	}
	if tableURI != "" {
		st.TableServiceURL = p.serviceURL(EnvStorageTableServiceURI, tableURI)
	} else if account != "" {
		st.TableServiceURL = "https://" + account + ".table.core.windows.net"
	} else {
		st.TableServiceURL = siblingService(st.QueueServiceURL, "queue", "table")
	}
	if st.QueueServiceURL == "" && !p.failed(EnvStorageQueueServiceURI) && !p.failed(EnvStorageAccountName) {
		p.fail(EnvStorageQueueServiceURI, "is needed (or AzureWebJobsStorage__accountName): the host's queue trigger and the handler's deferral use the queue service")
	}
	if id := p.str(EnvStorageClientID); id != "" {
		if !request.IsObjectID(id) {
			p.fail(EnvStorageClientID, "must be the client ID (a GUID) of a user-assigned identity")
		}
		st.ClientID = id
	}
	return st
}

// serviceURL applies the outbound URL rule to an identity-based service URI: a bearer token goes
// there, so https (or loopback).
func (p *parser) serviceURL(name, raw string) string {
	u, err := endpoint.Parse(raw)
	if err != nil {
		p.fail(name, err.Error())
		return ""
	}
	return strings.TrimSuffix(u.String(), "/")
}

// siblingService derives an account's other service from one service URL of the standard form
// scheme://<account>.<from>.<suffix>, as sovereign clouds keep it; "" otherwise.
func siblingService(serviceURL, from, to string) string {
	u, err := url.Parse(serviceURL)
	if serviceURL == "" || err != nil || u.Port() != "" || u.Path != "" {
		return ""
	}
	account, rest, ok := strings.Cut(u.Hostname(), "."+from+".")
	if !ok || !validAccountName(account) || rest == "" {
		return ""
	}
	return u.Scheme + "://" + account + "." + to + "." + rest
}

// ParseStorageConnectionString parses an Azure Storage connection string as the Functions host
// does: keys in any case, "UseDevelopmentStorage=true" for Azurite, a shared key or a SAS, and the
// endpoints given explicitly or built from the account name and EndpointSuffix. Every endpoint
// follows the outbound URL rule (https, or http to loopback). Errors never contain a value.
func ParseStorageConnectionString(s string) (Storage, error) {
	if isDevelopmentStorage(s) {
		s = DevelopmentStorage
	}
	bad := func(format string, a ...any) (Storage, error) {
		return Storage{}, fmt.Errorf(format, a...)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return bad("is not a list of key=value pairs")
		}
		if _, dup := fields[k]; dup {
			return bad("gives %s twice", k)
		}
		fields[k] = strings.TrimSpace(v)
	}
	if _, ok := fields["usedevelopmentstorage"]; ok {
		return bad("UseDevelopmentStorage must stand alone, as UseDevelopmentStorage=true")
	}
	st := Storage{
		AccountName:           fields["accountname"],
		AccountKey:            fields["accountkey"],
		SharedAccessSignature: strings.TrimPrefix(fields["sharedaccesssignature"], "?"),
	}
	switch {
	case st.AccountKey != "" && st.SharedAccessSignature != "":
		return bad("gives AccountKey and SharedAccessSignature: give one")
	case st.AccountKey != "":
		if st.AccountName == "" {
			return bad("AccountKey needs AccountName")
		}
		if key, err := base64.StdEncoding.DecodeString(st.AccountKey); err != nil || len(key) == 0 {
			return bad("AccountKey is not valid base64")
		}
	case st.SharedAccessSignature != "":
		if _, err := url.ParseQuery(st.SharedAccessSignature); err != nil {
			return bad("SharedAccessSignature is not a query string")
		}
	default:
		// Anonymous access cannot write to a queue or a table: refuse now rather than on first use.
		return bad("needs AccountKey or SharedAccessSignature")
	}
	if st.AccountName != "" && !validAccountName(st.AccountName) {
		return bad("AccountName is not a storage account name (3-24 lowercase letters and digits)")
	}

	scheme := strings.ToLower(fields["defaultendpointsprotocol"])
	if scheme == "" {
		scheme = "https"
	}
	if scheme != "https" && scheme != "http" {
		return bad("DefaultEndpointsProtocol must be https or http")
	}
	suffix := fields["endpointsuffix"]
	if suffix == "" {
		suffix = "core.windows.net"
	}
	if !request.IsDomain(suffix) {
		return bad("EndpointSuffix is not a DNS name")
	}
	// service returns a service's endpoint: given, or built from the account. A built one that
	// breaks the outbound URL rule is unknown rather than wrong (Azurite's strings name the
	// services they have, over http).
	service := func(key, name string) (string, error) {
		raw, given := fields[key], true
		if raw == "" {
			if st.AccountName == "" {
				return "", nil
			}
			raw, given = scheme+"://"+st.AccountName+"."+name+"."+suffix, false
		}
		u, err := endpoint.Parse(raw)
		switch {
		case err != nil && given:
			return "", fmt.Errorf("the %s endpoint %w", name, err)
		case err != nil:
			return "", nil
		}
		return strings.TrimSuffix(u.String(), "/"), nil
	}
	var err error
	if st.QueueServiceURL, err = service("queueendpoint", "queue"); err != nil {
		return Storage{}, err
	}
	if st.TableServiceURL, err = service("tableendpoint", "table"); err != nil {
		return Storage{}, err
	}
	if st.QueueServiceURL == "" {
		if scheme == "http" && st.AccountName != "" {
			return bad("the queue endpoint %s", endpoint.ErrInsecure)
		}
		return bad("needs AccountName or QueueEndpoint")
	}

	// Canonical keys and explicit endpoints: the Go SDKs' own parsers are case-sensitive, and the
	// endpoints no longer depend on how each SDK would build them.
	var b strings.Builder
	fmt.Fprintf(&b, "DefaultEndpointsProtocol=%s;EndpointSuffix=%s;", scheme, suffix)
	if st.AccountName != "" {
		fmt.Fprintf(&b, "AccountName=%s;", st.AccountName)
	}
	if st.AccountKey != "" {
		fmt.Fprintf(&b, "AccountKey=%s;", st.AccountKey)
	} else {
		fmt.Fprintf(&b, "SharedAccessSignature=%s;", st.SharedAccessSignature)
	}
	fmt.Fprintf(&b, "QueueEndpoint=%s;", st.QueueServiceURL)
	if st.TableServiceURL != "" {
		fmt.Fprintf(&b, "TableEndpoint=%s;", st.TableServiceURL)
	}
	st.ConnectionString = b.String()
	return st, nil
}

// isDevelopmentStorage reports whether s is the "UseDevelopmentStorage=true" shorthand, which the
// Go SDKs do not understand.
func isDevelopmentStorage(s string) bool {
	k, v, ok := strings.Cut(strings.TrimSuffix(strings.TrimSpace(s), ";"), "=")
	return ok && strings.EqualFold(strings.TrimSpace(k), "UseDevelopmentStorage") &&
		strings.EqualFold(strings.TrimSpace(v), "true")
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
