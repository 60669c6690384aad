// Package callbackurl is the policy on a request's callbackUrl: which hosts the operator allows
// (CALLBACK_ALLOWED_HOSTS), which URLs are acceptable, and what the logs and telemetry may name of
// one (its host). Settings, request validation and delivery (internal/callback) share it.
package callbackurl

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// MaxURLLength bounds callbackUrl: it is stored with the request's status and carried in queue
// messages.
const MaxURLLength = 2048

// ErrNotEnabled is returned by Check when no host is allowed (CALLBACK_ALLOWED_HOSTS unset).
var ErrNotEnabled = errors.New("callbacks are not enabled on this deployment (CALLBACK_ALLOWED_HOSTS is unset)")

// Hosts is the allow-list of callback hosts (CALLBACK_ALLOWED_HOSTS): exact names, or "*.suffix"
// for any name below suffix (not suffix itself). Names are compared lower-case, without a
// trailing dot.
type Hosts struct {
	exact    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
}

// ParseHosts parses the allow-list's entries. An entry that is not a host name, an IP literal or
// "*." followed by a name is an error naming it.
func ParseHosts(entries []string) (Hosts, error) {
	h := Hosts{exact: map[string]bool{}}
	var errs []error
	for _, e := range entries {
		n := normalizeHost(e)
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			if !validName(rest) || !strings.Contains(rest, ".") {
				errs = append(errs, fmt.Errorf("%q: a wildcard must be *. followed by a domain of at least two labels", e))
				continue
			}
			h.suffixes = append(h.suffixes, "."+rest)
			continue
		}
		if _, err := netip.ParseAddr(n); err != nil && !validName(n) {
			errs = append(errs, fmt.Errorf("%q is not a host name or IP address (no scheme, port or path)", e))
			continue
		}
		h.exact[n] = true
	}
	return h, errors.Join(errs...)
}

// Enabled reports whether any host is allowed.
func (h Hosts) Enabled() bool { return len(h.exact) > 0 || len(h.suffixes) > 0 }

// Allowed reports whether host (without port) is on the list.
func (h Hosts) Allowed(host string) bool {
	n := normalizeHost(host)
	if h.exact[n] {
		return true
	}
	// A loopback name or address never matches a wildcard: only an explicit entry lets a
	// callback reach this machine.
	if IsLoopbackName(n) {
		return false
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(n, s) && len(n) > len(s) {
			return true
		}
	}
	return false
}

// Check validates a callbackUrl: an absolute https URL on an allowed host (or http to a loopback
// host the list names explicitly), without user info or fragment, at most MaxURLLength
// characters. Its error messages are safe to return to the caller: they never echo the URL.
func (h Hosts) Check(raw string) error {
	if !h.Enabled() {
		return ErrNotEnabled
	}
	_, err := h.Parse(raw)
	return err
}

// Parse is Check returning the parsed URL.
func (h Hosts) Parse(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("must be at most %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return nil, errors.New("must be an absolute https URL")
	}
	if u.User != nil {
		return nil, errors.New("must not carry user info (user:password@)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, errors.New("must not carry a fragment")
	}
	host := u.Hostname()
	if !h.Allowed(host) {
		return nil, errors.New("host is not in CALLBACK_ALLOWED_HOSTS")
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Clear text only to this machine, and only when the operator named it.
		if !IsLoopbackName(host) {
			return nil, errors.New("must use https (http only to an allowed loopback host)")
		}
	default:
		return nil, errors.New("must use https")
	}
	if p := u.Port(); p != "" && (len(p) > 5 || p == "0") {
		return nil, errors.New("has an invalid port")
	}
	return u, nil
}

// Host returns the host name of a callback URL (what telemetry and logs may name), or "" when it
// does not parse.
func Host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return normalizeHost(u.Hostname())
}

// IsLoopbackName reports whether host is a loopback host by name or literal: localhost,
// 127.0.0.1 or ::1 (any 127/8 address counts too).
func IsLoopbackName(host string) bool {
	n := normalizeHost(host)
	if n == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(n)
	return err == nil && a.Unmap().IsLoopback()
}

func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return h
}

// validName reports whether n is a DNS host name: labels of letters, digits and inner hyphens.
func validName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
