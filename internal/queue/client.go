// Package queue is the Storage queue side of the handler: the request queue and its poison queue
// (Azure Queue Storage through azqueue), the signed message format, and the Deferrer that hands
// unfinished work to the queue. How the Functions host delivers a message to the handler is the
// server's business (internal/server).
package queue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
)

// MaxMessageBytes is the largest message text Enqueue and Poison accept: Azure Queue Storage takes
// at most 64 KiB per message, and the text is stored base64-encoded.
const MaxMessageBytes = 64 << 10 / 4 * 3

// ErrTooLarge is returned for a message text longer than MaxMessageBytes.
var ErrTooLarge = errors.New("message too large for a storage queue")

// defaultCallTimeout bounds a storage call whose context has no deadline of its own, so that a
// black-holed storage endpoint cannot hold a deferral (and the HTTP request behind it) forever.
const defaultCallTimeout = 30 * time.Second

// retryOptions keep the SDK's retries inside the handler's budgets: the HTTP path has 25 s in all,
// so a single try may not take the SDK's default of a minute, nor a backoff grow past a few seconds.
var retryOptions = policy.RetryOptions{
	MaxRetries:    3,
	TryTimeout:    10 * time.Second,
	RetryDelay:    200 * time.Millisecond,
	MaxRetryDelay: 2 * time.Second,
}

// Client writes to the request queue and its poison queue.
type Client struct {
	name   string
	queue  *azqueue.QueueClient
	poison *azqueue.QueueClient
}

// New builds the queue clients for cfg. It makes no network call.
func New(cfg Config) (*Client, error) {
	if err := validateQueueName(cfg.Queue); err != nil {
		return nil, err
	}
	opts := &azqueue.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: retryOptions}}
	var (
		svc *azqueue.ServiceClient
		err error
	)
	if cfg.ServiceURL == "" {
		return nil, fmt.Errorf("%w: no queue service URL", ErrConfig)
	}
	switch {
	case cfg.AccountKey != "" && cfg.SAS != "":
		return nil, fmt.Errorf("%w: give an account key or a SAS, not both", ErrConfig)
	case cfg.AccountKey != "":
		cred, cerr := azqueue.NewSharedKeyCredential(cfg.AccountName, cfg.AccountKey)
		if cerr != nil {
			return nil, fmt.Errorf("%w: AccountKey: %w", ErrConfig, cerr)
		}
		svc, err = azqueue.NewServiceClientWithSharedKeyCredential(strings.TrimSuffix(cfg.ServiceURL, "/")+"/", cred, opts)
	case cfg.SAS != "":
		svc, err = azqueue.NewServiceClientWithNoCredential(strings.TrimSuffix(cfg.ServiceURL, "/")+"/?"+cfg.SAS, opts)
	case cfg.Credential != nil:
		// A bearer token goes there: https, or loopback.
		u, perr := parseServiceURL(cfg.ServiceURL)
		if perr != nil {
			return nil, fmt.Errorf("%w: service URL: %w", ErrConfig, perr)
		}
		svc, err = azqueue.NewServiceClient(u+"/", cfg.Credential, opts)
	default:
		return nil, fmt.Errorf("%w: no account key, SAS or credential", ErrConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("new queue client: %w", err)
	}
	return &Client{
		name:   cfg.Queue,
		queue:  svc.NewQueueClient(cfg.Queue),
		poison: svc.NewQueueClient(cfg.Queue + PoisonSuffix),
	}, nil
}

// Name returns the request queue's name.
func (c *Client) Name() string { return c.name }

// Enqueue adds text to the request queue, base64-encoded as the Functions queue trigger expects
// by default (host.json extensions.queues.messageEncoding "base64").
func (c *Client) Enqueue(ctx context.Context, text []byte) error {
	if err := send(ctx, c.queue, text, nil); err != nil {
		return fmt.Errorf("enqueue to %s: %w", c.name, err)
	}
	return nil
}

// poisonTTL keeps poisoned messages until someone looks at them: a revocation that could not be
// carried out needs a human, and the 7-day default would silently drop the evidence.
var poisonTTL int32 = -1

// Poison adds text to the poison queue, base64-encoded: a message the trigger delivered is copied
// there unchanged, byte for byte as it came.
func (c *Client) Poison(ctx context.Context, text []byte) error {
	if err := send(ctx, c.poison, text, &azqueue.EnqueueMessageOptions{TimeToLive: &poisonTTL}); err != nil {
		return fmt.Errorf("poison to %s%s: %w", c.name, PoisonSuffix, err)
	}
	return nil
}

// EnsureQueues creates the request and poison queues when missing. It is idempotent.
func (c *Client) EnsureQueues(ctx context.Context) error {
	for _, q := range []*azqueue.QueueClient{c.queue, c.poison} {
		if err := create(ctx, q); err != nil {
			return fmt.Errorf("ensure queues: %w", err)
		}
	}
	return nil
}

func send(ctx context.Context, q *azqueue.QueueClient, text []byte, opts *azqueue.EnqueueMessageOptions) error {
	if len(text) > MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(text), MaxMessageBytes)
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	content := base64.StdEncoding.EncodeToString(text)
	_, err := q.EnqueueMessage(ctx, content, opts)
	if queueerror.HasCode(err, queueerror.QueueNotFound) {
		// A deleted or never-created queue must not lose the message: create it and try once more,
		// as the host does for its poison queue.
		if err = create(ctx, q); err == nil {
			_, err = q.EnqueueMessage(ctx, content, opts)
		}
	}
	return endpoint.RedactError(err)
}

func create(ctx context.Context, q *azqueue.QueueClient) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	_, err := q.Create(ctx, nil)
	// Create answers 204 for an existing queue with the same metadata, and 409 QueueAlreadyExists
	// when the metadata differ; both mean the queue is there.
	if err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
		return fmt.Errorf("create queue: %w", endpoint.RedactError(err))
	}
	return nil
}

// withDeadline gives ctx a deadline when it has none.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultCallTimeout)
}
