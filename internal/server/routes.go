package server

import "net/http"

// addRoutes is the only place routes are registered. Method-less patterns for the same paths turn
// a wrong method into the contract's JSON 405, and "/" into its JSON 404.
func addRoutes(mux *http.ServeMux, d Deps) {
	mux.Handle("GET /{$}", handleReady())
	mux.Handle("POST /api/revoke", withOperation(requireCaller(d)(handleRevoke(d))))
	mux.Handle("GET /api/revoke/status/{handle}", handleStatus(d))
	mux.Handle("POST /revoke-queue", withOperation(handleQueue(d)))
	mux.Handle("POST /revoke-watch", withOperation(handleWatch(d)))
	mux.Handle("POST /revoke-callbacks", withOperation(handleCallbacks(d)))
	mux.Handle("POST /state-cleanup", handleCleanup(d))
	mux.Handle("GET /api/health", handleHealth(d))

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
