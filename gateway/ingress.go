package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/answer"
	pmetrics "github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.uber.org/zap"
)

// Group commit of ingress publishes.
//
// With nats.sync=always JetStream fsyncs every message it stores on its own, so one
// PublishMsg per send caps a gateway at the disk's fsync rate and every send waits
// behind a queue of fsyncs. Instead, the sends of all of a gateway's connections
// (and its REST and system publishes) go into one queue. One committer goroutine
// takes whatever is queued and stores it in NATTER_IN as one JetStream atomic batch
// (nats-server ≥ 2.12, AllowAtomicPublish on the stream): an R1 file store with
// sync always fsyncs the batch once, not once per message, and a memory stream (the
// default) processes a batch for about half the server CPU per message of plain
// publishes. Nothing waits for a batch to fill: a send that finds the committer
// idle is published at once with a plain PublishMsg, as is any group too small to
// be worth a batch (ingressMinBatchMemory, ingressMinBatch on file); under load the
// queue fills while the previous commit is in flight, and the next commit takes
// all of it.
//
// Guarantees, the same as one PublishMsg per send:
//   - a send is acked only once JetStream stored it: an atomic batch is stored
//     whole or not at all;
//   - Nats-Msg-Id dedupe is unchanged: a batch fails whole if any of its IDs is
//     stored already, and is then published one message at a time, so each send
//     gets its own outcome (stored, duplicate, or an error);
//   - sender FIFO: a connection waits for its send's outcome before reading its next
//     frame, so a batch holds at most one send per connection, and batches are
//     published one after another on the gateway's one NATS connection, so the
//     stream stores a connection's sends in the order it sent them, even a send
//     whose waiter timed out (it is either published before the next one, or not
//     at all if it was still queued).
//
// The committer goroutine lives only while the queue has work: it ends when it
// finds the queue empty, and the next send starts a new one.

// ingressMaxBatch caps the messages of one atomic batch. The server refuses
// batches above its max_batch_size (1,000 by default); staying well below keeps a
// commit short.
var ingressMaxBatch = 256

// ingressMaxBatchBytes caps the payload bytes of one atomic batch (a send is at most
// ~21 KB), so a batch of large messages still commits quickly.
var ingressMaxBatchBytes = 1 << 20

// ingressMinBatch is the fewest messages worth an atomic batch into a NATTER_IN on
// file: smaller groups are published each on its own. An R1 server stages a file
// stream's batch in a store of its own, created and deleted per batch (directories,
// files, two more fsyncs), so a batch costs about as much as ten to fifteen plain
// publishes; BenchmarkIngressCommit measured the break-even between 8 and 32
// messages.
var ingressMinBatch = 16

// ingressMinBatchMemory is ingressMinBatch for a NATTER_IN in memory (the default):
// a batch is staged in memory, with no fsync, and costs less per message than plain
// publishes from two messages on (BenchmarkIngressCommit, memory: 41 CPU µs per
// message in batches of 4 against 66 published one by one or at once).
var ingressMinBatchMemory = 2

// ingressBatchPause is how long a gateway publishes one message at a time after
// the stream refused an atomic batch as not enabled (an older server, or
// NATTER_IN without AllowAtomicPublish) before trying a batch again.
var ingressBatchPause = time.Minute

// ingressBatchesOffUntil is when batches may be tried again (unix ns) after a
// refusal: process-wide, since a process's gateways share one NATS deployment.
var ingressBatchesOffUntil atomic.Int64

// ingressSend is one message waiting to be stored in NATTER_IN.
type ingressSend struct {
	msg      *nats.Msg
	msgID    string // its Nats-Msg-Id
	deadline time.Time
	// state is sendQueued until the committer takes the send (sendTaken) or its
	// waiter stops waiting (sendAbandoned): a send abandoned while queued is never
	// published; one abandoned after it was taken may still be stored.
	state atomic.Uint32
	// done receives the outcome once; buffered, so the committer never blocks.
	done chan ingressResult
}

const (
	sendQueued uint32 = iota
	sendTaken
	sendAbandoned
)

// ingressResult is the outcome of one send: stored (duplicate: it was stored
// before), or err.
type ingressResult struct {
	duplicate bool
	err       error
}

