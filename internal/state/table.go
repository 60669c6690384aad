package state

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// ErrTooLarge is returned for a body beyond MaxValueSize.
var ErrTooLarge = errors.New("value too large for the state table")

// Entity kinds and keys. Every kind has a partition of its own per entity, so entities never
// contend with each other; the row key only says the kind (see docs/state.md).
const (
	kindRequest = "req"
	kindMessage = "msg"
	kindStatus  = "st"
	kindRate    = "rate"
)

// rateGuardKey is the one rate-guard bucket every instance shares.
var rateGuardKey = [2]string{"rate", "bucket"}

// Property names.
const (
	propKind       = "Kind"
	propExpires    = "Expires"    // every entity: Cleanup deletes it after this time
	propHash       = "BodyHash"   // request: the body hash the id is bound to
	propLease      = "Lease"      // request: token of the last attempt that claimed it
	propLeaseUntil = "LeaseUntil" // request: Unix ms until which Lease excludes others; 0 once ended
	propFinal      = "Final"      // request: Data is the final response
	propStatus     = "Status"     // request: the final response's HTTP status
	propDone       = "Done"       // message: completed
	propLen        = "Len"        // bytes of Data, -1 for none
	propTokens     = "Tokens"     // rate guard: tokens in the bucket at Last
	propLast       = "Last"       // rate guard: Unix ns of the last refill
	propWant       = "Want"       // rate guard: tokens held back for a large job that was refused
	propWantUntil  = "WantUntil"  // rate guard: Unix ns until which Want holds
)

// propData names the i-th chunk of an entity's data (a response, progress or status body).
func propData(i int) string { return "D" + strconv.Itoa(i) }

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

// entityKey hashes what identifies an entity into a partition key: the kind, then each part with
// its length, so that no two different inputs give the same bytes. SHA-256 in hex is short (64
// characters), uses no character Table storage forbids in keys (/ \ # ? and control characters),
// and keeps callers' ids and handles out of the table's keys.
func entityKey(kind string, parts ...string) [2]string {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return [2]string{kind + "-" + hex.EncodeToString(h.Sum(nil)), kind}
}

func requestKey(k RequestKey) [2]string { return entityKey(kindRequest, k.Scope, k.ID) }
func messageKey(k MessageKey) [2]string { return entityKey(kindMessage, k.MessageID, k.ContentHash) }
func statusKey(handle string) [2]string { return entityKey(kindStatus, handle) }

// entity is a table entity as read or to be written.
type entity struct {
	key   [2]string
	etag  azcore.ETag
	props map[string]any
}

func newEntity(key [2]string, kind string, expires time.Time) entity {
	return entity{key: key, props: map[string]any{propKind: kind, propExpires: aztables.EDMDateTime(expires.UTC())}}
}

func (e entity) marshal() ([]byte, error) {
	return json.Marshal(aztables.EDMEntity{
		Entity:     aztables.Entity{PartitionKey: e.key[0], RowKey: e.key[1]},
		Properties: e.props,
	})
}

// setData puts data into the chunk properties. Every chunk property is written, empty when
// unused, so that a merge leaves nothing of a longer earlier value. nil is kept apart from empty.
func (e entity) setData(data []byte) error {
	if len(data) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxValueSize)
	}
	n := int32(len(data))
	if data == nil {
		n = -1
	}
	e.props[propLen] = n
	for i := range maxChunks {
		lo, hi := min(i*chunkSize, len(data)), min((i+1)*chunkSize, len(data))
		e.props[propData(i)] = aztables.EDMBinary(append([]byte{}, data[lo:hi]...))
	}
	return nil
}

func (e entity) data() ([]byte, error) {
	n := e.int(propLen)
	if n < 0 {
		return nil, nil
	}
	out := make([]byte, 0, n)
	for i := range maxChunks {
		b, _ := e.props[propData(i)].(aztables.EDMBinary)
		out = append(out, b...)
	}
	if len(out) != int(n) {
		return nil, fmt.Errorf("state table entity %s: data is %d bytes, want %d", e.key[1], len(out), n)
	}
	return out, nil
}

func (e entity) str(name string) string { s, _ := e.props[name].(string); return s }
func (e entity) bool(name string) bool  { b, _ := e.props[name].(bool); return b }

