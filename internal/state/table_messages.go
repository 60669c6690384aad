package state

// Queue messages' progress on the table.

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

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
	e, err := t.messageEntity(key, progress, done)
	if err != nil {
		return err
	}
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	if err := t.upsert(ctx, e); err != nil {
		return fmt.Errorf("save message progress: %w", err)
	}
	return nil
}

// addMessageProgress saves a message's progress only if the table has none for it (progress
// written back after an outage never replaces a later delivery's).
func (t *Table) addMessageProgress(ctx context.Context, key MessageKey, progress []byte, done bool) error {
	e, err := t.messageEntity(key, progress, done)
	if err != nil {
		return err
	}
	ctx, cancel := t.opContext(ctx)
	defer cancel()
	if _, err := t.add(ctx, e); err != nil && !hasCode(err, aztables.EntityAlreadyExists) {
		return fmt.Errorf("add message progress: %w", err)
	}
	return nil
}

// messageEntity is a message's progress as stored, kept MessageTTL from now.
func (t *Table) messageEntity(key MessageKey, progress []byte, done bool) (entity, error) {
	e := newEntity(messageKey(key), kindMessage, t.now().Add(MessageTTL))
	e.props[propDone] = done
	return e, e.setData(progress)
}
