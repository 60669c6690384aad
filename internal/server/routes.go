package server

import "net/http"

// addRoutes is the only place routes are registered. Method-less patterns for the same paths turn
// a wrong method into the contract's JSON 405, and "/" into its JSON 404.
func addRoutes(mux *http.ServeMux, d Deps) {
	progress := newAttempts()
	mux.Handle("GET /{$}", handleReady())
	mux.Handle("POST /api/revoke", withOperation(requireCaller(d)(handleRevoke(d, progress))))
	mux.Handle("POST /revoke-queue", withOperation(handleQueue(d, progress)))
	mux.Handle("GET /api/health", handleHealth(d))

	mux.Handle("/{$}", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/revoke", methodNotAllowed("POST"))
	mux.Handle("/revoke-queue", methodNotAllowed("POST"))
	mux.Handle("/api/health", methodNotAllowed("GET, HEAD"))
	mux.Handle("/", notFound())
}