func (e entity) int(name string) int64 {
	switch v := e.props[name].(type) {
	case int32:
		return int64(v)
	case aztables.EDMInt64:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

func (e entity) float(name string) float64 {
	switch v := e.props[name].(type) {
	case float64:
		return v
	case int32:
		return float64(v)
	case aztables.EDMInt64:
		return float64(v)
	}
	return 0
}

func (e entity) expires() time.Time {
	if v, ok := e.props[propExpires].(aztables.EDMDateTime); ok {
		return time.Time(v)
	}
	return time.Time{} // unreadable: treated as expired
}

// get reads an entity; ok is false when it does not exist (or the table does not).
func (t *Table) get(ctx context.Context, key [2]string) (entity, bool, error) {
	resp, err := t.client.GetEntity(ctx, key[0], key[1], nil)
	if err != nil {
		if notFound(err) {
			return entity{}, false, nil
		}
		return entity{}, false, err
	}
	var e aztables.EDMEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return entity{}, false, fmt.Errorf("decode state entity: %w", err)
	}
	return entity{key: key, etag: resp.ETag, props: e.Properties}, true, nil
}

// getLive is get that treats an expired entity as missing (Cleanup may not have run yet).
func (t *Table) getLive(ctx context.Context, key [2]string) (entity, bool, error) {
	e, ok, err := t.get(ctx, key)
	if err != nil || !ok {
		return e, ok, err
	}
	return e, t.now().Before(e.expires()), nil
}

// add inserts e, creating the table when it is missing; it fails with EntityAlreadyExists when
// the entity exists.
func (t *Table) add(ctx context.Context, e entity) (azcore.ETag, error) {
	body, err := e.marshal()
	if err != nil {
		return "", err
	}
	resp, err := t.client.AddEntity(ctx, body, nil)
	if hasCode(err, aztables.TableNotFound) {
		if err := t.createTable(ctx); err != nil {
			return "", err
		}
		resp, err = t.client.AddEntity(ctx, body, nil)
	}
	return resp.ETag, err
}

// upsert writes e whatever is there, creating the table when it is missing.
func (t *Table) upsert(ctx context.Context, e entity) error {
	body, err := e.marshal()
	if err != nil {
		return err
	}
	opts := &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}
	_, err = t.client.UpsertEntity(ctx, body, opts)
	if hasCode(err, aztables.TableNotFound) {
		if err := t.createTable(ctx); err != nil {
			return err
		}
		_, err = t.client.UpsertEntity(ctx, body, opts)
	}
	return err
}

// update writes e only if it is unchanged since etag was read (UpdateConditionNotSatisfied
// otherwise). Merge keeps the properties e does not name.
func (t *Table) update(ctx context.Context, e entity, etag azcore.ETag, mode aztables.UpdateMode) (azcore.ETag, error) {
	body, err := e.marshal()
	if err != nil {
		return "", err
	}
	resp, err := t.client.UpdateEntity(noRetry(ctx), body, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: mode})
	return resp.ETag, err
}

func (t *Table) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

// A lease given to callers is the attempt's token and the ETag of the entity it wrote, so that
// Finish and Release need one conditional write and no read.
func joinLease(token string, etag azcore.ETag) string { return token + "." + string(etag) }

func splitLease(lease string) (token string, etag azcore.ETag, ok bool) {
	token, e, ok := strings.Cut(lease, ".")
	return token, azcore.ETag(e), ok && token != "" && e != ""
}

// Claim implements Store: a conditional insert takes a new id; an existing entity is read and
// replayed, refused, or taken over by a write conditional on its ETag.
func (t *Table) Claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration) (Claim, error) {
	return t.claim(ctx, key, bodyHash, lease, newLease())
}

