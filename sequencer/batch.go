package sequencer

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Batched appends.
//
// With sync=always every JetStream append waits for its own fsync, so a partition
// appending one message at a time is capped at one message per fsync. Instead, each
// partition takes every ingress message already delivered to it (after the one it
// waited for, up to maxBatch, never waiting for more), decides each in delivery
// order against the chat states exactly as the one-at-a-time path does (membership,
// exactly-once, operation and reply checks, refusals), and appends the resulting log
// messages in ONE JetStream atomic batch: an R1 file store syncs once per batch.
// Only once the batch is committed are the chat states advanced (message i of a
// batch whose ack names last stream seq L and count n has seq L-n+1+i), the
// messages fanned out and refusals sent, and the ingress messages acked, in delivery
// order. A failed batch left nothing in the log (atomic): the states of its chats
// are dropped and its messages go through the one-at-a-time path (sequence), which
// handles the fence, duplicates and retries.
//
// Within a batch:
//   - a chat's first log message carries the fence (Nats-Expected-Last-Subject-
//     Sequence: its last log seq); the server refuses the header on later ones of
//     the same subject, and they need none, the batch being atomic;
//   - a message is decided against its chat's state plus what the batch holds for
//     the chat (last seq, message IDs), so seqs stay contiguous and a resend or
//     redelivery of a message already in the batch is not appended twice; the
//     store's answers for the batch's message IDs are asked in one call first
//     (prefetch, ids.go);
//   - the batch is cut (what is pending is committed first) before a message whose
//     decision needs the log to be current, which then takes the one-at-a-time path
//     or starts the next batch: a system event (its membership change is written to
//     the store before it is appended), an edit, delete, reaction or reply in a chat
//     with messages in the batch (its target may be one of them), a delivery that
//     needs a takeover catch-up, and a message whose chat state cannot be loaded.
//
// An atomic batch is not free: on an R1 file store the server stages it in a store of
// its own (a directory, two synced metadata files, a synced block, removed after the
// commit), a fixed cost of several fsyncs, whatever the stream's sync policy. A batch
// with fewer than Config.BatchMin log messages is therefore appended one message at
// a time instead (its messages decided again by the one-at-a-time path: nothing of
// them was sent or acked yet). At low load drains are small and nothing changes;
// under load a backlog builds up while the partition waits for its appends, drains
// grow past BatchMin, and batching takes over. Measured on the reference machine
// (ext4, disk shared with other loads, sync=always): k single appends took about
// 1.7·k ms, an atomic batch of k about 18 + 0.4·k ms, hence the default of 16.

// maxBatch bounds the ingress messages drained, hence the log messages appended, in
// one batch: well below the server's atomic batch limit (1,000 by default), and a
// few milliseconds of work. Each partition has at most one batch in flight (the
// server allows 50 per stream by default).
const maxBatch = 256

// readDeliveries moves the iterator's messages to out until it ends, then closes out.
func readDeliveries(log *zap.Logger, it jetstream.MessagesContext, out chan<- jetstream.Msg) {
	defer close(out)
	for {
		msg, err := natsutil.Next(context.Background(), it) // not it.Next(): its stall (natsutil.Next)
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				log.Warn("ingress iterator ended; restarting", zap.Error(err))
			}
			return
		}
		out <- msg
	}
}

// drainDeliveries appends to into the deliveries already waiting in ch, up to
// maxBatch in all, without waiting for more.
func drainDeliveries(ch <-chan jetstream.Msg, into []jetstream.Msg) []jetstream.Msg {
	for len(into) < maxBatch {
		select {
		case msg, ok := <-ch:
			if !ok {
				return into
			}
			into = append(into, msg)
		default:
			return into
		}
	}
	return into
}

// batcher builds and commits a partition's batches. Owned by the partition's
// goroutine.
type batcher struct {
	s    *Sequencer
	log  *zap.Logger
	p    int
	cons jetstream.Consumer
	// lastDelivery is the consumer sequence of the previous delivery of the current
	// iterator (0: none yet).
	lastDelivery uint64
	// lastPin is the Nats-Pin-Id of the previous delivery: the server gives a new
	// one each time it pins the partition to a client.
	lastPin string
	// lastAt is when the previous delivery was taken.
	lastAt time.Time
	// caughtUp is the partition's catch-up mark (Sequencer.catchUp): every message
	// of the partition below this stream sequence has been sequenced.
	caughtUp uint64
	// nextMark is what caughtUp becomes once the delivery in hand is sequenced
	// (0: it does not move it).
	nextMark uint64
	// resets is the Sequencer's inResets when the marks above were last valid.
	resets uint64

	// The batch being built: every decided message in delivery order, the log
	// messages to append in the same order, and what the batch holds per chat.
	items []batchItem
	out   []*nats.Msg
	chats map[string]*pendingChat
	start time.Time // when the batch's first message was taken
	// pre holds the store's answers for the message IDs of what process was given.
	pre idPrefetch
}

