package state

// Table entities: keys, properties and the chunked data they carry, and the reads and writes every
// operation is made of.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// ErrTooLarge is returned for a body beyond MaxValueSize.
var ErrTooLarge = errors.New("value too large for the state table")

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
