package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/entraauth"
	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// shutdownBudget is how long in-flight work and the telemetry flush get after SIGTERM (hosting contract);
// the Functions host kills the process soon after.
const shutdownBudget = 10 * time.Second

// drainMargin is the part of the shutdown budget kept for answering aborted requests (queueing
// them) and flushing telemetry.
const drainMargin = 3 * time.Second

// serveAbout is serve's help: what it serves and every setting that drives it.
func serveAbout() string {
	var b strings.Builder
	b.WriteString(`Runs the Azure Functions custom handler: POST /api/revoke, GET /api/revoke/status/{handle},
GET /api/health, and the host's queue and timer invocations. Under the Functions host it listens
on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, else on :$PORT (8080) on every interface. SIGTERM
finishes the work in flight and flushes telemetry within 10 s. Settings that do not parse stop
it with exit code 2.

settings (docs/settings.md describes each):
`)
	row := func(s settings.Setting) {
		var note []string
		switch {
		case s.Retired:
			note = append(note, "retired")
		case s.Default != "":
			note = append(note, "default "+s.Default)
		}
		if s.Secret {
			note = append(note, "secret")
		}
		fmt.Fprintf(&b, "%s\n", strings.TrimRight(fmt.Sprintf("  %-38s %s", s.Name, strings.Join(note, ", ")), " "))
	}
	for _, s := range settings.Table {
		row(s)
	}
	b.WriteString("\nfrom the platform:\n")
	for _, s := range settings.Platform {
		row(s)
	}
	return b.String()
}

// serve runs the custom handler until ctx is cancelled (SIGTERM/SIGINT).
func serve(ctx context.Context, env Env, args []string) error {
	fs := newCommand(env, "serve", "serve", serveAbout())
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments")
	}
	cfg, err := loadConfig(env, settings.Server)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(env.Stdout, nil))
	for _, w := range cfg.Warnings {
		logger.Warn("setting", "problem", w)
	}

	cred, err := graph.ManagedIdentity(cfg.AzureClientID)
	if err != nil {
		return err
	}
	a, err := newApp(cfg, cred, env.Stdout, logger, true)
	if err != nil {
		return err
	}

	// Background work outlives request contexts but not the process.
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()

	// Drain fires shortly before the shutdown budget ends, so in-flight requests still answer.
	drain, startDrain := context.WithCancel(context.Background())
	defer startDrain()

	canDefer := a.queue != nil && cfg.QueueSigningKeys().Len() > 0
	life := revoke.LifecycleConfig{
		Engine: a.engine, Store: a.state, Render: server.HTTPRenderer{}, Logger: logger,
		CanDefer: canDefer, Watching: a.watcher != nil,
		IdempotencyTTL:  cfg.IdempotencyTTL,
		StatusTTL:       revoke.StatusTTL(cfg.IdempotencyTTL, cfg.QueueSignatureMaxAge),
		MaxDequeueCount: cfg.MaxDequeueCount, Drain: drain,
	}
	deps := server.Deps{
		Drain:  drain,
		Logger: logger, Validator: request.NewValidator().WithCallbackHosts(cfg.CallbackHosts),
		State: a.state, PublicBaseURL: cfg.PublicBaseURL, Audit: a.telemetry,
		Keys: cfg.Keys, QueueKeys: cfg.QueueKeys, Tolerance: cfg.WebhookTolerance,
		Storage: canDefer, AllowUnsigned: cfg.QueueAllowUnsigned,
		QueueMaxAge: cfg.QueueSignatureMaxAge, MaxDequeueCount: cfg.MaxDequeueCount,
		Version: readBuildInfo(env).Version,
	}
	// The Graph permission is read in the background: health answers at once, "unknown" until
	// the identity has given a token.
	scope, err := graph.Scope(cfg.GraphBaseURL.String())
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	permission := newPermissionWatch(cred, scope, cfg.NeedsUserLookups(), logger)
	permission.noPlatformIdentity = env.Getenv("IDENTITY_ENDPOINT") == "" && env.Getenv("MSI_ENDPOINT") == ""
	permission.auditLogs = cfg.WatchEnabled()
	permission.audit = a.telemetry
	deps.Permission = permission
	go permission.watch(bg)

	if a.watcher != nil {
		deps.Watcher = a.watcher
	}
	if a.watchQueue != nil {
		deps.WatchPoison = a.watchQueue
	}
	if a.queue != nil {
		deps.Poison, life.Poison = a.queue, a.queue
		go func() {
			// The host creates the trigger's queue, but not before the first deferral may need it.
			qctx, cancel := context.WithTimeout(bg, 30*time.Second)
			defer cancel()
			if err := a.queue.EnsureQueues(qctx); err != nil {
				logger.Warn("could not create the request queues", "queue", a.queue.Name(), "error", err)
			}
		}()
	}
	if cfg.CallbacksEnabled() {
		n, cd, err := wireCallbacks(bg, cfg, a, logger)
		if err != nil {
			return err
		}
		life.Notifier, deps.CallbackDeliverer = completions{n}, cd
		if a.watcher != nil {
			a.watcher.Notifier = watchCallbacks{notifier: n, status: a.state}
		}
	}
	if cfg.EntraEnabled() {
		v, err := entraauth.New(bg, entraauth.Config{
			TenantID: cfg.EntraTenantID, Audiences: cfg.EntraAudiences, RequiredRole: cfg.EntraRequiredRole,
			AllowedClients: cfg.EntraAllowedClients, OpenIDConfigURL: cfg.EntraOpenIDConfigURL, Logger: logger,
		})
		if err != nil {
			return usagef("entra: %v", err)
		}
		defer v.Close()
		deps.Tokens = v
	}

	deps.Lifecycle = revoke.NewLifecycle(life)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := server.NewHTTPServer(server.NewServer(deps), logger)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "settings", cfg.Settings)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	drainTimer := time.AfterFunc(shutdownBudget-drainMargin, startDrain)
	defer drainTimer.Stop()
	shutErr := srv.Shutdown(sctx)
	if err := a.telemetry.Close(sctx); err != nil {
		logger.Warn("telemetry flush incomplete", "error", err)
	}
	if shutErr != nil && !errors.Is(shutErr, http.ErrServerClosed) {
		return shutErr
	}
	return nil
}
