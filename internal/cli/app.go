package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// config is every setting parsed and validated.
type config struct {
	settings.Settings
}

// loadConfig parses all settings for a command run in mode and reports every problem at once as a
// usage error on one line.
func loadConfig(env Env, mode settings.Mode) (config, error) {
	names := make([]string, 0, len(env.Environ))
	for _, kv := range env.Environ {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	s, err := settings.LoadWith(env.Getenv, settings.Options{Mode: mode, AppRoot: env.AppRoot, Names: names})
	if err != nil {
		return config{}, usagef("invalid settings: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return config{Settings: s}, nil
}

// app is the engine with its adapters, shared by `serve` and `revoke`.
type app struct {
	cfg       config
	logger    *slog.Logger
	telemetry *telemetry.Telemetry
	graph     *graph.Client
	queue     *queue.Client // nil without storage
	state     state.Store   // what the handler remembers across requests (wire.go)

	storageCred azcore.TokenCredential // signs in to an identity-based AzureWebJobsStorage; nil with a connection string
	engine      *revoke.Engine

	watchQueue *queue.Client  // WATCH_QUEUE, for its poison queue; nil without storage
	watcher    *watch.Watcher // the sign-in checks (WATCH_AFTER); nil when off
}

// newApp wires the engine. stdout receives the JSON outcome lines; cred signs in to Graph (and to
// Storage and Application Insights when they use Entra ID).
func newApp(cfg config, cred azcore.TokenCredential, stdout io.Writer, logger *slog.Logger, withDeferral bool) (*app, error) {
	role := cfg.SiteName
	if role == "" {
		role = telemetry.DefaultRole
	}
	instance := cfg.InstanceName
	if instance == "" {
		instance, _ = os.Hostname()
	}
	tel, err := telemetry.New(telemetry.Config{
		Connection: cfg.Telemetry, Role: role, RoleInstance: instance, Credential: cred,
		RedactUPN: cfg.TelemetryRedactUPN, UPNSalt: cfg.TelemetryUPNSalt, Stdout: stdout, Logger: logger,
	})
	if errors.Is(err, telemetry.ErrNoSalt) || errors.Is(err, telemetry.ErrNoCredential) {
		return nil, usagef("invalid settings: TELEMETRY_REDACT_UPN: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	gc, err := graph.New(graph.Config{
		BaseURL: cfg.GraphBaseURL.String(), Credential: cred, Concurrency: cfg.GraphConcurrency, Logger: logger,
		OnCall: func(ctx context.Context, c graph.Call) { tel.Dependency(ctx, telemetry.Dependency(c)) },
	})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	a := &app{cfg: cfg, logger: logger, telemetry: tel, graph: gc}
	if a.storageCred, err = storageCredential(cfg.Storage, cred); err != nil {
		return nil, err
	}

	var deferrer revoke.Deferrer
	if cfg.Storage.Configured() && withDeferral {
		a.queue, err = queue.New(queueConfig(cfg.Storage, a.storageCred, cfg.RevokeQueue))
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		if keys := cfg.QueueSigningKeys(); keys.Len() > 0 {
			deferrer = &queue.Deferrer{Client: a.queue, Keys: keys, Now: time.Now}
		} else {
			logger.Warn("deferral disabled: QUEUE_SECRETS (or WEBHOOK_SECRETS) is needed to sign queued requests")
		}
	}
	fallback := func(op string, err error) { tel.StateFallback(context.Background(), op, err) }
	if a.state, deferrer, err = wireState(cfg, a.storageCred, logger, fallback, deferrer, withDeferral); err != nil {
		return nil, err
	}
	scheduler, err := a.wireWatch(withDeferral)
	if err != nil {
		return nil, err
	}
	a.engine = revoke.New(revoke.Config{
		Revoker: gc, Users: gc, Deferrer: deferrer, Sink: tel, Logger: logger,
		ProtectedUsers: cfg.ProtectedUsers, AllowedDomains: cfg.AllowedDomains,
		DryRun: cfg.DryRun, Verify: cfg.VerifyRevocation,
		Concurrency: cfg.GraphConcurrency, RateGuard: a.state, Scheduler: scheduler,
	})
	return a, nil
}
