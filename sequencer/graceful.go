package sequencer

import (
	"context"
	"time"
)

// ShutdownGrace is how long work already taken (a message being sequenced, a batch
// being written) may go on after Run's context ends, so a stopping instance
// finishes and acks it rather than leaving it to be redelivered. Tests shorten it.
var ShutdownGrace = 10 * time.Second

// graceContext returns a context for in-flight work: it ends ShutdownGrace after
// ctx does, as soon as alive reports false after ctx ended (the NATS connection is
// closed: nothing could be acked any more), or when the returned cancel is called.
func graceContext(ctx context.Context, alive func() bool) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		deadline := time.Now().Add(ShutdownGrace)
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
