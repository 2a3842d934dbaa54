// Package lifecycle holds the small pieces every role's run loop shares: sleeping
// that ends with its context, and a grace period for work in hand at shutdown.
package lifecycle

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// GraceContext returns a context for work already taken (a message being
// sequenced, a batch being written) so a stopping instance finishes and acks it
// rather than leaving it to be redelivered: it ends grace after ctx does, as soon as
// alive reports false after ctx ended (the NATS connection is closed: nothing could
// be acked any more), or when the returned cancel is called.
func GraceContext(ctx context.Context, grace time.Duration, alive func() bool) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		deadline := time.Now().Add(grace)
		for work.Err() == nil {
			if !alive() || time.Now().After(deadline) {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return work, func() {
		stop()
		cancel()
	}
}