// pendingChat is a chat with log messages in the batch being built.
type pendingChat struct {
	st      *chatState
	lastSeq uint64            // seq of the chat's last message in the batch
	ids     map[string]uint64 // message ID -> seq of the chat's messages in the batch
}

// batchItem is one decided ingress message of the batch being built.
type batchItem struct {
	msg     jetstream.Msg
	d       *delivery        // msg decoded, for the one-at-a-time path (handle)
	stored  time.Time        // when NATTER_IN stored it (metrics)
	in      inRef            // the ingress message
	append  bool             // m (encoded as data) is in the batch's log messages
	invalid error            // never sequenceable: refuse (refuseInvalid) and Term
	perr    *protocol.Error  // refused: tell the sender
	answer  string           // where the publisher waits for the decision (answer.go)
	dup     prior            // sequenced before (dup.seq > 0): answer it so
	m       protocol.Message // appended, refused or invalid
	data    []byte
	pc      *pendingChat
}

func newBatcher(s *Sequencer, log *zap.Logger, p int, cons jetstream.Consumer) *batcher {
	return &batcher{s: s, log: log, p: p, cons: cons, chats: make(map[string]*pendingChat)}
}

// process sequences and acks msgs, delivered in this order. It returns when every
// one is acked, or when ctx ends (those not acked are then redelivered to the
// partition's next holder).
func (b *batcher) process(ctx context.Context, msgs []jetstream.Msg) {
	if len(msgs) == 1 {
		meta, err := msgs[0].Metadata()
		b.catchUpBefore(ctx, msgs[0], meta, err)
		b.s.handle(ctx, b.log, msgs[0], nil, nil)
		return
	}
	b.start = time.Now()
	// Each delivery is decoded once, here: the ID prefetch, the decisions and the
	// one-at-a-time path (a drain under BatchMin, a system event, a fallback) all
	// read the decoded message.
	ds := make([]delivery, len(msgs))
	for i, msg := range msgs {
		ds[i] = b.s.decodeDelivery(msg)
	}
	b.prefetchIDs(ctx, ds)
	defer b.pre.reset()
	for i, msg := range msgs {
		if ctx.Err() != nil {
			break
		}
		b.add(ctx, msg, &ds[i])
	}
	b.flush(ctx)
}

// delivery is one delivered ingress message, decoded (decodeDelivery).
type delivery struct {
	meta    *jetstream.MsgMetadata
	metaErr error
	in      ingress
	m       protocol.Message
	err     error // decodeIngress's: the message can never be sequenced
}

// decodeDelivery reads msg's metadata and decodes it (decodeIngress).
func (s *Sequencer) decodeDelivery(msg jetstream.Msg) delivery {
	var d delivery
	if d.meta, d.metaErr = msg.Metadata(); d.metaErr != nil {
		return d
	}
	d.in = ingress{subject: msg.Subject(), data: msg.Data(), header: msg.Headers(), seq: d.meta.Sequence.Stream,
		stored: d.meta.Timestamp.UnixNano()}
	d.m, d.err = s.decodeIngress(&d.in)
	return d
}

