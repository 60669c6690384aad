package queue

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// maxVisibilityDelay is Azure Queue Storage's longest visibility timeout on enqueue: 7 days.
const maxVisibilityDelay = 7 * 24 * time.Hour

// delayedTTL is how long a delayed message outlives its delay: long enough for the host to pick it
// up after an outage of the Function App, short enough not to keep a forgotten message for ever.
const delayedTTL = 7 * 24 * time.Hour

// EnqueueDelayed adds text to the queue, invisible for delay (rounded up to a whole second, at
// most 7 days) and kept for a week after it becomes visible.
func (c *Client) EnqueueDelayed(ctx context.Context, text []byte, delay time.Duration) error {
	delay = min(max(delay, 0), maxVisibilityDelay)
	vis := int32(math.Ceil(delay.Seconds()))
	ttl := int32((delay + delayedTTL) / time.Second)
	opts := &azqueue.EnqueueMessageOptions{TimeToLive: &ttl}
	if vis > 0 {
		opts.VisibilityTimeout = &vis
	}
	if err := send(ctx, c.queue, text, opts); err != nil {
		return fmt.Errorf("enqueue to %s: %w", c.name, err)
	}
	return nil
}
