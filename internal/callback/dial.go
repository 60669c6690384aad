package callback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
)

// AttemptTimeout bounds one delivery attempt, connection and response headers included: a
// receiver that holds the connection open must not hold a queue invocation with it.
const AttemptTimeout = 10 * time.Second

// ErrForbiddenAddress is returned when a callback host resolves only to addresses the handler must
// not connect to (private, link-local, loopback and other internal ranges).
var ErrForbiddenAddress = errors.New("callback host resolves to a forbidden address")

// internalPrefixes are ranges that IsPrivate and friends do not cover but that are never a
// receiver on the internet: carrier-grade NAT, "this network", IETF protocol assignments,
// benchmarking, reserved, and the IPv6 translation prefixes that embed an IPv4 address.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("100::/64"),
}

// Permitted reports whether a callback may connect to a. A host that the allow-list names as a
// loopback host (loopback true) may reach loopback addresses only; any other host only public ones.
func Permitted(a netip.Addr, loopback bool) bool {
	a = a.Unmap()
	if !a.IsValid() {
		return false
	}
	if loopback {
		return a.IsLoopback()
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// guardedDialer connects only to permitted addresses. The check runs twice: on the resolved
// addresses, to fail fast with a clear reason, and in the dialer's Control function on the very
// address being connected, so that no later resolution (DNS rebinding) can slip an internal
// address in between check and connect.
type guardedDialer struct {
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// connected, when set, is told every address the guard let through (tests).
	connected func(address string)
}

func (g *guardedDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	loopback := callbackurl.IsLoopbackName(host)
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = g.lookup(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve callback host: %w", err)
		}
	}
	d := net.Dialer{
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !Permitted(ap.Addr(), loopback) {
				return ErrForbiddenAddress
			}
			if g.connected != nil {
				g.connected(address)
			}
			return nil
		},
	}
	lastErr := ErrForbiddenAddress
	for _, a := range addrs {
		if !Permitted(a, loopback) {
			continue
		}
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// NewClient returns the HTTP client of delivery attempts: no redirects followed (a 3xx is a failed
// attempt), no proxy from the environment (it would connect on the handler's behalf, past the
// address check), connections only to permitted addresses, AttemptTimeout per attempt.
func NewClient() *http.Client {
	return newClient(&guardedDialer{lookup: net.DefaultResolver.LookupNetIP})
}

func newClient(g *guardedDialer) *http.Client {
	return &http.Client{
		Timeout: AttemptTimeout,
		Transport: &http.Transport{
			Proxy:       nil,
			DialContext: g.dial,
			// A fresh connection per attempt: attempts are minutes apart, and a kept connection
			// would skip the address check for its next use.
			DisableKeepAlives:      true,
			TLSHandshakeTimeout:    AttemptTimeout,
			ResponseHeaderTimeout:  AttemptTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
