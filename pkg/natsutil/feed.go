package natsutil

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"go.uber.org/zap"
)

// Feed pulls cons's messages into out, at most max outstanding, until ctx ends,
// restarting the pull after errors. Workers reading out ack the messages.
func Feed(ctx context.Context, cons jetstream.Consumer, max int, out chan<- jetstream.Msg, log *zap.Logger) {
	for ctx.Err() == nil {
		// Missed heartbeats re-issue the pull inside the iterator instead of ending
		// it: on a busy machine they are not a fault worth a warning. Each pull
		// request lives 5 s, not nats.go's 30 s: on a saturated machine the notifier
		// sometimes got nothing more until its pull expired (22–56 s behind in 6 of
		// 26 runs with 16 workers, none in 10 with 5 s pulls; docs/performance.md,
		// "The notifier's open windows"). That was the iterator's race, which Next
		// now works around. An idle consumer sends one pull request every 5 s.
		it, err := cons.Messages(jetstream.PullMaxMessages(max), jetstream.PullExpiry(5*time.Second), jetstream.WithMessagesErrOnMissingHeartbeat(false))
		if err != nil {
			log.Warn("pull failed; retrying", zap.Error(err))
			lifecycle.Sleep(ctx, 500*time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			m, err := Next(ctx, it)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("pull iterator ended; restarting", zap.Error(err))
				}
				break
			}
			select {
			case out <- m:
			case <-ctx.Done():
			}
		}
		it.Stop()
	}
}

// RecheckWait is how long Next waits before it has the iterator look again whether
// to ask the server for more.
var RecheckWait = 200 * time.Millisecond

// Next returns its next message, as it.Next(jetstream.NextContext(ctx)) does, but
// without the iterator's stall. nats.go's Messages iterator (v1.55, v1.56) asks the
// server for more only from inside Next, when its count of messages asked for and
// not yet taken falls below half the pull, and only if its own goroutine is not
// still sending the previous request. On a saturated machine that goroutine can be
// descheduled after sending, while Next takes the whole answer; every check then
// skips, the count reaches 0, and Next waits with nothing asked for until the
// missed heartbeats reset it (2 × the heartbeat, half the pull expiry): 5 s for
// the notifier's pulls, stalls measured in docs/performance.md ("The iterator that
// stopped asking"). Next waits RecheckWait first and then calls the iterator
// again, which checks again with the sender done; only then does it wait without a
// bound, the heartbeat check included.
func Next(ctx context.Context, it jetstream.MessagesContext) (jetstream.Msg, error) {
	m, err := it.Next(jetstream.NextMaxWait(RecheckWait))
	if !errors.Is(err, nats.ErrTimeout) {
		return m, err
	}
	return it.Next(jetstream.NextContext(ctx))
}
