package testenv

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy that stands between a client and a service (Azurite's table service,
// in the state tests) so that a test can fail the connection the way networks do: refuse every
// connection ("down"), accept and never answer ("hang"), refuse just the next few, or answer
// slowly. It listens on 127.0.0.1 and closes with the test.
type FaultProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    string // "up", "down" (closed at once), "hang" (accepted, never answered)
	refuse  int    // connections still to refuse while up
	latency time.Duration
	conns   map[net.Conn]bool
	failed  int // connections refused or held while not up
}

// newRequestGap is the pause on a connection after which the client's next chunk is taken for a
// new request, which the latency delays.
const newRequestGap = 50 * time.Millisecond

// StartFaultProxy proxies to target ("host:port") until t ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{ln: ln, target: target, mode: "up", conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Set("down")
	})
	return p
}

// TableEndpoint is the proxy as the table endpoint of Azurite's development account, for a target
// that is Azurite's table service.
func (p *FaultProxy) TableEndpoint() string {
	return "http://" + p.ln.Addr().String() + "/" + AzuriteAccount
}

// Addr is the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Set changes the mode ("up", "down", "hang") and cuts every open connection, so that the next
// request dials again and meets the new mode.
func (p *FaultProxy) Set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// RefuseNext cuts every open connection and refuses the next n connections, then serves again:
// a blip.
func (p *FaultProxy) RefuseNext(n int) {
	p.Set("up")
	p.mu.Lock()
	p.refuse = n
	p.mu.Unlock()
}

// SetLatency delays each request the client sends by d (on a kept-alive connection too).
func (p *FaultProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// Failed is the number of connections refused or held unanswered so far.
func (p *FaultProxy) Failed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// ResetFailed sets Failed back to zero.
func (p *FaultProxy) ResetFailed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = 0
}

func (p *FaultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode == "up" && p.refuse > 0 {
			p.refuse--
			mode = "down"
		}
		if mode != "up" {
			p.failed++
		}
		if mode == "down" {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		if mode == "hang" {
			continue // held open, never answered, closed by the next Set
		}
		go p.pipe(c)
	}
}

func (p *FaultProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	go func() {
		buf := make([]byte, 64<<10)
		var last time.Time
		for {
			n, err := c.Read(buf)
			if n > 0 {
				p.mu.Lock()
				d := p.latency
				p.mu.Unlock()
				// Once per request: the chunks of one request (headers, then body) follow each
				// other at once, a new request after a pause.
				if d > 0 && time.Since(last) > newRequestGap {
					time.Sleep(d)
				}
				last = time.Now()
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = up.Close()
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// HostPort is an endpoint URL's host:port ("http://127.0.0.1:10002/devstoreaccount1" gives
// "127.0.0.1:10002").
func HostPort(endpoint string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	host, _, _ := strings.Cut(s, "/")
	return host
}
