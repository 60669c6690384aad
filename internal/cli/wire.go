package cli

import (
	"log/slog"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// wireState builds what the handler remembers across requests — idempotency, message progress,
// status records and the rate guard — and puts the status record in front of the queue's deferrer.
//
// The server (shared true) uses the store STATE_STORE names: the Azure Table in
// AzureWebJobsStorage's account, shared by every instance, or this process's memory. A terminal
// command (shared false) runs one request in one process: memory, holding only its rate guard.
func wireState(cfg config, logger *slog.Logger, deferrer revoke.Deferrer, shared bool) (state.Store, revoke.Deferrer, error) {
	mem := state.NewMemory(state.MemoryConfig{RatePerMinute: cfg.MaxRevocationsPerMinute})
	var st state.Store = mem
	if shared && cfg.StateStore == settings.StateTable {
		// The table store lands with the state package's Table; until then every instance keeps
		// its own memory, as in memory mode, and says so at start.
		logger.Warn("state is kept per instance: the table store is not available in this build", "state_table", cfg.StateTable)
	}
	if deferrer != nil {
		deferrer = &server.StatusDeferrer{Next: deferrer, Status: st, TTL: cfg.IdempotencyTTL, Logger: logger}
	}
	return st, deferrer, nil
}