// catchUpBefore sequences what is delivered but unacked below msg first, when it may
// exist: on the first delivery (we may have just taken the partition over from a
// holder that died with messages in hand), after a skipped delivery (the client
// library drops deliveries on a slow-consumer error; JetStream would redeliver them
// only after AckWait, behind newer messages of the same chats), when the pin
// changed, and after a pause (catchUpAfterPause). What the batch holds is committed
// first: the catch-up must see it sequenced.
//
// The pin and pause checks are not redundant: a partition can move to another instance and back
// while this instance's iterator lives on, and across a consumer leader change the
// consumer sequence of the deliveries made meanwhile may not show as a gap. Found by
// TestCrashes: the other holder was killed with two messages in hand, this one took
// the partition back, saw contiguous deliveries and sequenced newer messages first;
// the two came back after AckWait and were acked as already sequenced: lost.
func (b *batcher) catchUpBefore(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, metaErr error) {
	var delivery uint64
	if metaErr == nil {
		delivery = meta.Sequence.Consumer
	}
	pin := msg.Headers().Get(pinHeader)
	now := time.Now()
	b.voidMarksOnReset() // ingressreset.go
	// The previous delivery is sequenced now (or in the batch, which a catch-up
	// commits first).
	chained := b.nextMark != 0
	b.caughtUp = max(b.caughtUp, b.nextMark)
	b.nextMark = 0
	if b.lastDelivery == 0 || delivery != b.lastDelivery+1 || pin != b.lastPin || now.Sub(b.lastAt) > catchUpAfterPause {
		b.flush(ctx)
		b.s.retry(ctx, b.log, func() error { return b.s.catchUp(ctx, b.p, b.cons, msg, &b.caughtUp) })
		chained = true
	}
	if chained && metaErr == nil && meta.NumDelivered == 1 {
		// Delivered for the first time, right after a catch-up or after the
		// previous new delivery (the consumer delivers new messages in stream
		// order, so no message of the partition lies between the two): every
		// message below it is sequenced, and it will be before the next delivery.
		b.caughtUp = max(b.caughtUp, meta.Sequence.Stream)
		b.nextMark = meta.Sequence.Stream + 1
	}
	b.lastDelivery, b.lastPin, b.lastAt = delivery, pin, now
}

// pinHeader carries the pin ID of a pinned priority group's delivery.
const pinHeader = "Nats-Pin-Id"

// catchUpAfterPause: a delivery after a pause this long is caught up to. A NATS
// node's death pauses deliveries for the election (4 s or more), and deliveries in
// flight through that node are lost without a consumer-sequence gap showing (the
// iterator re-pulls after a missed heartbeat instead of ending); after a quiet
// spell the catch-up usually finds nothing to read, so it is cheap.
var catchUpAfterPause = 2 * time.Second

// add decides msg (decoded as d) into the batch, or commits the batch and sequences msg on its own
// when its decision needs the log to be current.
func (b *batcher) add(ctx context.Context, msg jetstream.Msg, d *delivery) {
	s := b.s
	b.catchUpBefore(ctx, msg, d.meta, d.metaErr)
	if d.metaErr != nil {
		b.alone(ctx, msg, d)
		return
	}
	in, m := &d.in, d.m
	it := batchItem{msg: msg, d: d, stored: d.meta.Timestamp, in: in.ref()}
	it.answer = in.answer
	switch {
	case d.err != nil:
		it.invalid, it.m = d.err, m
		b.items = append(b.items, it)
		return
	case m.MessageType == protocol.TypeSystem:
		b.alone(ctx, msg, d)
		return
	}
	pc := b.chats[m.ChatID]
	if pc != nil && (protocol.IsOperation(m.MessageType) || m.ReplyTo != "") {
		// Its target may be in the batch, and is looked up in the log.
		b.flush(ctx)
		pc = nil
	}
	fence := pc == nil // the chat's first log message in the batch
	if pc == nil {
		st, err := s.state(ctx, m.ChatID)
		if err != nil {
			b.alone(ctx, msg, d) // retries in place
			return
		}
		pc = &pendingChat{st: st, lastSeq: st.lastSeq}
	}
	if seq, ok := pc.ids[m.MessageID]; ok { // another ingress message of the batch
		it.dup, it.m = prior{seq: seq}, m
		b.items = append(b.items, it)
		return
	}
	if p, found, err := s.sequencedAs(ctx, pc.st, m.ChatID, m.MessageID, &b.pre); err != nil {
		b.alone(ctx, msg, d) // retries in place
		return
	} else if found {
		it.dup, it.m = p, m
		b.items = append(b.items, it)
		return
	}
	switch v, perr := s.check(ctx, pc.st, &m, in.trust); v {
	case refuse:
		it.perr, it.m = perr, m
	case drop:
		it.m = m // answered as changing nothing
	default:
		if fence {
			b.chats[m.ChatID] = pc
		}
		m.Seq = pc.lastSeq + 1
		s.stamp(pc.st, &m) // retention.go
		it.data = protocol.EncodeMessageFrame(&m)
		it.m, it.append, it.pc = m, true, pc
		b.out = append(b.out, s.logMsg(&m, it.data, it.in, fence, pc.st.lastLogSeq))
		pc.lastSeq = m.Seq
		if pc.ids == nil {
			pc.ids = make(map[string]uint64)
		}
		pc.ids[m.MessageID] = m.Seq
	}
	b.items = append(b.items, it)
}

