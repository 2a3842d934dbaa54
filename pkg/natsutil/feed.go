package natsutil

import (
	"context"
	"time"

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
		// "The notifier's open windows"). An idle consumer now sends one pull
		// request every 5 s.
		it, err := cons.Messages(jetstream.PullMaxMessages(max), jetstream.PullExpiry(5*time.Second), jetstream.WithMessagesErrOnMissingHeartbeat(false))
		if err != nil {
			log.Warn("pull failed; retrying", zap.Error(err))
			lifecycle.Sleep(ctx, 500*time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			m, err := it.Next(jetstream.NextContext(ctx))
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
