package sequencer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Bulk removal of sequenced ingress: acking no longer removes a message, so the
// janitor removes what every partition has acked, many at a time.
//
// NATTER_IN has Limits retention (pkg/natsutil: InStreamConfig): an ack no longer
// removes the message from the file store, which with sync=always cost a synced
// tombstone, often a message-block delete and create, per ack. Instead the janitor
// purges, about once every PurgeInterval, each partition's messages below its
// consumer's ack floor: every one of them was sequenced (or refused, or terminated)
// and acked, and none is read again (a takeover catch-up reads from the ack floor
// up). Purging is idempotent and only ever removes acked messages, so every
// sequencer instance runs a janitor, for every partition, whoever holds it. On an
// old NATTER_IN that kept WorkQueue retention, acked messages are gone already and
// the purges find nothing.

// PurgeInterval is how often the janitor purges acked ingress. Tests shorten it.
var PurgeInterval = time.Second

// janitor purges the acked ingress of every partition until ctx ends. cons[p] is
// partition p's consumer.
func (s *Sequencer) janitor(ctx context.Context, cons []jetstream.Consumer) {
	purged := make([]uint64, len(cons))    // ack floor (stream seq) of each partition's last purge
	failing := make([]bool, len(cons))     // the partition's last purge failed (logged once)
	delivered := make([]uint64, len(cons)) // the consumer's last delivered stream seq seen (ingressreset.go)
	t := time.NewTicker(PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		restored := false // this round: logged once, not per partition
		for p, c := range cons {
			floor, err := s.purgeAcked(ctx, p, c, purged[p], &delivered[p])
			if ingressGone(err) {
				err = s.restoreIngress(ctx, p, !restored) // ingressreset.go
				purged[p], delivered[p], restored = 0, 0, true
			}
			if err != nil {
				if ctx.Err() == nil && !failing[p] {
					// The next round purges what this one left; while purges fail,
					// NATTER_IN grows.
					s.log.Warn("purge of acked ingress failed; retrying every interval", zap.Int("partition", p), zap.Error(err))
				}
				failing[p] = true
				continue
			}
			purged[p], failing[p] = floor, false
		}
	}
}

// purgeAcked purges partition p's ingress messages at or below its consumer's ack
// floor, unless the floor is still done (the floor of the last purge). It returns
// the floor purged to (done when it purged nothing). *delivered is the consumer's
// delivered stream seq the last time it looked; a lower one now means NATTER_IN
// numbers from 1 again (ingressreset.go).
func (s *Sequencer) purgeAcked(ctx context.Context, p int, cons jetstream.Consumer, done uint64, delivered *uint64) (uint64, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return done, fmt.Errorf("consumer info: %w", err)
	}
	s.checkRestarted(p, info, delivered) // ingressreset.go
	floor := info.AckFloor.Stream
	if floor == 0 || floor == done {
		return done, nil
	}
	// "Up to but not including" the given sequence: the floor itself goes too.
	err = s.inS.Purge(ctx, jetstream.WithPurgeSubject(s.deps.Subjects.InPartitionFilter(p)),
		jetstream.WithPurgeSequence(floor+1))
	if err != nil {
		return done, fmt.Errorf("purge %s below %d: %w", s.deps.Subjects.InPartition(p), floor+1, err)
	}
	return floor, nil
}
