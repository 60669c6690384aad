package state

// Status records on the table, updated in place with optimistic concurrency.

import (
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

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
