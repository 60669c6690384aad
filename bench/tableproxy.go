package main

import (
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tableProxy sits between the handlers and Azurite's table service and counts the requests by
// operation: Azurite keeps no such count. The handlers' TableEndpoint names the proxy; paths are
// forwarded unchanged, so Shared Key signatures (which cover the path, not the host) still hold.
type tableProxy struct {
	proxy *httputil.ReverseProxy

	mu  sync.Mutex
	ops tableOps
}

// tableOps counts table requests by operation ("insert", "update", …) and the refusals among them
// by operation and status ("insert 409": a claim someone else holds; "update 412": an ETag that
// moved).
type tableOps struct {
	Total   int64            `json:"total"`
	ByOp    map[string]int64 `json:"byOperation"`
	Refused map[string]int64 `json:"refused,omitempty"`
}

func (o tableOps) clone() tableOps {
	c := tableOps{Total: o.Total, ByOp: maps.Clone(o.ByOp), Refused: maps.Clone(o.Refused)}
	if c.ByOp == nil {
		c.ByOp = map[string]int64{}
	}
	if c.Refused == nil {
		c.Refused = map[string]int64{}
	}
	return c
}

// minus is what happened between an earlier count and this one.
func (o tableOps) minus(earlier tableOps) tableOps {
	d := tableOps{Total: o.Total - earlier.Total, ByOp: map[string]int64{}, Refused: map[string]int64{}}
	for k, v := range o.ByOp {
		if n := v - earlier.ByOp[k]; n != 0 {
			d.ByOp[k] = n
		}
	}
	for k, v := range o.Refused {
		if n := v - earlier.Refused[k]; n != 0 {
			d.Refused[k] = n
		}
	}
	return d
}

// plus adds two counts.
func (o tableOps) plus(other tableOps) tableOps {
	sum := o.clone()
	sum.Total += other.Total
	for k, v := range other.ByOp {
		sum.ByOp[k] += v
	}
	for k, v := range other.Refused {
		sum.Refused[k] += v
	}
	return sum
}

// String lists the operations in name order.
func (o tableOps) String() string {
	var b strings.Builder
	for _, k := range sortedKeys(o.ByOp) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + " " + itoa(o.ByOp[k]))
	}
	if len(o.Refused) > 0 {
		b.WriteString("; refused:")
		for _, k := range sortedKeys(o.Refused) {
			b.WriteString(" " + k + "×" + itoa(o.Refused[k]))
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func newTableProxy(target string) (*tableProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	origin := &url.URL{Scheme: u.Scheme, Host: u.Host}
	p := &tableProxy{ops: tableOps{ByOp: map[string]int64{}, Refused: map[string]int64{}}}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	// Azurite (Node.js) closes idle keep-alive connections after 5 s; dropping them sooner here
	// keeps the proxy from writing to a connection Azurite is closing, which would reach the
	// handler as a 502 no real endpoint sent.
	transport.IdleConnTimeout = 2 * time.Second
	p.proxy = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(origin); r.Out.Host = r.In.Host },
		Transport: transport,
	}
	return p, nil
}

func (p *tableProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := tableOperation(r)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	p.proxy.ServeHTTP(rec, r)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops.Total++
	p.ops.ByOp[op]++
	if rec.status >= 400 {
		p.ops.Refused[op+" "+itoa(int64(rec.status))]++
	}
}

// counts is a copy of the counts so far.
func (p *tableProxy) counts() tableOps {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ops.clone()
}

// tableOperation names what a Table service request does, from its method, path and headers.
func tableOperation(r *http.Request) string {
	path := r.URL.Path
	if i := strings.Index(path[1:], "/"); i >= 0 {
		path = path[i+1:] // drop /devstoreaccount1
	}
	method := r.Method
	if m := r.Header.Get("X-HTTP-Method"); m != "" && method == http.MethodPost {
		method = m
	}
	conditional := r.Header.Get("If-Match") != ""
	switch {
	case strings.HasPrefix(path, "/$batch"):
		return "batch"
	case strings.HasPrefix(path, "/Tables"):
		return "table " + strings.ToLower(method)
	case !strings.Contains(path, "(") || strings.HasSuffix(path, "()"):
		if method == http.MethodPost {
			return "insert"
		}
		return "query"
	}
	// One entity: /<table>(PartitionKey='…',RowKey='…')
	switch method {
	case http.MethodGet:
		return "read"
	case http.MethodDelete:
		return "delete"
	case http.MethodPut:
		if conditional {
			return "replace"
		}
		return "upsert"
	case "MERGE", http.MethodPatch:
		if conditional {
			return "merge"
		}
		return "merge-upsert"
	}
	return strings.ToLower(method)
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func sortedKeys(m map[string]int64) []string { return slices.Sorted(maps.Keys(m)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