// claim is Claim with the attempt's token given, so that *Shared can try a failed claim again as
// the same attempt: an insert that landed unanswered is then recognised as its own.
func (t *Table) claim(ctx context.Context, key RequestKey, bodyHash string, lease time.Duration, token string) (Claim, error) {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	k := requestKey(key)
	for range maxUpdateAttempts {
		now := t.now()
		until := now.Add(lease)
		fresh := newEntity(k, kindRequest, until.Add(unfinishedTTL))
		fresh.props[propHash] = bodyHash
		fresh.props[propLease] = token
		fresh.props[propLeaseUntil] = aztables.EDMInt64(until.UnixMilli())
		fresh.props[propFinal] = false
		_ = fresh.setData(nil)

		etag, err := t.add(ctx, fresh)
		if err == nil {
			return Claim{Lease: joinLease(token, etag)}, nil
		}
		if !hasCode(err, aztables.EntityAlreadyExists) {
			return Claim{}, fmt.Errorf("claim: %w", err)
		}
		cur, ok, err := t.get(ctx, k)
		if err != nil {
			return Claim{}, fmt.Errorf("claim: %w", err)
		}
		if !ok {
			continue // deleted meanwhile: insert again
		}
		if !now.Before(cur.expires()) {
			// Expired but not yet cleaned up: the id is free again.
			etag, err := t.update(ctx, fresh, cur.etag, aztables.UpdateModeReplace)
			if err == nil {
				return Claim{Lease: joinLease(token, etag)}, nil
			}
			if conditionFailed(err) {
				continue
			}
			return Claim{}, fmt.Errorf("claim: %w", err)
		}
		if cur.str(propHash) != bodyHash {
			return Claim{}, ErrConflict
		}
		data, err := cur.data()
		if err != nil {
			return Claim{}, err
		}
		if cur.bool(propFinal) {
			return Claim{Replay: &Response{Status: int(cur.int(propStatus)), Body: data}}, nil
		}
		if heldUntil := time.UnixMilli(cur.int(propLeaseUntil)); cur.int(propLeaseUntil) != 0 && now.Before(heldUntil) {
			if cur.str(propLease) == token {
				// Our own insert, retried by the client after a try that landed unanswered.
				return Claim{Lease: joinLease(token, cur.etag), Progress: data}, nil
			}
			return Claim{}, inProgress(heldUntil.Sub(now))
		}
		// Released, or its attempt died: take it over, keeping the progress.
		take := entity{key: k, props: map[string]any{
			propLease:      token,
			propLeaseUntil: aztables.EDMInt64(until.UnixMilli()),
			propExpires:    aztables.EDMDateTime(until.Add(unfinishedTTL).UTC()),
		}}
		etag, err = t.update(ctx, take, cur.etag, aztables.UpdateModeMerge)
		if err == nil {
			return Claim{Lease: joinLease(token, etag), Progress: data}, nil
		}
		if !conditionFailed(err) {
			return Claim{}, fmt.Errorf("claim: %w", err)
		}
	}
	// Someone else keeps writing this id: it is being worked on.
	return Claim{}, inProgress(time.Second)
}

// endLease writes e over the request entity if the lease is still the one that claimed it.
func (t *Table) endLease(ctx context.Context, key RequestKey, lease string, e entity) error {
	token, etag, ok := splitLease(lease)
	if !ok {
		return ErrLeaseLost
	}
	k := requestKey(key)
	e.key = k
	e.props[propLease] = token
	e.props[propLeaseUntil] = aztables.EDMInt64(0)
	for range maxUpdateAttempts {
		_, err := t.update(ctx, e, etag, aztables.UpdateModeMerge)
		switch {
		case err == nil:
			return nil
		case notFound(err):
			return ErrLeaseLost
		case !conditionFailed(err):
			return err
		}
		// Someone wrote since our claim: only a takeover does that, unless the entity says the
		// lease is still ours and held (then our ETag is merely stale). A try of this same write
		// that landed unanswered also ends here, as ErrLeaseLost: the outcome is in the table.
		cur, ok, err := t.get(ctx, k)
		if err != nil {
			return err
		}
		if !ok || cur.str(propLease) != token || cur.int(propLeaseUntil) == 0 {
			return ErrLeaseLost
		}
		etag = cur.etag
	}
	return ErrLeaseLost
}

// Finish implements Store with one conditional merge.
func (t *Table) Finish(ctx context.Context, key RequestKey, lease string, resp Response, ttl time.Duration) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e := entity{props: map[string]any{
		propFinal:   true,
		propStatus:  int32(resp.Status),
		propExpires: aztables.EDMDateTime(t.now().Add(ttl).UTC()),
	}}
	body := resp.Body
	if body == nil {
		body = []byte{}
	}
	if err := e.setData(body); err != nil {
		return err
	}
	if err := t.endLease(ctx, key, lease, e); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	return nil
}