// ingressQueue is one gateway's queue of sends and its committer.
type ingressQueue struct {
	js      jetstream.JetStream // stores batches (jetstreamext needs the whole interface)
	metrics *pmetrics.Metrics   // counts batches; nil: none
	log     *zap.Logger

	// memory is set when NATTER_IN is a memory stream (learnStorage): groups of
	// ingressMinBatchMemory are batched then, else of ingressMinBatch.
	memory atomic.Bool

	// mu guards the fields below. It is held only to append or take sends, never
	// across I/O.
	mu      sync.Mutex
	pending []*ingressSend
	running bool // a committer goroutine drains pending
}

// sendAs is what a gateway vouches for when it publishes an ingress message; the
// sequencer believes these headers only on a gateway's subject (subjects.In).
type sendAs int

const (
	asUser    sendAs = iota // a user's send: the sequencer checks membership
	asService               // a service token's post (protocol.HeaderService): any chat, no chat changes
	asChange                // a chat change this gateway authorized (protocol.HeaderChange)
)

// publishIngress stores m in NATTER_IN and returns once it is stored; answered
// then gets the sequencer's answer (answers.go): an ack frame with the chat seq
// (duplicate with the original seq if the chat already held m's messageId), an
// error frame for a refusal, or nil if none came within Config.PublishTimeout
// after the store. as says what the gateway vouches for. Storing waits at most
// Config.PublishTimeout, or until ctx ends. When JetStream cannot store
// (Deps.Storage) it fails at once with CodeStorageFull (its disk is full) or
// CodeUnavailable, without publishing, and a send waiting for its acknowledgement
// gives up as soon as storing fails. Any other failure is a CodeUnavailable error,
// among them a full NATTER_IN (natsutil.IngressFull: the sequencers are behind).
// After a failure answered is never called, and the message may or may not have
// been stored: the client resends it with the same messageId. A nil answered asks
// for no answer (a notice whose sequencing nobody waits for).
func (g *Gateway) publishIngress(ctx context.Context, m *protocol.Message, as sendAs, answered func(*protocol.Frame)) error {
	var tripped <-chan struct{}
	if st := g.deps.Storage; st != nil {
		if err := st.Err(); err != nil {
			return storageRefusal(err)
		}
		tripped = st.Tripped()
	}
	var w *answer.Wait
	answerTo := ""
	if answered != nil {
		var err error
		if w, err = g.answers.Expect(m.ChatID, m.MessageID, answered); err != nil {
			g.log.Warn("ingress publish failed", zap.String("chat_id", m.ChatID), zap.Error(err))
			return protocol.Errorf(protocol.CodeUnavailable, "message not stored; resend it with the same messageId")
		}
		answerTo = w.Subject()
	}
	s := g.newIngressSend(m, as, answerTo)
	wctx, cancel := context.WithDeadline(ctx, s.deadline)
	defer cancel()
	g.enqueueIngress(s)
	var r ingressResult
	select {
	case r = <-s.done:
	case <-wctx.Done():
		s.state.Store(sendAbandoned)
		select {
		case r = <-s.done: // the outcome came as we gave up: it stands
		default:
			r.err = wctx.Err()
		}
	case <-tripped:
		s.state.Store(sendAbandoned)
		select {
		case r = <-s.done:
		default:
			r.err = g.deps.Storage.Err()
		}
	}
	if r.err == nil {
		if w != nil {
			w.Start()
		}
		return nil
	}
	// Perhaps stored all the same: a late answer is ignored, the client resends.
	if w != nil {
		w.Cancel()
	}
	if st := g.deps.Storage; st != nil {
		st.Report(r.err)
		if err := st.Err(); err != nil { // logged once by the watch, not per send
			return storageRefusal(err)
		}
	}
	if natsutil.IngressFull(r.err) {
		// Backpressure while the sequencers are behind or away: every send says so
		// (natter_consumer_pending shows it), a log line each would flood.
		g.log.Debug("ingress full", zap.String("chat_id", m.ChatID), zap.Error(r.err))
		return protocol.Errorf(protocol.CodeUnavailable, "the server is behind (its queue of messages to sequence is full): message not stored; resend it with the same messageId later")
	}
	g.log.Warn("ingress publish failed", zap.String("chat_id", m.ChatID), zap.Error(r.err))
	return protocol.Errorf(protocol.CodeUnavailable, "message not stored; resend it with the same messageId")
}

