package server

import "net/http"

// addRoutes is the only place routes are registered. Method-less patterns for the same paths turn
// a wrong method into the contract's JSON 405, and "/" into its JSON 404.
// Each handler gets what it uses, and nothing else.
func addRoutes(mux *http.ServeMux, d Deps) {
	callers := gate{keys: d.Keys, tolerance: d.Tolerance, tokens: d.Tokens, audit: d.Audit, now: d.Now}
	open := opener{
		keys: d.Keys, queueKeys: d.QueueKeys, allowUnsigned: d.AllowUnsigned,
		maxAge: d.QueueMaxAge, tolerance: d.Tolerance, now: d.Now,
	}
	requests := rejecter{audit: d.Audit, poison: d.Poison, logger: d.Logger, what: "message"}
	checks := rejecter{audit: d.Audit, poison: d.WatchPoison, logger: d.Logger, what: "check"}

	mux.Handle("GET /{$}", handleReady())
	mux.Handle("POST /api/revoke", withOperation(requireCaller(callers)(handleRevoke(d.Lifecycle, d.Validator, d.PublicBaseURL, d.Logger))))
	mux.Handle("GET /api/revoke/status/{handle}", handleStatus(d.Lifecycle, d.PublicBaseURL, d.Logger))
	mux.Handle("POST /revoke-queue", withOperation(handleQueue(d.Lifecycle, d.Validator, open, requests, d.Logger)))
	mux.Handle("POST /revoke-watch", withOperation(handleWatch(d.Watcher, open, checks, d.MaxDequeueCount, d.Drain, d.Logger)))
	mux.Handle("POST /revoke-callbacks", withOperation(handleCallbacks(d.CallbackDeliverer, d.Drain, d.Logger)))
	mux.Handle("POST /state-cleanup", handleCleanup(d.State, d.Drain, d.Logger))
	mux.Handle("GET /api/health", handleHealth(d)) // health reports on the whole configuration

	mux.Handle("/{$}", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/revoke", methodNotAllowed("POST"))
	mux.Handle("/api/revoke/status/{handle}", methodNotAllowed("GET, HEAD"))
	mux.Handle("/revoke-queue", methodNotAllowed("POST"))
	mux.Handle("/revoke-watch", methodNotAllowed("POST"))
	mux.Handle("/revoke-callbacks", methodNotAllowed("POST"))
	mux.Handle("/state-cleanup", methodNotAllowed("POST"))
	mux.Handle("/api/health", methodNotAllowed("GET, HEAD"))
	mux.Handle("/", notFound())
}
