package sequencer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// NATTER_IN numbering from 1 again.
//
// NATTER_IN is a memory stream by default (natsutil.InStreamConfig). A single NATS
// server's restart (or the embedded server's JetStream restart after a full disk)
// drops it with its consumers, and a cluster that loses every node at once brings it
// back empty; either way its stream seqs start again at 1. Nothing acknowledged is
// lost (an ack means sequenced into NATTER_LOG), but what the sequencer keeps about
// ingress seqs must not outlive the stream it came from:
//   - the exactly-once check is by message ID; only the answer's duplicate flag
//     looks at the ingress message, named by seq and store time (inRef, ids.go);
//   - each partition's catch-up mark (batcher.caughtUp) is a stream seq below which
//     everything was sequenced: voided when a reset is seen, so the next delivery
//     catches up from the ack floor;
//   - the janitor's purge floors (purge.go) only ever purge at or below the
//     consumer's current ack floor, which restarts with the stream;
//   - a vanished stream or consumer is created again by the janitor, which asks
//     every partition's consumer for its state about once a second anyway.
//
// A reset shows as a consumer whose delivered stream seq went down, or whose stream
// or consumer is gone; catchUp also voids a mark above everything the consumer
// ever delivered.

// ingressGone reports whether err says NATTER_IN or a partition's consumer does not
// exist.
func ingressGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// restoreIngress creates NATTER_IN (when Deps.EnsureIngress is set) and partition
// p's consumer again, and voids every catch-up mark. It logs what it did when log
// is set.
func (s *Sequencer) restoreIngress(ctx context.Context, p int, log bool) error {
	s.inResets.Add(1)
	if s.deps.EnsureIngress != nil {
		if err := s.deps.EnsureIngress(ctx); err != nil {
			return fmt.Errorf("create %s again: %w", subjects.InStream, err)
		}
	}
	if _, err := s.inS.CreateOrUpdateConsumer(ctx, ConsumerConfig(s.cfg, s.deps.Subjects, p)); err != nil {
		return fmt.Errorf("create consumer %s again: %w", subjects.SequencerConsumer(p), err)
	}
	if !log {
		return nil
	}
	s.log.Warn("NATTER_IN or its consumer was gone (a memory stream does not outlive its NATS server's restart): created again; "+
		"sends it held were not acknowledged and their clients resend them", zap.Int("partition", p))
	return nil
}

// checkRestarted counts a reset when partition p's consumer (info) delivered less of
// the stream than it had (*delivered, then updated).
func (s *Sequencer) checkRestarted(p int, info *jetstream.ConsumerInfo, delivered *uint64) {
	if info.Delivered.Stream < *delivered {
		s.inResets.Add(1)
		s.log.Info("an ingress consumer delivered less than before (NATTER_IN restarted empty, or a consumer leader behind); catch-up marks voided", zap.Int("partition", p),
			zap.Uint64("delivered_before", *delivered), zap.Uint64("delivered", info.Delivered.Stream))
	}
	*delivered = info.Delivered.Stream
}

// voidMarksOnReset clears b's catch-up marks when NATTER_IN was reset since they
// were set, so the next delivery catches up from the consumer's ack floor.
func (b *batcher) voidMarksOnReset() {
	if r := b.s.inResets.Load(); r != b.resets {
		b.resets = r
		b.caughtUp, b.nextMark, b.lastDelivery = 0, 0, 0
	}
}