// publishAndWait stores m in NATTER_IN (publishIngress) and waits for the
// sequencer's ack, which it returns. A refusal is returned as its *protocol.Error;
// no answer in time (or ctx ending first) as CodeUnavailable.
func (g *Gateway) publishAndWait(ctx context.Context, m *protocol.Message, as sendAs) (*protocol.Frame, error) {
	got := make(chan *protocol.Frame, 1)
	if err := g.publishIngress(ctx, m, as, func(f *protocol.Frame) { got <- f }); err != nil {
		return nil, err
	}
	var f *protocol.Frame
	select {
	case f = <-got:
	case <-ctx.Done():
	}
	switch {
	case f == nil:
		return nil, g.noAnswer()
	case f.Type == protocol.FrameError:
		return nil, answer.Err(f)
	}
	return f, nil
}

// storageRefusal is the client's error for a send refused because JetStream
// cannot store (err from Deps.Storage).
func storageRefusal(err error) *protocol.Error {
	if errors.Is(err, natsutil.ErrStorageFull) {
		return protocol.Errorf(protocol.CodeStorageFull, "the server's message store is full: message not stored; resend it with the same messageId later")
	}
	return protocol.Errorf(protocol.CodeUnavailable, "the server cannot store messages now: message not stored; resend it with the same messageId later")
}

// newIngressSend returns m as a send to NATTER_IN, due within PublishTimeout, whose
// answer goes to answer ("": none). Its Nats-Msg-Id is the answer subject, unique
// to this send: JetStream's dedupe then only drops the gateway's own retries of a
// publish whose ack was lost, and a client's resend of m reaches the sequencer,
// whose exactly-once check answers it with the original seq (a resend deduplicated
// in NATTER_IN would never be answered). Without an answer it is m's chat and ID.
func (g *Gateway) newIngressSend(m *protocol.Message, as sendAs, answer string) *ingressSend {
	out := &nats.Msg{Subject: g.deps.Subjects.In(m.ChatID), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	id := answer
	if answer == "" {
		id = protocol.MsgID(m.ChatID, m.MessageID)
	} else {
		out.Header.Set(protocol.HeaderAnswer, answer)
	}
	out.Header.Set(jetstream.MsgIDHeader, id)
	switch as {
	case asService:
		out.Header.Set(protocol.HeaderService, "1")
	case asChange:
		out.Header.Set(protocol.HeaderChange, "1")
	}
	return &ingressSend{msg: out, msgID: id, deadline: time.Now().Add(g.cfg.PublishTimeout), done: make(chan ingressResult, 1)}
}

// learnStorage looks up NATTER_IN's storage, which decides the smallest batch.
// When it cannot tell, it keeps the file stream's (larger) minimum.
func (q *ingressQueue) learnStorage(ctx context.Context) {
	s, err := q.js.Stream(ctx, subjects.InStream)
	if err != nil {
		q.log.Info("NATTER_IN's storage unknown; batching sends as for a file stream", zap.Error(err))
		return
	}
	q.memory.Store(s.CachedInfo().Config.Storage == jetstream.MemoryStorage)
}

// enqueueIngress queues s on g's queue and starts its committer if it is idle.
func (g *Gateway) enqueueIngress(s *ingressSend) {
	q := &g.ingress
	q.mu.Lock()
	q.pending = append(q.pending, s)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.run()
	}
}

// run commits batches until the queue is empty, then ends. Each
// commit ends by its sends' deadlines at the latest, so run ends soon after the
// gateway stops sending.
func (q *ingressQueue) run() {
	var buf []*ingressSend
	for {
		batch := q.take(buf[:0])
		if len(batch) == 0 {
			return
		}
		q.commit(batch)
		clear(batch) // let the sends go
		buf = batch
	}
}

// take moves up to a batch of queued sends into batch, skipping abandoned ones.
// When none is left it marks the committer stopped and returns an empty batch.
func (q *ingressQueue) take(batch []*ingressSend) []*ingressSend {
	q.mu.Lock()
	defer q.mu.Unlock()
	n, size := 0, 0
	for n < len(q.pending) && len(batch) < ingressMaxBatch {
		s := q.pending[n]
		sz := len(s.msg.Data)
		if len(batch) > 0 && size+sz > ingressMaxBatchBytes {
			break
		}
		n++
		if s.state.CompareAndSwap(sendQueued, sendTaken) {
			batch = append(batch, s)
			size += sz
		}
	}
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	if len(batch) == 0 && rest == 0 {
		q.running = false
	}
	return batch
}

