package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// runBaseline serves the yardstick the handler is measured against: a bare net/http server that,
// for each POST, reads the body and makes the same one Graph call (POST
// /users/{upn}/revokeSignInSessions with a bearer token) through a plain http.Client, then answers
// 200. No signature, validation, guard rails, idempotency, SDK, concurrency limit or telemetry. Its
// transport keeps as many idle connections as there are callers, so it never redials: the strongest
// fair baseline. This program runs it as a child process (`bench baseline`), so that it is started,
// measured and stopped exactly as the handler is.
func runBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:"+os.Getenv(testenv.PortVariable), "address to listen on (default: FUNCTIONS_CUSTOMHANDLER_PORT on loopback, as the handler)")
	graphURL := fs.String("graph", "", "Graph base URL, e.g. http://127.0.0.1:1234/v1.0")
	token := fs.String("token", "", "bearer token to send to Graph")
	conns := fs.Int("conns", 64, "idle connections kept to Graph")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *graphURL == "" {
		return errors.New("baseline: -graph is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = *conns, *conns
	client := &http.Client{Transport: transport}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		var req struct {
			UPN string `json:"upn"`
		}
		_ = json.Unmarshal(body, &req) // no checks: whatever is there goes to Graph
		gctx, cancel := context.WithTimeout(r.Context(), 25*time.Second)
		defer cancel()
		greq, err := http.NewRequestWithContext(gctx, http.MethodPost, *graphURL+"/users/"+url.PathEscape(req.UPN)+"/revokeSignInSessions", nil)
		if err != nil {
			http.Error(w, "build request", http.StatusInternalServerError)
			return
		}
		greq.Header.Set("Authorization", "Bearer "+*token)
		resp, err := client.Do(greq)
		if err != nil {
			http.Error(w, "graph unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = io.WriteString(w, `{"status":"revoked"}`)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
