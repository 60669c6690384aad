package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
)

// Timeouts and retries. An HTTP request has 25 s in all and must still be answered when the table
// is down, so no table call may hold it for long; *Shared falls back to memory on a failure.
const (
	// opTimeout bounds one Store operation, all its round trips included. Table storage answers
	// in milliseconds; three seconds is a table that is down, or too slow to be worth waiting for.
	opTimeout = 3 * time.Second
	// tryTimeout bounds one HTTP try, so that a black-holed connection leaves time for one retry.
	tryTimeout = 1500 * time.Millisecond
	// cleanupPageTimeout bounds each page of Cleanup (a query or a delete), not the whole run,
	// which is bounded by its context.
	cleanupPageTimeout = 30 * time.Second
	// cleanupPageSize is the number of entities Cleanup reads per page: the most a query returns.
	cleanupPageSize = 1000
	// cleanupParallel is the number of deletes Cleanup has in flight: each is one round trip of
	// a few milliseconds, so a run deletes about a thousand entities a second.
	cleanupParallel = 16
	// maxUpdateAttempts bounds optimistic-concurrency retries (a status update, a claim takeover,
	// the rate-guard bucket). Each retry follows a write by someone else, so running out means
	// sustained contention, not an outage.
	maxUpdateAttempts = 8
)

// Size limits of Table storage: 64 KiB per property and 1 MiB per entity. Azurite counts an entity
// by its JSON (binary as base64, 4/3 larger), so values are kept well inside both ways of counting.
const (
	chunkSize = 60 << 10
	maxChunks = 10
	// MaxValueSize is the largest response, progress or status body the table holds (600 KiB);
	// a 100-user response is about 100 KiB.
	MaxValueSize = chunkSize * maxChunks
)

// Entity kinds and keys. Every kind has a partition of its own per entity, so entities never
// contend with each other; the row key only says the kind (see docs/state.md).
const (
	kindRequest = "req"
	kindMessage = "msg"
	kindStatus  = "st"
	kindRate    = "rate"
)

// TableConfig configures NewTable with the storage connection as settings parsed it: the table
// service URL and one way to authorise requests to it, a shared key (AccountName, AccountKey), a
// SAS or a Credential.
type TableConfig struct {
	// ServiceURL is the table service endpoint, https://<account>.table.core.windows.net or
	// Azurite's http://127.0.0.1:10002/devstoreaccount1 (settings.Storage.TableServiceURL).
	ServiceURL  string
	AccountName string // with AccountKey: a connection string's shared key
	AccountKey  string // base64; a secret
	SAS         string // a connection string's SharedAccessSignature, without the leading '?'; a secret
	// Credential signs requests with tokens: an identity-based connection.
	Credential azcore.TokenCredential

	Table         string           // STATE_TABLE
	RatePerMinute int              // MAX_REVOCATIONS_PER_MINUTE across all instances; 0 turns the guard off
	Now           func() time.Time // clock; nil means time.Now
	Logger        *slog.Logger     // nil discards

	perTry []policy.Policy // tests count requests with it
}

// Table is a Store on an Azure Table shared by every instance. It is safe for concurrent use.
// Each Store operation takes at most a few seconds (opTimeout) and returns the table's error when
// it cannot be reached; *Shared turns that into a fallback to memory.
type Table struct {
	client *aztables.Client
	name   string
	now    func() time.Time
	logger *slog.Logger
	guard  *sharedGuard
	// fallbackGuard is this instance's own bucket, used by Take when the shared bucket cannot be
	// reached (a bare Table; *Shared uses its Memory's instead).
	fallbackGuard *bucket
	// cleanupFrom is where the next Cleanup starts: the continuation of the last page a run
	// finished, or nothing (the top). Kept by this instance only.
	cleanupMu   sync.Mutex
	cleanupFrom [2]*string
	// unreachableAtStart is the error of the table's creation at start when the table could not
	// be reached, so that *Shared starts degraded instead of claiming a table it never saw.
	unreachableAtStart error
}

var _ Store = (*Table)(nil)

var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)

