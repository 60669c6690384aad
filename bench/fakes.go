package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The fakes below speak the real services' wire formats, so that the handler's real SDKs
// (azqueue) and its Application Insights exporter run unchanged. The managed identity endpoint and
// Graph are internal/graph/graphtest's, the ones the end-to-end tests use; these two are the load
// tool's own because they only count: Application Insights ingestion, and just enough of Queue
// Storage for the load phases (the bulk incident runs against Azurite).

// server is a fake listening on 127.0.0.1. It counts the connections clients open to it: a
// client whose pool is smaller than its concurrency keeps opening new ones.
type server struct {
	srv   *http.Server
	ln    net.Listener
	conns atomic.Int64
}

func startServer(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &server{ln: ln}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) URL() string { return "http://" + s.ln.Addr().String() }

func (s *server) Close() { _ = s.srv.Close() }

// ingestionFake is the Application Insights ingestion endpoint: NDJSON envelopes in, the
// track response out. It counts items by type.
type ingestionFake struct {
	batches  atomic.Int64
	items    atomic.Int64
	outcomes atomic.Int64 // SessionRevocation events
	deps     atomic.Int64 // RemoteDependencyData items
}

func (f *ingestionFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" { // the API accepts both
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, `{"itemsReceived":0,"itemsAccepted":0,"errors":[]}`, http.StatusBadRequest)
			return
		}
		body = zr
	}
	// Sized from Content-Length, so that the fake's own cost stays small next to the handler's.
	buf := bytes.NewBuffer(make([]byte, 0, max(r.ContentLength, 0)+bytes.MinRead))
	_, err := buf.ReadFrom(body)
	if err != nil || r.URL.Path != "/v2.1/track" {
		http.Error(w, `{"itemsReceived":0,"itemsAccepted":0,"errors":[]}`, http.StatusBadRequest)
		return
	}
	n := 0
	for raw := buf.Bytes(); len(raw) > 0; {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		switch {
		case bytes.Contains(line, []byte(`"name":"SessionRevocation"`)):
			f.outcomes.Add(1)
		case bytes.Contains(line, []byte(`"baseType":"RemoteDependencyData"`)):
			f.deps.Add(1)
		}
	}
	f.batches.Add(1)
	f.items.Add(int64(n))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprintf(w, `{"itemsReceived":%d,"itemsAccepted":%d,"errors":[]}`, n, n)
}

// storageFake is just enough of Azure Queue Storage for the handler's start-up (create queue) and
// deferrals and poison copies (put message). It counts messages: the load test expects no
// deferral.
type storageFake struct {
	enqueued atomic.Int64 // to the request queue
	poisoned atomic.Int64 // to <queue>-poison
}

func (f *storageFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-request-id", uuid.NewString())
	w.Header().Set("x-ms-version", "2018-03-28")
	switch {
	case r.Method == http.MethodPut:
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "-poison/messages") {
			f.poisoned.Add(1)
		} else {
			f.enqueued.Add(1)
		}
		now := time.Now().UTC()
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage><MessageId>%s</MessageId><InsertionTime>%s</InsertionTime><ExpirationTime>%s</ExpirationTime><PopReceipt>AgAAAAMAAAAAAAAA</PopReceipt><TimeNextVisible>%s</TimeNextVisible></QueueMessage></QueueMessagesList>`,
			uuid.NewString(), now.Format(http.TimeFormat), now.Add(7*24*time.Hour).Format(http.TimeFormat), now.Format(http.TimeFormat))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}
