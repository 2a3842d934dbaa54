package sequencer

import (
	"context"
	"time"

	"github.com/natter-chat/natter/pkg/lifecycle"
)

// ShutdownGrace is how long work already taken (a message being sequenced, a batch
// being written) may go on after Run's context ends, so a stopping instance
// finishes and acks it rather than leaving it to be redelivered. Tests shorten it.
var ShutdownGrace = 10 * time.Second

// graceContext returns a context for in-flight work that outlives ctx by at most
// ShutdownGrace (see lifecycle.GraceContext).
func graceContext(ctx context.Context, alive func() bool) (context.Context, context.CancelFunc) {
	return lifecycle.GraceContext(ctx, ShutdownGrace, alive)
}
