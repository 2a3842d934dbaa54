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
// purges, about once every PurgeInterval, what every partition has acked: every
// message below it was sequenced (or refused, or terminated) and acked, and none is
// read again (a takeover catch-up reads from the ack floor up). Purging is
// idempotent and only ever removes acked messages, so every sequencer instance runs
// a janitor, for every partition, whoever holds it. On an old NATTER_IN that kept
// WorkQueue retention, acked messages are gone already and the purges find nothing.
//
// One purge of the whole stream up to a bound, not one per partition: a purge
// filtered by subject makes a memory stream (the default) walk its messages
// (memStore.filteredStateLocked), so sixteen of them a second cost 12 % of the
// server's CPU at 3,000 msg/s, and more the longer the backlog (found by natter
// bench: past saturation the purges' cost grew with the queue until acks timed
// out). The bound is the lowest ack floor of the partitions with work in hand
// (messages pending delivery or ack), and at most the stream's last seq read before
// the consumers: a partition with nothing in hand has acked every message of its
// own up to there. Every PurgeFilteredEvery rounds, a partition acked past the
// bound is also purged on its own, so that one stuck partition does not keep every
// other's acked messages (and the stream's size cap) forever.

// PurgeInterval is how often the janitor purges acked ingress. Tests shorten it.
var PurgeInterval = time.Second

// PurgeFilteredEvery is how many rounds pass between the per-partition purges of
// partitions acked past the common bound.
var PurgeFilteredEvery = 10

// janitorState is what the janitor remembers between rounds. Owned by it.
type janitorState struct {
	purged    uint64   // the stream seq the last whole-stream purge reached
	filtered  []uint64 // each partition's last filtered purge (ack floor)
	delivered []uint64 // each consumer's last delivered stream seq seen (ingressreset.go)
	floors    []uint64 // this round's ack floors
	failing   bool     // the last round failed (logged once)
	round     int
}

// janitor purges the acked ingress of every partition until ctx ends. cons[p] is
// partition p's consumer.
func (s *Sequencer) janitor(ctx context.Context, cons []jetstream.Consumer) {
	n := len(cons)
	st := &janitorState{filtered: make([]uint64, n), delivered: make([]uint64, n), floors: make([]uint64, n)}
	t := time.NewTicker(PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st.round++
		if err := s.purgeRound(ctx, cons, st); err != nil {
			if ctx.Err() == nil && !st.failing {
				// The next round purges what this one left; while purges fail,
				// NATTER_IN grows.
				s.log.Warn("purge of acked ingress failed; retrying every interval", zap.Error(err))
			}
			st.failing = true
			continue
		}
		st.failing = false
	}
}

// purgeRound purges what every partition acked (see above), creating NATTER_IN or
// a consumer again when it is gone (ingressreset.go).
func (s *Sequencer) purgeRound(ctx context.Context, cons []jetstream.Consumer, st *janitorState) error {
	info, err := s.inS.Info(ctx)
	if ingressGone(err) {
		for p := range cons {
			if err := s.restoreIngress(ctx, p, p == 0); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	last := info.State.LastSeq // read before the consumers: see above
	if last < st.purged {      // a new stream, numbering from 1
		st.purged = 0
		clear(st.filtered)
	}
	bound := last
	for p, c := range cons {
		ci, err := c.Info(ctx)
		if ingressGone(err) {
			if err := s.restoreIngress(ctx, p, true); err != nil {
				return err
			}
			return nil // next round
		}
		if err != nil {
			return fmt.Errorf("consumer info: %w", err)
		}
		s.checkRestarted(p, ci, &st.delivered[p])
		st.floors[p] = ci.AckFloor.Stream
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			bound = min(bound, ci.AckFloor.Stream)
		}
	}
	if bound > st.purged {
		// "Up to but not including" the given sequence: the bound itself goes too.
		if err := s.inS.Purge(ctx, jetstream.WithPurgeSequence(bound+1)); err != nil {
			return fmt.Errorf("purge below %d: %w", bound+1, err)
		}
		st.purged = bound
	}
	if st.round%PurgeFilteredEvery != 0 {
		return nil
	}
	for p, floor := range st.floors {
		if floor <= st.purged || floor <= st.filtered[p] {
			continue
		}
		err := s.inS.Purge(ctx, jetstream.WithPurgeSubject(s.deps.Subjects.InPartitionFilter(p)),
			jetstream.WithPurgeSequence(floor+1))
		if err != nil {
			return fmt.Errorf("purge %s below %d: %w", s.deps.Subjects.InPartition(p), floor+1, err)
		}
		st.filtered[p] = floor
	}
	return nil
}