// Release implements Store with one conditional merge.
func (t *Table) Release(ctx context.Context, key RequestKey, lease string, progress []byte) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e := entity{props: map[string]any{propExpires: aztables.EDMDateTime(t.now().Add(unfinishedTTL).UTC())}}
	if progress != nil {
		if err := e.setData(progress); err != nil {
			return err
		}
	}
	if err := t.endLease(ctx, key, lease, e); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// MessageProgress implements Store.
func (t *Table) MessageProgress(ctx context.Context, key MessageKey) ([]byte, bool, error) {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e, ok, err := t.getLive(ctx, messageKey(key))
	if err != nil {
		return nil, false, fmt.Errorf("message progress: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	data, err := e.data()
	return data, e.bool(propDone), err
}

// SaveMessageProgress implements Store. A message is worked on by one delivery at a time (the
// queue hides it meanwhile), so the last write wins.
func (t *Table) SaveMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e := newEntity(messageKey(key), kindMessage, t.now().Add(MessageTTL))
	e.props[propDone] = done
	if err := e.setData(progress); err != nil {
		return err
	}
	if err := t.upsert(ctx, e); err != nil {
		return fmt.Errorf("save message progress: %w", err)
	}
	return nil
}

// PutStatus implements Store. The handle is random, so an existing entity can only be an earlier
// try of this same write.
func (t *Table) PutStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e := newEntity(statusKey(handle), kindStatus, t.now().Add(ttl))
	if err := e.setData(nonNil(body)); err != nil {
		return err
	}
	if err := t.upsert(ctx, e); err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	return nil
}

// GetStatus implements Store.
func (t *Table) GetStatus(ctx context.Context, handle string) ([]byte, error) {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e, ok, err := t.getLive(ctx, statusKey(handle))
	if err != nil {
		return nil, fmt.Errorf("get status: %w", err)
	}
	if !ok {
		return nil, ErrNotFound
	}
	return e.data()
}

// UpdateStatus implements Store: read, update, write conditional on the ETag read; on a
// conflicting write, again.
func (t *Table) UpdateStatus(ctx context.Context, handle string, ttl time.Duration, update func([]byte) ([]byte, error)) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	k := statusKey(handle)
	for attempt := 0; ; attempt++ {
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("update status: conflicting writes until %w", err)
		}
		cur, ok, err := t.getLive(ctx, k)
		if err != nil {
			return fmt.Errorf("update status: %w", err)
		}
		if !ok {
			return ErrNotFound
		}
		body, err := cur.data()
		if err != nil {
			return err
		}
		next, err := update(body)
		if err != nil {
			return err
		}
		e := newEntity(k, kindStatus, t.now().Add(ttl))
		if err := e.setData(nonNil(next)); err != nil {
			return err
		}
		_, err = t.update(ctx, e, cur.etag, aztables.UpdateModeReplace)
		switch {
		case err == nil:
			return nil
		case notFound(err):
			return ErrNotFound
		case !conditionFailed(err):
			return fmt.Errorf("update status: %w", err)
		}
	}
}

// backoff waits before the attempt-th try of a conditional write that lost to another writer: a
// random few milliseconds, growing with attempt, so that writers contending for one entity spread
// out instead of colliding again. The first attempt does not wait.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	d := time.Duration(mathrand.Int64N(int64(5*time.Millisecond) << min(attempt, 5)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Take implements Store with the bucket shared by all instances (see sharedGuard). When the table
// cannot be reached it falls back to this instance's own bucket.
func (t *Table) Take(ctx context.Context, n int) (time.Duration, bool) {
	wait, ok, err := t.take(ctx, n)
	if err != nil {
		t.logger.Warn("state table rate guard unreachable, using the instance's own", "error", err)
		return t.fallbackGuard.take(n)
	}
	return wait, ok
}

// take is Take without the fallback. Its time limit (opTimeout) covers the table's round trips
// only, never the wait for another caller's write of the bucket (see sharedGuard).
func (t *Table) take(ctx context.Context, n int) (time.Duration, bool, error) {
	return t.guard.take(ctx, t, n)
}

// Refund implements Store: the tokens go back to this instance's chunk (see sharedGuard).
func (t *Table) Refund(n int) { t.guard.refund(t.now(), n) }

