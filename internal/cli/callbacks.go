package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/callback"
	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/queue"
)

// wireCallbacks builds the outcome callbacks when CALLBACK_ALLOWED_HOSTS is set: the Notifier
// that puts events on CALLBACK_QUEUE (signed with the key deferral signs with) and the Deliverer
// that the callback queue trigger runs. Settings have already refused callbacks without storage or
// secrets. The callback queue and its poison queue are created in the background.
func wireCallbacks(bg context.Context, cfg config, cred azcore.TokenCredential, a *app, logger *slog.Logger) (*callback.Notifier, *callback.Deliverer, error) {
	qcfg := queue.ConfigFor(cfg.Storage, cfg.CallbackQueue)
	qcfg.Credential = cred
	if qcfg.ServiceURL != "" && qcfg.ClientID != "" {
		c, err := graph.ManagedIdentity(qcfg.ClientID)
		if err != nil {
			return nil, nil, fmt.Errorf("storage identity: %w", err)
		}
		qcfg.Credential = c
	}
	q, err := queue.New(qcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("callback queue: %w", err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if err := q.EnsureQueues(ctx); err != nil {
			logger.Warn("could not create the callback queues", "queue", q.Name(), "error", err)
		}
	}()
	// The key that signs deferred requests signs callback queue messages too.
	queueKeys := cfg.QueueSigningKeys()
	n := &callback.Notifier{Queue: q, Keys: queueKeys, Record: a.telemetry, Logger: logger, Now: time.Now}
	d := &callback.Deliverer{
		Hosts: cfg.CallbackHosts, Secrets: cfg.CallbackKeys, QueueKeys: queueKeys,
		MaxAge: cfg.QueueSignatureMaxAge, Tolerance: cfg.WebhookTolerance,
		Queue: q, Client: callback.NewClient(), Delays: cfg.CallbackRetryDelays,
		Record: a.telemetry, Rejecter: a.telemetry, Logger: logger, Now: time.Now,
	}
	return n, d, nil
}