// alone commits the batch, then sequences msg (decoded as d) one at a time.
func (b *batcher) alone(ctx context.Context, msg jetstream.Msg, d *delivery) {
	b.flush(ctx)
	b.s.handle(ctx, b.log, msg, d, &b.pre)
}

// flush appends the batch's log messages and, once they are committed, completes
// its messages in delivery order; if the append fails, it sequences them one at a
// time instead. It returns with the batch empty.
func (b *batcher) flush(ctx context.Context) {
	if len(b.items) == 0 {
		return
	}
	defer b.reset()
	if ctx.Err() != nil {
		return // unacked: redelivered to the partition's next holder
	}
	if len(b.out) > 0 && (b.s.cfg.BatchMin == 0 || len(b.out) < b.s.cfg.BatchMin) {
		for i := range b.items {
			b.s.handle(ctx, b.log, b.items[i].msg, b.items[i].d, &b.pre)
		}
		return
	}
	var last uint64
	if len(b.out) > 0 {
		var err error
		if last, err = b.append(ctx); err != nil {
			b.fallback(ctx, err)
			return
		}
	}
	s := b.s
	seq := last + 1 - uint64(len(b.out)) // log seq of the next appended message
	for i := range b.items {
		it := &b.items[i]
		var err error
		switch {
		case it.append:
			st := it.pc.st
			st.lastSeq, st.lastLogSeq = it.m.Seq, seq
			s.remember(ctx, st, it.m.MessageID, it.m.Seq, seq, it.in)
			seq++
			s.answerAck(it.answer, &it.m, it.m.Seq, false)
			s.fanout(st.members, &it.m, it.data)
			s.sequenced.Add(1)
			err = it.msg.Ack()
		case it.invalid != nil:
			s.refuseInvalid(it.msg.Subject(), it.answer, &it.m, it.invalid)
			err = it.msg.Term()
		case it.dup.seq > 0:
			in := ingress{seq: it.in.seq, stored: it.in.stored, answer: it.answer}
			s.duplicate(&in, &it.m, it.dup)
			err = it.msg.Ack()
		case it.perr != nil:
			s.reject(it.answer, it.m.SenderID, &it.m, it.perr)
			err = it.msg.Ack()
		default: // an operation that changes nothing
			s.answerAck(it.answer, &it.m, 0, false)
			err = it.msg.Ack()
		}
		if err != nil {
			// Sequenced (or refused) all the same: a redelivery is answered by the
			// exactly-once check.
			b.log.Debug("ingress ack failed", zap.Uint64("seq", it.in.seq), zap.Error(err))
		}
		s.deps.Metrics.SequencerStep(b.start, &err)
		s.deps.Metrics.IngressDone(it.stored, &err)
	}
}

// append appends the batch's log messages, atomically (with other partitions'
// batches when the log committer runs: logcommit.go), and returns the log seq of
// the last one.
func (b *batcher) append(ctx context.Context) (last uint64, err error) {
	s := b.s
	if s.logc != nil {
		last, err = s.logc.append(ctx, b.out)
	} else {
		last, err = publishBatch(ctx, s.deps.JS, b.out)
	}
	if err != nil {
		return 0, err
	}
	s.batches.Add(1)
	s.batched.Add(uint64(len(b.out)))
	return last, nil
}

// fallback sequences the batch's messages one at a time after its append failed
// with err: nothing of it is in the log (or, if the failure was only the ack's, all
// of it is, and the exactly-once check acks those messages).
func (b *batcher) fallback(ctx context.Context, err error) {
	s := b.s
	if isFenced(err) {
		s.fenced.Add(1)
	}
	s.fallbacks.Add(1)
	for chat := range b.chats {
		s.chats.Remove(chat)
	}
	b.log.Info("batch append failed; sequencing its messages one at a time",
		zap.Int("messages", len(b.out)), zap.Error(err))
	for i := range b.items {
		s.handle(ctx, b.log, b.items[i].msg, b.items[i].d, &b.pre)
	}
}

func (b *batcher) reset() {
	clear(b.items) // drop references to messages
	clear(b.out)
	b.items, b.out = b.items[:0], b.out[:0]
	clear(b.chats)
}
