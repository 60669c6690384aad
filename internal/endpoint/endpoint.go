// Package endpoint vets the URLs the handler sends tokens, secrets or audit data to: https, or
// plain http only to a loopback host, where local fakes and emulators run. A token must never
// cross a network in clear text.
package endpoint

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// Errors of Parse; their text names the rule, never the value (a URL may carry credentials).
var (
	ErrNotAbsolute = errors.New("is not an absolute URL without user info, query or fragment")
	ErrInsecure    = errors.New("must use https (plain http is allowed on loopback only)")
)

// Parse parses an absolute scheme://host[/path] URL and insists on https, except for loopback.
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, ErrNotAbsolute
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname())) {
		return nil, ErrInsecure
	}
	return u, nil
}

// IsLoopback reports whether host is "localhost" or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
