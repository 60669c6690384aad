package state

// Cleanup of expired entities.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

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