// commit stores batch in NATTER_IN and hands every send its outcome.
func (q *ingressQueue) commit(batch []*ingressSend) {
	deadline := batch[0].deadline
	for _, s := range batch[1:] {
		if s.deadline.After(deadline) {
			deadline = s.deadline
		}
	}
	// Past the last deadline nobody waits for the outcome any more.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	minBatch := ingressMinBatch
	if q.memory.Load() {
		minBatch = ingressMinBatchMemory
	}
	if len(batch) < minBatch || time.Now().UnixNano() < ingressBatchesOffUntil.Load() {
		q.publishEach(ctx, batch)
		return
	}
	// The server fails a batch that names a Nats-Msg-Id twice: a repeat (a client
	// resending on a new connection) stays out of the batch and is a duplicate of
	// the first if the batch is stored.
	msgs := make([]*nats.Msg, 0, len(batch))
	repeat := make([]bool, len(batch))
	seen := make(map[string]struct{}, len(batch))
	for i, s := range batch {
		if _, ok := seen[s.msgID]; ok {
			repeat[i] = true
			continue
		}
		seen[s.msgID] = struct{}{}
		msgs = append(msgs, s.msg)
	}
	if len(msgs) < minBatch {
		q.publishEach(ctx, batch)
		return
	}
	// No ack of the first message: a batch the server refuses early fails at the
	// commit, and one round trip per batch is enough. One attempt only, and a short
	// one: a batch that found no stream leader (an election, see
	// natsutil.Publish) falls back to one publish per send, and those retry.
	bctx, bcancel := context.WithTimeout(ctx, 2*natsutil.PublishAttemptTimeout)
	_, err := jetstreamext.PublishMsgBatch(bctx, q.js, msgs, jetstreamext.BatchFlowControl{})
	bcancel()
	if err == nil {
		q.metrics.IngressBatch(len(msgs))
		for i, s := range batch {
			s.done <- ingressResult{duplicate: repeat[i]}
		}
		return
	}
	for _, m := range msgs { // published alone, a batch header would make it a batch again
		m.Header.Del(jetstreamext.BatchIDHeader)
		m.Header.Del(jetstreamext.BatchSeqHeader)
		m.Header.Del(jetstreamext.BatchCommitHeader)
	}
	if ctx.Err() != nil { // the outcome is unknown, and nobody waits for it
		for _, s := range batch {
			s.done <- ingressResult{err: err}
		}
		return
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishNotEnabled:
		ingressBatchesOffUntil.Store(time.Now().Add(ingressBatchPause).UnixNano())
		q.log.Warn("NATTER_IN refuses atomic batches (needs nats-server >= 2.12 and allow_atomic); publishing sends one by one",
			zap.Error(err), zap.Duration("retry_in", ingressBatchPause))
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishDuplicateMsgID:
		// A resend of a stored message: the one-by-one publish below tells which.
	default:
		q.log.Info("ingress batch failed; publishing its sends one by one", zap.Int("size", len(msgs)), zap.Error(err))
	}
	q.metrics.IngressBatchFailed()
	q.publishEach(ctx, batch)
}

// publishEach publishes the sends of batch each on its own, all at once so the
// server stores them back to back, and returns when each has its outcome (a send
// that found no stream leader is sent again until ctx ends: natsutil.Publish). Their
// order does not matter: a batch holds at most one send per connection (and of
// sends with the same ID, whichever the server stores first is the original).
// Sends whose waiter left are skipped: they were not stored.
func (q *ingressQueue) publishEach(ctx context.Context, batch []*ingressSend) {
	var wg sync.WaitGroup
	for _, s := range batch {
		if s.state.Load() == sendAbandoned {
			continue
		}
		wg.Go(func() {
			// Retried across a stream leader change until the send's deadline.
			ack, err := natsutil.Publish(ctx, q.js, s.msg)
			if err != nil {
				s.done <- ingressResult{err: err}
				return
			}
			s.done <- ingressResult{duplicate: ack.Duplicate}
		})
	}
	wg.Wait()
}