// NewTable connects to the table and creates it when missing. It fails on a configuration the
// table can never accept (no service URL or not one way to authorise, a bad table name, access refused); when
// the table merely cannot be reached, it logs that and returns the Table anyway, so that *Shared
// starts degraded instead of the handler not starting. Creating the table again is harmless.
func NewTable(ctx context.Context, cfg TableConfig) (*Table, error) {
	if !tableNameRE.MatchString(cfg.Table) {
		return nil, fmt.Errorf("state table name: want 3-63 letters and digits, starting with a letter")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	svc, err := newServiceClient(cfg)
	if err != nil {
		return nil, err
	}
	t := &Table{
		client: svc.NewClient(cfg.Table), name: cfg.Table, now: cfg.Now, logger: cfg.Logger,
		guard:         newSharedGuard(cfg.RatePerMinute),
		fallbackGuard: newBucket(cfg.RatePerMinute, cfg.Now),
	}
	if err := t.createTable(ctx); err != nil {
		if !unreachable(err) {
			return nil, fmt.Errorf("create state table: %w", err)
		}
		t.logger.Warn("state table unreachable at start", "table", cfg.Table, "error", err)
		t.unreachableAtStart = err
	}
	return t, nil
}

// clientOptions keep retries short: one quick retry of a failed try, never a long back-off. Every
// try's transport error loses its URL's query, which holds a SAS's signature.
func clientOptions(perTry []policy.Policy) *aztables.ClientOptions {
	return &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{
		PerRetryPolicies: append(slices.Clip(perTry), redactPolicy{}),
		Retry: policy.RetryOptions{
			MaxRetries:    1,
			TryTimeout:    tryTimeout,
			RetryDelay:    100 * time.Millisecond,
			MaxRetryDelay: 300 * time.Millisecond, // also caps a server's Retry-After
		},
		Telemetry: policy.TelemetryOptions{Disabled: true},
	}}
}

// redactPolicy redacts the URL of a transport error (endpoint.RedactError) before the retry
// policy, and anything that logs the error, sees it.
type redactPolicy struct{}

func (redactPolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	return resp, endpoint.RedactError(err)
}

// noRetry is for conditional writes: a retried write that had landed would fail its own ETag
// condition and look like someone else's write.
func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1, TryTimeout: tryTimeout})
}

func newServiceClient(cfg TableConfig) (*aztables.ServiceClient, error) {
	if cfg.ServiceURL == "" {
		return nil, errors.New("state table: no table service URL")
	}
	serviceURL := strings.TrimRight(cfg.ServiceURL, "/")
	opts := clientOptions(cfg.perTry)
	switch {
	case cfg.AccountKey != "" && (cfg.SAS != "" || cfg.Credential != nil), cfg.SAS != "" && cfg.Credential != nil:
		return nil, errors.New("state table: give one of an account key, a SAS or a credential")
	case cfg.AccountKey != "":
		if cfg.AccountName == "" {
			return nil, errors.New("state table: an account key needs its account name")
		}
		cred, err := aztables.NewSharedKeyCredential(cfg.AccountName, cfg.AccountKey)
		if err != nil {
			return nil, errors.New("state table: the account key is not valid base64")
		}
		return aztables.NewServiceClientWithSharedKey(serviceURL, cred, opts)
	case cfg.SAS != "":
		return aztables.NewServiceClientWithNoCredential(serviceURL+"?"+strings.TrimPrefix(cfg.SAS, "?"), opts)
	case cfg.Credential != nil:
		return aztables.NewServiceClient(serviceURL, cfg.Credential, opts)
	default:
		return nil, errors.New("state table: no account key, SAS or credential")
	}
}

func (t *Table) createTable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err := t.client.CreateTable(ctx, nil)
	if hasCode(err, aztables.TableAlreadyExists) {
		return nil
	}
	return err
}

func (t *Table) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

// Mode implements Store.
func (t *Table) Mode() string { return ModeTable }

// probe asks the table one cheap question, in one try: a read of the rate-guard bucket, found or
// not. nil means the table answers.
func (t *Table) probe(ctx context.Context) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	_, err := t.client.GetEntity(noRetry(ctx), rateGuardKey[0], rateGuardKey[1], nil)
	if err == nil || notFound(err) {
		return nil
	}
	return err
}

func ptr[T any](v T) *T { return &v }

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func hasCode(err error, code aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == string(code)
}

func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

func conditionFailed(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusPreconditionFailed
}

// unreachable reports whether err means the table could not be reached or did not answer in time
// (a network error, a timeout, a server error or throttling), as opposed to an answer that will
// not change (a refused request, a bad request).
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusRequestTimeout || re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500
	}
	return true // no HTTP answer at all: connection refused or reset, DNS, a deadline
}
