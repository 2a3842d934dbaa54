package publish

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/answer"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// MaxBatch is the most messages one PublishBatch takes.
const MaxBatch = 1000

// BatchError is PublishBatch's error when some messages of a batch were not
// sequenced: Errs[i] is message i's error (as Publish would return it), nil for
// each message that was.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	failed, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	return fmt.Sprintf("publish: %d of %d messages not sequenced (first: %v)", failed, len(e.Errs), first)
}

// Unwrap lets errors.Is and errors.As see every message's error (ErrNoAnswer, a
// refusal's *protocol.Error, ...).
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// PublishBatch publishes ms as Publish publishes each, pipelined: every message
// is sent to NATTER_IN before any acknowledgement is awaited, so a batch costs
// about one round trip to the stream and one to the sequencer instead of one of
// each per message. Messages of one chat keep their order in the batch. Every
// message is validated first: if one is invalid nothing is published and the
// error (wrapping ErrInvalid) names its index.
//
// It returns one Ack per message, in the order of ms. If some were not
// sequenced, the error is a *BatchError saying which and why; the others' Acks
// are valid. As with Publish, publishing the same messages (same chat and
// MessageID) again is safe: each is sequenced once, and a resend is answered with
// its original seq and Duplicate.
func (p *Publisher) PublishBatch(ctx context.Context, ms []*protocol.Message) ([]Ack, error) {
	if len(ms) > MaxBatch {
		return nil, fmt.Errorf("%w: %d messages in one batch, at most %d", ErrInvalid, len(ms), MaxBatch)
	}
	for i, m := range ms {
		if m == nil {
			return nil, fmt.Errorf("%w: message %d is nil", ErrInvalid, i)
		}
		if err := prepare(m); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
	}
	type answered struct {
		i int
		f *protocol.Frame
	}
	got := make(chan answered, len(ms))
	acks := make([]Ack, len(ms))
	errs := make([]error, len(ms))
	waits := make([]*answer.Wait, len(ms))
	defer func() {
		for _, w := range waits {
			if w != nil {
				w.Cancel()
			}
		}
	}()
	outs := make([]*nats.Msg, len(ms))
	for i, m := range ms {
		w, err := p.answers.Expect(m.ChatID, m.MessageID, func(f *protocol.Frame) { got <- answered{i, f} })
		if err != nil {
			errs[i] = fmt.Errorf("publish %s/%s: %w", m.ChatID, m.MessageID, err)
			continue
		}
		waits[i] = w
		outs[i] = p.ingress(m, w)
	}
	pending := 0
	if p.storeAtomically(ctx, outs) {
		for i := range outs {
			if outs[i] != nil {
				pending++
			}
		}
	} else {
		pending = p.storeEach(ctx, ms, outs, waits, errs)
	}
	// Sequenced, or refused.
	for done := false; pending > 0 && !done; {
		select {
		case a := <-got:
			if errs[a.i] != nil || acks[a.i].MessageID != "" {
				continue // an answer to a send already given up on
			}
			pending--
			m := ms[a.i]
			if a.f.Type == protocol.FrameError {
				errs[a.i] = fmt.Errorf("publish %s/%s: refused: %w", m.ChatID, m.MessageID, answer.Err(a.f))
				continue
			}
			acks[a.i] = Ack{MessageID: m.MessageID, Seq: a.f.Seq, Duplicate: a.f.Duplicate}
		case <-ctx.Done():
			done = true
		}
	}
	failed := false
	for i := range ms {
		if errs[i] == nil && acks[i].MessageID == "" {
			errs[i] = fmt.Errorf("publish %s/%s: %w (%w)", ms[i].ChatID, ms[i].MessageID, ErrNoAnswer, ctx.Err())
		}
		failed = failed || errs[i] != nil
	}
	if failed {
		return acks, &BatchError{Errs: errs}
	}
	return acks, nil
}

// minAtomicBatch is the fewest messages PublishBatch stores as one JetStream
// atomic batch: NATTER_IN (R1, sync always) then fsyncs the batch once instead of
// once per message, but stages it in a store of its own, which costs about as
// much as ten to fifteen plain publishes (the gateway's ingressMinBatch, measured
// by its BenchmarkIngressCommit).
const minAtomicBatch = 16

// storeAtomically stores outs (nil entries skipped) in NATTER_IN as one atomic
// batch and reports whether it did: all of them are then stored. On false none
// or some may be: storeEach publishes them again, one by one, which is safe, as
// each keeps its Nats-Msg-Id and the sequencer answers a resend with the
// original seq.
func (p *Publisher) storeAtomically(ctx context.Context, outs []*nats.Msg) bool {
	js, ok := p.js.(jetstream.JetStream)
	if !ok {
		return false
	}
	msgs := make([]*nats.Msg, 0, len(outs))
	for _, m := range outs {
		if m != nil {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) < minAtomicBatch {
		return false
	}
	bctx, cancel := context.WithTimeout(ctx, 2*natsutil.PublishAttemptTimeout)
	defer cancel()
	if _, err := jetstreamext.PublishMsgBatch(bctx, js, msgs, jetstreamext.BatchFlowControl{}); err == nil {
		return true
	}
	for _, m := range msgs { // published alone, a batch header would make it a batch again
		m.Header.Del(jetstreamext.BatchIDHeader)
		m.Header.Del(jetstreamext.BatchSeqHeader)
		m.Header.Del(jetstreamext.BatchCommitHeader)
	}
	return false
}

// storeEach publishes outs (nil entries skipped) each on its own, all at once
// so the server stores them back to back, waits for each one's outcome, and
// returns how many were stored; errs gets the others' errors and their waits are
// cancelled.
func (p *Publisher) storeEach(ctx context.Context, ms []*protocol.Message, outs []*nats.Msg, waits []*answer.Wait, errs []error) int {
	futures := make([]jetstream.PubAckFuture, len(outs))
	for i, out := range outs {
		if out == nil {
			continue
		}
		var err error
		if futures[i], err = p.js.PublishMsgAsync(out); err != nil {
			errs[i] = storeErr(ms[i], err)
			waits[i].Cancel()
		}
	}
	stored := 0
	for i, fut := range futures {
		if fut == nil {
			continue
		}
		select {
		case <-fut.Ok():
			stored++
			continue
		case err := <-fut.Err():
			errs[i] = storeErr(ms[i], err)
		case <-ctx.Done():
			errs[i] = fmt.Errorf("publish %s/%s: not known to be stored: %w", ms[i].ChatID, ms[i].MessageID, ctx.Err())
		}
		waits[i].Cancel()
	}
	return stored
}
