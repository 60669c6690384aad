package testenv

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// IngestionKey is the instrumentation key of Ingestion.ConnectionString.
const IngestionKey = "00000000-1111-2222-3333-444444444444"

// maxTrackBody bounds one decompressed track request; the real endpoint refuses far less.
const maxTrackBody = 64 << 20

// Ingestion is an Application Insights ingestion endpoint on loopback: it accepts what the real
// one does on POST /v2/track and /v2.1/track — a body plain or gzipped, envelopes newline-delimited
// or in a JSON array — keeps every request and the envelopes it accepted, and answers as scripted
// by Respond (by default 200, everything accepted). Whatever the real endpoint would refuse as
// malformed (another path, a body that is not JSON envelopes, an empty batch) fails the test: what
// we send must be right, not merely tolerated. It is safe for concurrent use.
type Ingestion struct {
	t   testing.TB
	srv *httptest.Server

	script  sync.Mutex // serialises Respond's function, so that scripts may count without locks
	calls   int
	respond func(call int, r IngestionRequest) IngestionReply

	mu       sync.Mutex
	requests []IngestionRequest
	accepted []Envelope
	changed  chan struct{} // closed, and replaced, whenever a request has been recorded
}

// IngestionRequest is one track request as it arrived, with the reply it got.
type IngestionRequest struct {
	At        time.Time
	Header    http.Header
	Path      string
	Body      []byte // decompressed
	Envelopes []Envelope
	Reply     IngestionReply
}

// IngestionReply is a scripted answer. The zero value is 200 with every item accepted; on 200 or
// 206 the items not named in Errors count as accepted, on any other status none do.
type IngestionReply struct {
	Status     int
	RetryAfter string      // the Retry-After header, when not ""
	Errors     []ItemError // the per-item errors of a 206
}

// ItemError is one refused item of a 206 partial success.
type ItemError struct {
	Index      int    `json:"index"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
}

// Envelope is one telemetry item. Raw is its JSON as sent, for checks stricter than the fields.
type Envelope struct {
	Raw          json.RawMessage
	EnvelopeName string // the envelope's own name: Microsoft.ApplicationInsights.<key>.Event
	Time         string
	IKey         string
	Tags         map[string]string
	BaseType     string // EventData, RemoteDependencyData, ...
	Name         string // baseData.name: the event's or the dependency's name
	Properties   map[string]string
	Measurements map[string]float64
}

// NewIngestion starts an ingestion endpoint for the test; it stops when the test ends.
func NewIngestion(t testing.TB) *Ingestion {
	t.Helper()
	in := &Ingestion{t: t, changed: make(chan struct{})}
	in.srv = httptest.NewServer(http.HandlerFunc(in.serveHTTP))
	t.Cleanup(in.srv.Close)
	return in
}

// URL is the endpoint's base URL, without a trailing slash.
func (in *Ingestion) URL() string { return in.srv.URL }

// ConnectionString points an Application Insights client at the endpoint, with IngestionKey.
func (in *Ingestion) ConnectionString() string {
	return "InstrumentationKey=" + IngestionKey + ";IngestionEndpoint=" + in.srv.URL + "/"
}

// Respond scripts the answers: f is called once per well-formed request, in turn, with the
// number of earlier calls. Set it before anything is sent.
func (in *Ingestion) Respond(f func(call int, r IngestionRequest) IngestionReply) {
	in.script.Lock()
	defer in.script.Unlock()
	in.respond = f
}

func (in *Ingestion) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || (r.URL.Path != "/v2/track" && r.URL.Path != "/v2.1/track") {
		in.t.Errorf("ingestion: got %s %s; want POST /v2.1/track", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	req := IngestionRequest{At: time.Now(), Header: r.Header.Clone(), Path: r.URL.Path}
	var err error
	if req.Body, err = trackBody(r); err == nil {
		req.Envelopes, err = ParseEnvelopes(req.Body)
	}
	if err == nil && len(req.Envelopes) == 0 {
		err = fmt.Errorf("no envelopes")
	}
	if err != nil {
		in.t.Errorf("ingestion: %v\n%.2000s", err, req.Body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	in.script.Lock()
	req.Reply = IngestionReply{Status: http.StatusOK}
	if in.respond != nil {
		req.Reply = in.respond(in.calls, req)
		if req.Reply.Status == 0 {
			req.Reply.Status = http.StatusOK
		}
	}
	in.calls++
	rejected := map[int]bool{}
	for _, e := range req.Reply.Errors {
		rejected[e.Index] = true
	}
	in.mu.Lock()
	in.requests = append(in.requests, req)
	if req.Reply.Status == http.StatusOK || req.Reply.Status == http.StatusPartialContent {
		for i, e := range req.Envelopes {
			if !rejected[i] {
				in.accepted = append(in.accepted, e)
			}
		}
	}
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
	in.script.Unlock()

	if req.Reply.RetryAfter != "" {
		w.Header().Set("Retry-After", req.Reply.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(req.Reply.Status)
	errs := req.Reply.Errors
	if errs == nil {
		errs = []ItemError{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"itemsReceived": len(req.Envelopes),
		"itemsAccepted": len(req.Envelopes) - len(rejected),
		"errors":        errs,
	})
}

// trackBody reads a track request's body, which the ingestion API also accepts gzipped.
func trackBody(r *http.Request) ([]byte, error) {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, maxTrackBody))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

// ParseEnvelopes reads a track body: envelopes one per line, or a JSON array of them.
func ParseEnvelopes(body []byte) ([]Envelope, error) {
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	if bytes.HasPrefix(body, []byte("[")) {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, fmt.Errorf("envelope array: %w", err)
		}
	} else {
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				raws = append(raws, json.RawMessage(line))
			}
		}
	}
	out := make([]Envelope, 0, len(raws))
	for i, raw := range raws {
		var e struct {
			Name string            `json:"name"`
			Time string            `json:"time"`
			IKey string            `json:"iKey"`
			Tags map[string]string `json:"tags"`
			Data struct {
				BaseType string `json:"baseType"`
				BaseData struct {
					Name         string             `json:"name"`
					Properties   map[string]string  `json:"properties"`
					Measurements map[string]float64 `json:"measurements"`
				} `json:"baseData"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("envelope %d: %w: %s", i, err, raw)
		}
		out = append(out, Envelope{
			Raw: raw, EnvelopeName: e.Name, Time: e.Time, IKey: e.IKey, Tags: e.Tags,
			BaseType: e.Data.BaseType, Name: e.Data.BaseData.Name,
			Properties: e.Data.BaseData.Properties, Measurements: e.Data.BaseData.Measurements,
		})
	}
	return out, nil
}

