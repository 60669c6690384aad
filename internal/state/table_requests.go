package state

// Request claims on the table: one conditional write per step, the lease carrying the ETag.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

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
