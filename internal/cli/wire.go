package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// stateStartBudget bounds connecting to the state table (and creating it when missing) at start.
// A table that does not answer in time is not waited for: the handler starts degraded, on its own
// memory, and returns to the table when it answers.
const stateStartBudget = 2 * time.Second

// wireState builds what the handler remembers across requests — idempotency, message progress,
// status records and the rate guard — and puts the status record in front of the queue's deferrer,
// so that a deferred request's status exists before its message does.
//
// The server (shared true) uses the store STATE_STORE names: "table", the Azure Table STATE_TABLE
// in AzureWebJobsStorage's account, shared by every instance, with this instance's memory as the
// fallback while the table cannot be reached (onFallback records that); or "memory", this process
// alone. A terminal command (shared false) runs in one process: memory, for its rate guard.
func wireState(cfg config, storageCred azcore.TokenCredential, logger *slog.Logger, onFallback func(op string, err error), deferrer revoke.Deferrer, shared bool) (state.Store, revoke.Deferrer, error) {
	mem := state.NewMemory(state.MemoryConfig{RatePerMinute: cfg.MaxRevocationsPerMinute})
	var st state.Store = mem
	if shared && cfg.StateStore == settings.StateTable {
		tcfg := tableConfig(cfg, storageCred)
		tcfg.Logger = logger
		ctx, cancel := context.WithTimeout(context.Background(), stateStartBudget)
		defer cancel()
		table, err := state.NewTable(ctx, tcfg)
		if err != nil {
			return nil, nil, fmt.Errorf("state table: %w", err)
		}
		st = state.NewShared(table, mem, onFallback)
	}
	if deferrer != nil {
		deferrer = &revoke.StatusDeferrer{Next: deferrer, Statuses: st, TTL: revoke.StatusTTL(cfg.IdempotencyTTL, cfg.QueueSignatureMaxAge), Logger: logger}
	}
	return st, deferrer, nil
}
