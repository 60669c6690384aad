package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// checkLease is how long a delivery of a sign-in check holds it against another instance: the
// queue invocation's budget (60 s) and a margin for recording.
const checkLease = 90 * time.Second

// wireWatch builds the sign-in watch for the server (shared): the WATCH_QUEUE client (its poison
// queue is needed even with the watch off, to keep checks queued before it was turned off), and
// with WATCH_AFTER the scheduler that the engine calls after revocations and the watcher that
// makes the checks. It returns the engine's scheduler, nil when the watch is off.
func (a *app) wireWatch(shared bool) (revoke.Scheduler, error) {
	cfg := a.cfg
	if !shared || !cfg.Storage.Configured() {
		return nil, nil
	}
	wq, err := queue.New(queueConfig(cfg.Storage, a.storageCred, cfg.WatchQueue))
	if err != nil {
		return nil, fmt.Errorf("watch queue: %w", err)
	}
	a.watchQueue = wq
	if !cfg.WatchEnabled() {
		return nil, nil
	}

	// A watched request's status is kept until after its last check.
	recordTTL := max(cfg.IdempotencyTTL, cfg.WatchAfter[len(cfg.WatchAfter)-1]+time.Hour)
	delays := make([]watch.Delay, len(cfg.WatchAfter))
	for i, d := range cfg.WatchAfter {
		delays[i] = watch.Delay{Text: cfg.WatchAfterText[i], Duration: d}
	}
	// Checks are signed with the first secret, as deferred requests are: the one place to change
	// when the handler gets secrets of its own for what it enqueues.
	checks := &queue.CheckQueue{Client: wq, Keys: cfg.QueueSigningKeys()}
	sched := &watch.Scheduler{
		Queue:     checks,
		Users:     a.graph,
		After:     delays,
		Logger:    a.logger,
		OnFailure: a.telemetry.WatchNotScheduled,
	}

	pacer, err := reportsLimit(cfg, a.storageCred, a.logger)
	if err != nil {
		return nil, err
	}
	a.watcher = &watch.Watcher{
		Requeue: checks,
		Reader:  a.graph.SignInsReader(pacer),
		// A finished check is remembered as long as a delivery of it can be accepted.
		Once:    watch.ClaimOnce{Claims: a.state, Lease: checkLease, TTL: cfg.QueueSignatureMaxAge + time.Hour},
		Records: revoke.StatusRecords{Statuses: a.state, TTL: recordTTL},
		Sink:    a.telemetry,
		Logger:  a.logger,
		// Notifier (outcome callbacks, revocation.watch) is set here once callbacks exist.
	}
	return &revoke.StatusScheduler{Next: sched, Statuses: a.state, TTL: recordTTL, Logger: a.logger}, nil
}

// reportsLimit is Graph's reports limit for this app: shared through the state table by every
// instance when the state is, else this process's own.
func reportsLimit(cfg config, storageCred azcore.TokenCredential, logger *slog.Logger) (graph.Pacer, error) {
	if cfg.StateStore != settings.StateTable {
		return state.NewReports(nil), nil
	}
	tcfg := tableConfig(cfg, storageCred)
	tcfg.Logger = logger
	ctx, cancel := context.WithTimeout(context.Background(), stateStartBudget)
	defer cancel()
	table, err := state.NewTable(ctx, tcfg)
	if err != nil {
		return nil, fmt.Errorf("state table: %w", err)
	}
	return state.NewTableReports(table), nil
}