// Cleanup implements Store: it queries entities whose Expires has passed, a page at a time, and
// deletes each unless it changed since it was read (a request taken over meanwhile stays), up to
// cleanupParallel at a time (every entity has a partition of its own, so a table transaction,
// which holds one partition, cannot batch them). A run that ends before the last page (its context
// ends) leaves its continuation for the next run, which starts there instead of from the top;
// the run after the last page starts from the top again.
func (t *Table) Cleanup(ctx context.Context) (int, error) {
	filter := fmt.Sprintf("%s lt datetime'%s'", propExpires, t.now().UTC().Format(time.RFC3339))
	t.cleanupMu.Lock()
	from := t.cleanupFrom
	t.cleanupMu.Unlock()
	pager := t.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{
		Filter:           &filter,
		Select:           ptr("PartitionKey,RowKey," + propExpires),
		Top:              ptr(int32(cleanupPageSize)),
		NextPartitionKey: from[0],
		NextRowKey:       from[1],
	})
	var deleted atomic.Int64
	for pager.More() {
		if err := ctx.Err(); err != nil {
			return int(deleted.Load()), err
		}
		pageCtx, cancel := context.WithTimeout(ctx, cleanupPageTimeout)
		page, err := pager.NextPage(pageCtx)
		if err != nil {
			cancel()
			if notFound(err) {
				return int(deleted.Load()), nil // no table: nothing to clean
			}
			return int(deleted.Load()), fmt.Errorf("cleanup: %w", err)
		}
		err = t.deleteAll(pageCtx, page.Entities, &deleted)
		cancel()
		if err != nil {
			return int(deleted.Load()), err
		}
		// The page is done: a run stopped after it goes on from the next one.
		t.cleanupMu.Lock()
		t.cleanupFrom = [2]*string{page.NextPartitionKey, page.NextRowKey}
		t.cleanupMu.Unlock()
	}
	if ctx.Err() == nil {
		t.cleanupMu.Lock()
		t.cleanupFrom = [2]*string{}
		t.cleanupMu.Unlock()
	}
	return int(deleted.Load()), ctx.Err()
}

// deleteAll deletes a page of expired entities, each conditional on the ETag it was listed with,
// cleanupParallel at a time; the first failure (other than gone or changed) ends it.
func (t *Table) deleteAll(ctx context.Context, raws [][]byte, deleted *atomic.Int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, cleanupParallel)
	var wg sync.WaitGroup
	for _, raw := range raws {
		var e aztables.EDMEntity
		if err := json.Unmarshal(raw, &e); err != nil {
			cancel(fmt.Errorf("cleanup: decode entity: %w", err))
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			etag := azcore.ETag(e.ETag)
			_, err := t.client.DeleteEntity(ctx, e.PartitionKey, e.RowKey, &aztables.DeleteEntityOptions{IfMatch: &etag})
			switch {
			case err == nil:
				deleted.Add(1)
			case notFound(err), conditionFailed(err):
				// Gone already, or rewritten since the query (no longer expired).
			default:
				cancel(fmt.Errorf("cleanup: %w", err))
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
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

// addStatus creates a status only if the table has none under handle (a status written back
// after an outage never replaces one the queue trigger wrote meanwhile).
func (t *Table) addStatus(ctx context.Context, handle string, body []byte, ttl time.Duration) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e := newEntity(statusKey(handle), kindStatus, t.now().Add(ttl))
	if err := e.setData(nonNil(body)); err != nil {
		return err
	}
	if _, err := t.add(ctx, e); err != nil && !hasCode(err, aztables.EntityAlreadyExists) {
		return fmt.Errorf("add status: %w", err)
	}
	return nil
}

// addMessageProgress saves a message's progress only if the table has none for it (progress
// written back after an outage never replaces a later delivery's).
func (t *Table) addMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error {
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	e := newEntity(messageKey(key), kindMessage, t.now().Add(MessageTTL))
	e.props[propDone] = done
	if err := e.setData(progress); err != nil {
		return err
	}
	if _, err := t.add(ctx, e); err != nil && !hasCode(err, aztables.EntityAlreadyExists) {
		return fmt.Errorf("add message progress: %w", err)
	}
	return nil
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