// Requests is every well-formed request so far, in the order they were answered.
func (in *Ingestion) Requests() []IngestionRequest {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.requests)
}

// Accepted is every envelope accepted so far: what Application Insights would store.
func (in *Ingestion) Accepted() []Envelope {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.accepted)
}

// Raw is the body of every request so far, accepted or not, joined by newlines.
func (in *Ingestion) Raw() []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	bodies := make([][]byte, 0, len(in.requests))
	for _, r := range in.requests {
		bodies = append(bodies, bytes.TrimSpace(r.Body))
	}
	return bytes.Join(bodies, []byte("\n"))
}

// Names lists the accepted items as "BaseType:Name", for example "EventData:SessionRevocation".
func (in *Ingestion) Names() []string { return names(in.Accepted()) }

// Has reports whether an accepted item's "BaseType:Name" starts with prefix.
func (in *Ingestion) Has(prefix string) bool {
	return slices.ContainsFunc(in.Names(), func(n string) bool { return strings.HasPrefix(n, prefix) })
}

// Events is the accepted custom events called name.
func (in *Ingestion) Events(name string) []Envelope {
	var out []Envelope
	for _, e := range in.Accepted() {
		if e.BaseType == "EventData" && e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// WaitAccepted waits until cond holds for the accepted envelopes and returns them; after within
// it fails the test, naming what. The bound only keeps a broken sender from hanging the test.
func (in *Ingestion) WaitAccepted(t testing.TB, within time.Duration, what string, cond func([]Envelope) bool) []Envelope {
	t.Helper()
	deadline := time.After(within)
	for {
		in.mu.Lock()
		acc, changed := slices.Clone(in.accepted), in.changed
		in.mu.Unlock()
		if cond(acc) {
			return acc
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("ingestion: no %s within %v; accepted %v", what, within, names(acc))
		}
	}
}

func names(envs []Envelope) []string {
	out := make([]string, 0, len(envs))
	for _, e := range envs {
		out = append(out, e.BaseType+":"+e.Name)
	}
	return out
}
