package sequencer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// The log committer appends the partitions' batches to NATTER_LOG together.
//
// Why: an atomic batch costs a fixed ≈ 18 ms on an R1 file stream whatever its
// size (the server stages it in a file store of its own, created, synced and
// removed per batch), and the stream commits batches one after another. With each
// partition committing its own batch, a message waited for every other
// partition's batch to commit before its own: with 16 partitions ≈ 16 × 30 ms at
// 1,500 msg/s, about half a second between NATTER_IN and the log, with the server
// at less than one of two cores. One committer takes whatever batches the
// partitions have ready when the previous commit ends and appends them as one
// atomic batch, so the fixed cost is paid once per round, not once per partition:
// group commit across partitions.
//
// Each partition still decides its own messages (fences included) and waits for
// its own batch: a combined batch the server refuses is appended again batch by
// batch, so one partition's fence failure (a takeover) only sends that
// partition's messages down the one-at-a-time path.

// maxCommit bounds the messages of one combined batch. Combining saves the fixed
// cost of the batches it merges, but every batch of the round then waits for the
// whole commit (≈ 0.4 ms per message): at 1,500 msg/s, rounds of up to 1,000
// messages doubled the p50 that rounds of separate batches gave, while at 750 msg/s
// (small batches) combining cut the p99 by 2-30×. So batches are combined up to
// one partition's largest batch (maxBatch), well below the server's atomic batch
// limit (max_batch_size, 1,000); a batch of that size always goes alone.
const maxCommit = maxBatch

// logBatch is one partition's batch handed to the committer.
type logBatch struct {
	msgs []*nats.Msg
	last uint64 // log seq of the last message, once committed
	err  error
	done chan struct{}
}

// logCommitter serializes the partitions' log appends into combined atomic batches.
type logCommitter struct {
	js      jetstream.JetStream
	reqs    chan *logBatch
	stopped chan struct{} // closed when run returns
	// committed and combined count commits and the partition batches they carried
	// (tests, and the ratio says how much the combining saves); attempts counts
	// atomic batches published, retries included.
	committed, combined, attempts atomic.Uint64
}

func newLogCommitter(js jetstream.JetStream) *logCommitter {
	return &logCommitter{js: js, reqs: make(chan *logBatch), stopped: make(chan struct{})}
}

// append appends msgs as one atomic batch, possibly together with other
// partitions' batches, and returns the log seq of its last message. It waits for
// the commit whatever ctx does (a commit is bounded by its own timeout), so a
// caller never mistakes a batch still in flight for one that failed; it returns
// ctx's error only if the batch was never handed over.
func (c *logCommitter) append(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	r := &logBatch{msgs: msgs, done: make(chan struct{})}
	select {
	case c.reqs <- r:
	case <-c.stopped:
		return 0, fmt.Errorf("log committer stopped: %w", context.Canceled)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	<-r.done
	return r.last, r.err
}

// run commits batches until ctx ends.
func (c *logCommitter) run(ctx context.Context) {
	defer close(c.stopped)
	var next *logBatch // taken from reqs but left for the next round: it did not fit
	for {
		group := make([]*logBatch, 0, 8)
		if next != nil {
			group, next = append(group, next), nil
		} else {
			select {
			case r := <-c.reqs:
				group = append(group, r)
			case <-ctx.Done():
				return
			}
		}
		n := len(group[0].msgs)
	more:
		for n < maxCommit {
			select {
			case r := <-c.reqs:
				if n+len(r.msgs) > maxCommit {
					next = r
					break more
				}
				group = append(group, r)
				n += len(r.msgs)
			default:
				break more
			}
		}
		c.commit(ctx, group, n)
	}
}

// commit appends group's batches as one atomic batch of n messages and completes
// them; if that fails, it appends them batch by batch, so each gets its own
// outcome.
func (c *logCommitter) commit(ctx context.Context, group []*logBatch, n int) {
	c.committed.Add(1)
	c.combined.Add(uint64(len(group)))
	c.attempts.Add(1)
	if len(group) == 1 {
		r := group[0]
		r.last, r.err = publishBatch(ctx, c.js, r.msgs)
		close(r.done)
		return
	}
	all := make([]*nats.Msg, 0, n)
	for _, r := range group {
		all = append(all, r.msgs...)
	}
	last, err := publishBatch(ctx, c.js, all)
	if err != nil {
		// The server refused the batch's content (a fence, most likely): one
		// partition's batch is at fault, so each is tried alone. Anything else (a
		// timeout, no log leader during an election) would fail each of them the same
		// way, one timeout after another while every partition waits: each gets the
		// error and falls back on its own, in parallel, as before the committer.
		var apiErr *jetstream.APIError
		retry := errors.As(err, &apiErr)
		for _, r := range group {
			if retry {
				c.attempts.Add(1)
				r.last, r.err = publishBatch(ctx, c.js, r.msgs)
			} else {
				r.err = err
			}
			close(r.done)
		}
		return
	}
	// The batch's messages have consecutive log seqs in the order given.
	seq := last - uint64(n)
	for _, r := range group {
		seq += uint64(len(r.msgs))
		r.last = seq
		close(r.done)
	}
}

// publishBatch appends msgs with one atomic batch and returns the log seq of the
// last one. No flow control: nothing is stored before the commit, which is acked.
// One short attempt: a batch that found no NATTER_LOG leader (an election) falls
// back to one append at a time, and those retry (natsutil.Publish). ctx ending
// does not cut a commit short (see logCommitter.append); the timeout bounds it.
func publishBatch(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*natsutil.PublishAttemptTimeout)
	defer cancel()
	ack, err := jetstreamext.PublishMsgBatch(actx, js, msgs, jetstreamext.BatchFlowControl{})
	if err != nil {
		return 0, err
	}
	if ack.BatchSize != uint64(len(msgs)) || ack.Sequence < ack.BatchSize {
		// Committed, but we cannot tell the seqs: reload the chats from the log.
		return 0, fmt.Errorf("batch ack for %d messages: seq %d, count %d", len(msgs), ack.Sequence, ack.BatchSize)
	}
	return ack.Sequence, nil
}
