// Package endpoint is the handler's one rule for the URLs it sends tokens, secrets or audit data
// to: https, or plain http only to a loopback host, where local fakes and emulators run. A token
// must never cross a network in clear text. Settings, the storage and telemetry connection
// strings and the documents Entra ID points to all pass through it.
package endpoint

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// Errors of Parse and Check; their text names the rule, never the value (a URL may carry
// credentials).
var (
	ErrNotAbsolute = errors.New("is not an absolute URL without user info, query or fragment")
	ErrInsecure    = errors.New("must use https (plain http is allowed on loopback only)")
)

// Parse parses an absolute scheme://host[/path] URL, without user info, query or fragment, and
// applies Check. The scheme comes back in lower case.
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, ErrNotAbsolute
	}
	if err := Check(u); err != nil {
		return nil, err
	}
	return u, nil
}

// Check applies the rule to a URL that may carry a query (a document's address given by a
// server): absolute, without user info, https or loopback http. It lower-cases u's scheme.
func Check(u *url.URL) error {
	if u.Host == "" || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
		return ErrNotAbsolute
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname())) {
		return ErrInsecure
	}
	return nil
}

// IsLoopback reports whether host is "localhost" or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RedactError returns the transport error (*url.Error, which prints its URL) in err's chain with
// that URL cut to scheme, host and path: a storage client signed by a shared access signature
// carries the signature in every request's query, and errors are logged. The transport error's
// cause is kept, so errors.Is still sees a timeout; an err without a transport error comes back
// unchanged. Call it where the transport error is returned, before anything wraps it.
func RedactError(err error) error {
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	u := ue.URL
	if p, perr := url.Parse(u); perr == nil {
		p.RawQuery, p.Fragment, p.User = "", "", nil
		u = p.String()
	} else {
		u = "(unparsable URL)"
	}
	return &url.Error{Op: ue.Op, URL: u, Err: ue.Err}
}
