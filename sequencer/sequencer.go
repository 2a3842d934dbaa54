package sequencer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/blockchanges"
	"github.com/natter-chat/natter/pkg/history"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Deps are what the sequencer needs from the process.
type Deps struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Store    Store
	Subjects subjects.Subjects
	// Metrics receives step latencies; nil: none. Counts come from Stats.
	Metrics *metrics.Metrics
	// History reads the messages that edits, deletes, reactions and replies
	// reference (msgops.go); it should name the persister's consumer. Nil: a reader
	// over Store and JS without a persisted floor (it scans the whole log tail).
	History *history.Reader
	// EnsureIngress creates NATTER_IN again when it vanished (a memory stream does
	// not outlive its single server's restart): natsutil.EnsureIngress. Nil: the
	// sequencer only recreates its consumers, once someone else made the stream.
	EnsureIngress func(context.Context) error
}

// Sequencer is the sequencer role.
type Sequencer struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	logS jetstream.Stream
	hist *history.Reader

	// chats caches per-chat state. Each partition goroutine only touches the chats of
	// its partition, so a chatState is never used by two goroutines at once; the LRU
	// itself is safe for concurrent use.
	chats *lru.Cache[string, *chatState]

	inS jetstream.Stream
	kv  jetstream.KeyValue // large-chats bucket

	blocks *store.BlockCache // blocks.go
	// blockLists reads blocks, with the announced changes applied once Run follows
	// them (blocks.go).
	blockLists blockLists

	// logc appends the partitions' batches to the log together while Run runs
	// (logcommit.go); nil: each batch is appended on its own.
	logc *logCommitter

	// Counters, for tests and metrics.
	published atomic.Uint64 // per-user fan-out publishes
	sequenced atomic.Uint64 // messages appended to the log
	catchups  atomic.Uint64 // messages sequenced by a takeover catch-up
	fenced    atomic.Uint64 // appends refused by the expected-last-sequence fence
	batches   atomic.Uint64 // atomic batch appends committed (batch.go)
	batched   atomic.Uint64 // messages appended by them
	fallbacks atomic.Uint64 // failed batch appends, sequenced again one at a time
	// inResets counts the times NATTER_IN was seen numbering from 1 again
	// (ingressreset.go): each partition's catch-up mark is then void.
	inResets atomic.Uint64
}

// chatState is what sequencing a chat needs. Owned by one partition goroutine.
type chatState struct {
	lastSeq    uint64 // last chat seq assigned
	lastLogSeq uint64 // NATTER_LOG stream seq of that message (0: none in the log)
	members    map[string]string
	large      bool      // marked in the large-chats bucket
	ids        recentIDs // the exactly-once check's recent message IDs (ids.go)
	ttl        int64     // the chat's message TTL in seconds (0: none): retention.go
	encrypted  bool      // end-to-end encrypted (protocol.CheckEncryption); never changes
}

// ConsumerConfig is the durable consumer of ingress partition p: explicit acks, one
// priority group whose pinned client is the partition's active sequencer.
func ConsumerConfig(cfg Config, subj subjects.Subjects, p int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        subjects.SequencerConsumer(p),
		FilterSubject:  subj.InPartitionFilter(p),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxAckPending:  cfg.Fetch * 4,
		MaxDeliver:     -1,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      cfg.PinnedTTL,
	}
}

// PriorityGroup is the consumer priority group sequencer instances pull from; the
// server pins each partition to one instance and fails over when it goes silent.
const PriorityGroup = "sequencer"

// New returns a sequencer.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Sequencer, error) {
	c, err := lru.New[string, *chatState](cfg.MaxChats)
	if err != nil {
		return nil, err
	}
	hist := deps.History
	if hist == nil {
		hist = &history.Reader{Store: deps.Store, JS: deps.JS, Subjects: deps.Subjects}
	}
	blocks := store.NewBlockCache(deps.Store, BlockCacheTTL)
	return &Sequencer{cfg: cfg, deps: deps, log: logger.With(zap.String("role", "sequencer")), chats: c, hist: hist,
		blocks: blocks, blockLists: blocks}, nil
}

// FanoutPublishes returns how many per-user fan-out publishes were made.
func (s *Sequencer) FanoutPublishes() uint64 { return s.published.Load() }

// Stats returns the sequencer's counters: messages appended, messages sequenced by a
// takeover catch-up, and appends refused by the fence.
func (s *Sequencer) Stats() (sequenced, catchups, fenced uint64) {
	return s.sequenced.Load(), s.catchups.Load(), s.fenced.Load()
}

// BatchStats returns how many atomic batch appends were committed, how many
// messages they held, and how many failed and were sequenced one at a time instead.
func (s *Sequencer) BatchStats() (batches, messages, fallbacks uint64) {
	return s.batches.Load(), s.batched.Load(), s.fallbacks.Load()
}

// Run consumes every ingress partition until ctx ends. Several instances may run:
// each partition is pinned to one of them at a time. It returns an error only when
// setting up fails (the streams, the large-chats bucket, the consumers); nil after
// ctx ended.
func (s *Sequencer) Run(ctx context.Context) error {
	logS, err := s.deps.JS.Stream(ctx, subjects.LogStream)
	if err != nil {
		return fmt.Errorf("sequencer: log stream: %w", err)
	}
	s.logS = logS
	inS, err := s.deps.JS.Stream(ctx, subjects.InStream)
	if err != nil {
		return fmt.Errorf("sequencer: ingress stream: %w", err)
	}
	s.inS = inS
	if s.kv, err = s.deps.JS.KeyValue(ctx, natsutil.LargeChatsBucket); err != nil {
		return fmt.Errorf("sequencer: large-chats bucket: %w", err)
	}
	consumers := make([]jetstream.Consumer, s.deps.Subjects.Partitions)
	for p := range consumers {
		if consumers[p], err = inS.CreateOrUpdateConsumer(ctx, ConsumerConfig(s.cfg, s.deps.Subjects, p)); err != nil {
			return fmt.Errorf("sequencer: consumer %s: %w", subjects.SequencerConsumer(p), err)
		}
	}
	// Block changes are followed before any message is decided (blocks.go).
	follower, err := blockchanges.Follow(s.deps.NC, s.deps.Subjects, s.blocks)
	if err != nil {
		return fmt.Errorf("sequencer: %w", err)
	}
	s.blockLists = follower
	// A partition's loop has no error to return: whatever fails while it runs (a
	// pull, an append) is retried in place until ctx ends.
	var wg sync.WaitGroup
	wg.Go(func() { follower.Run(ctx) })
	// The partitions' batches are appended together (logcommit.go).
	s.logc = newLogCommitter(s.deps.JS)
	wg.Go(func() { s.logc.run(ctx) })
	for p, cons := range consumers {
		wg.Go(func() { s.runPartition(ctx, p, cons) })
	}
	// NATTER_IN keeps acked messages until the janitor purges them (purge.go).
	wg.Go(func() { s.janitor(ctx, consumers) })
	wg.Wait()
	return nil
}

// runPartition sequences ingress partition p while this instance holds it, until
// ctx ends.
func (s *Sequencer) runPartition(ctx context.Context, p int, cons jetstream.Consumer) {
	log := s.log.With(zap.Int("partition", p))
	// The messages in hand are sequenced and acked even if ctx ends meanwhile.
	work, stopWork := graceContext(ctx, func() bool { return !s.deps.NC.IsClosed() })
	defer stopWork()
	b := newBatcher(s, log, p, cons)
	drained := make([]jetstream.Msg, 0, maxBatch)
	for ctx.Err() == nil {
		// A missed idle heartbeat (common on a busy machine with this short expiry)
		// only means the pull must be re-issued, which the iterator does by itself
		// when not asked to report it: ending the iterator for it cost a restart and
		// a warning each time, while nothing was wrong.
		it, err := cons.Messages(jetstream.PullPriorityGroup(PriorityGroup),
			jetstream.PullMaxMessages(s.cfg.Fetch), jetstream.PullExpiry(time.Second),
			jetstream.WithMessagesErrOnMissingHeartbeat(false))
		if err != nil {
			log.Warn("pull from ingress partition failed; retrying", zap.Error(err))
			sleep(ctx, time.Second)
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		// The reader hands deliveries over so that this goroutine can take, after
		// each one it waited for, every one already there without waiting (batch.go).
		deliveries := make(chan jetstream.Msg, maxBatch)
		go readDeliveries(log, it, deliveries)
		b.lastDelivery = 0
		// Until the reader ends (the iterator stopped or failed): not before, or it
		// could block forever on a full channel.
		for msg := range deliveries {
			if ctx.Err() != nil {
				continue // not started: left to the partition's next holder
			}
			drained = drainDeliveries(deliveries, append(drained[:0], msg))
			b.process(work, drained)
			clear(drained)
		}
		stop()
		it.Stop()
	}
}

func sleep(ctx context.Context, d time.Duration) { lifecycle.Sleep(ctx, d) }

// appendTimeout bounds one append to NATTER_LOG, its retries across a leader
// change included.
var appendTimeout = 5 * time.Second

// retry runs fn until it succeeds or ctx ends, with backoff. Transient failures are
// retried in place, so a chat's messages are never reordered.
func (s *Sequencer) retry(ctx context.Context, log *zap.Logger, fn func() error) {
	_ = lifecycle.Retry(ctx, lifecycle.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second}, fn,
		func(err error, attempt int, _ time.Duration) {
			if attempt%20 == 1 {
				log.Warn("sequencing failed; retrying", zap.Error(err))
			}
		}) // only ctx ends it: the caller sees ctx.Err()
}

// catchUp sequences, in stream order, every message of partition p between the
// consumer's ack floor and next (when next is a redelivery: up to the last message
// the consumer delivered): messages delivered to a previous holder of the
// partition that died before acking them, or deliveries to us that the client
// library dropped. JetStream redelivers those only after AckWait, by which time newer
// messages have been delivered to us; sequencing them first keeps each chat's order.
// When they are redelivered later, the exactly-once check (ids.go) acks them
// without sequencing them again.
//
// *done is the partition's catch-up mark: every message of the partition below it
// was sequenced by an earlier catch-up of this instance. The catch-up starts there
// when it is above the ack floor and moves the mark as it goes, so a catch-up that
// failed half-way (an election) goes on where it stopped, and one that follows
// another reads only what came since. Without it, a message whose ack was lost kept
// the ack floor low and every catch-up read the partition again from there, slower
// than messages came (found by TestCrashes: thousands of reads per catch-up, a
// catch-up every few seconds, sequencing stalled).
func (s *Sequencer) catchUp(ctx context.Context, p int, cons jetstream.Consumer, next jetstream.Msg, done *uint64) (err error) {
	meta, err := next.Metadata()
	if err != nil {
		return err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer info: %w", err)
	}
	if *done > info.Delivered.Stream+1 {
		// A mark past everything the consumer delivered belongs to an earlier
		// NATTER_IN, which restarted empty (ingressreset.go).
		*done = 0
	}
	filter := s.deps.Subjects.InPartitionFilter(p)
	// end (exclusive) is next, unless next is a redelivery: an old message coming
	// back (its AckWait ran out, or it was nak'ed) says nothing about what was
	// delivered after it, and a dead holder may have died with newer messages in
	// hand that come back only after AckWait, behind what is published meanwhile.
	// Everything the consumer delivered is read then, next and the deliveries
	// after it included (sequenced here, the exactly-once check answers them as
	// duplicates when they come). Found by TestCrashes: with a sequencer and a NATS
	// node killed together, the new holder's first delivery was such a message at
	// the ack floor, the range up to it was empty, and the dead holder's messages
	// were sequenced after newer ones (then, with the ingress-seq watermark, not at
	// all: lost).
	end := meta.Sequence.Stream
	if meta.NumDelivered > 1 && info.Delivered.Stream >= end {
		end = info.Delivered.Stream + 1
	}
	from := max(info.AckFloor.Stream+1, *done)
	read := 0
	if from < end {
		s.log.Info("catching up on unacked ingress", zap.Int("partition", p),
			zap.Uint64("from", from), zap.Uint64("to", end), zap.Uint64("ack_floor", info.AckFloor.Stream),
			zap.Uint64("next", meta.Sequence.Stream), zap.Uint64("delivery", meta.Sequence.Consumer))
		defer func(start time.Time) {
			if err == nil {
				s.log.Info("caught up", zap.Int("partition", p), zap.Int("read", read), zap.Duration("took", time.Since(start)))
			}
		}(time.Now())
	}
	for seq := from; seq < end; {
		raw, err := s.inS.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Impossible from a current stream: next, or the last delivery
			// before end, is at or after seq and matches the filter (above the
			// ack floor, so never purged). A stream leader elected a moment ago
			// can answer before it has applied everything; ending the catch-up
			// here would sequence next before the messages in between, out of
			// order. Try again later.
			return fmt.Errorf("read unacked ingress from %d: not found, though %d was delivered (stream leader not current?)",
				seq, end-1)
		}
		if err != nil {
			return fmt.Errorf("read unacked ingress %d: %w", seq, err)
		}
		if raw.Sequence >= end {
			break
		}
		in := ingress{subject: raw.Subject, data: raw.Data, header: raw.Header, seq: raw.Sequence, stored: raw.Time.UnixNano()}
		m, derr := s.decodeIngress(&in)
		if _, err := s.sequence(ctx, &in, m, derr, nil); err != nil {
			return err
		}
		s.catchups.Add(1)
		read++
		seq = raw.Sequence + 1
		*done = max(*done, seq)
	}
	*done = max(*done, end)
	return nil
}

// handle sequences one delivered ingress message and acks it. It returns once the
// message is acked, or when ctx ends (it is then redelivered to whoever takes the
// partition). d is msg decoded (decodeDelivery) when the caller has it already, so
// a message is decoded once however many attempts and paths it takes; nil: decode
// it here. pre is the batch's prefetched store answers for its message IDs (nil:
// none), so the one-at-a-time path of a batch's messages asks the store no second
// time (idPrefetch.lookup checks an answer still holds).
func (s *Sequencer) handle(ctx context.Context, log *zap.Logger, msg jetstream.Msg, d *delivery, pre *idPrefetch) {
	if d == nil || d.metaErr != nil {
		dd := s.decodeDelivery(msg)
		d = &dd
	}
	s.retry(ctx, log, func() (err error) {
		defer s.deps.Metrics.SequencerStep(time.Now(), &err)
		if d.metaErr != nil {
			return fmt.Errorf("metadata: %w", d.metaErr)
		}
		defer s.deps.Metrics.IngressDone(d.meta.Timestamp, &err)
		in := d.in
		terminal, err := s.sequence(ctx, &in, d.m, d.err, pre)
		if err != nil {
			return err
		}
		if terminal {
			return msg.Term()
		}
		return msg.Ack()
	})
}

// ingress is one NATTER_IN message, delivered or read directly from the stream.
type ingress struct {
	subject string
	data    []byte
	header  nats.Header
	seq     uint64 // NATTER_IN stream sequence
	stored  int64  // when NATTER_IN stored it (unix ns): with seq, its inRef
	trust   trust  // set by decodeIngress
	answer  string // where the publisher waits for the decision (answer.go); set by decodeIngress
}

// ref names in across NATTER_IN restarts (ids.go).
func (in *ingress) ref() inRef { return inRef{seq: in.seq, stored: in.stored} }

// inRefOf is the ingress message a log message's headers name.
func inRefOf(h nats.Header) inRef {
	seq, _ := strconv.ParseUint(h.Get(protocol.HeaderInSeq), 10, 64)
	at, _ := strconv.ParseInt(h.Get(protocol.HeaderInTime), 10, 64)
	return inRef{seq: seq, stored: at}
}

// trust is what an ingress message may do, decided from where it was published
// (the origin in its stored subject) and, for a gateway's, the headers the gateway
// set. NATS permissions decide who may publish where: only gateways on
// subjects.In, backend services on subjects.Svc. So a header is believed only on a
// gateway's message; a service's is a service's whatever its headers say.
type trust int

const (
	// trustUser: a gateway's send for a user: the sender must be a member; no
	// system messages.
	trustUser trust = iota
	// trustService: a service's post (a gateway's for a service token, or one on the
	// service ingress): any chat, any sender, system notices; no chat changes.
	trustService
	// trustChange: a chat change a gateway authorized (protocol.HeaderChange).
	trustChange
)

// trustOf classifies in by its origin and headers.
func (s *Sequencer) trustOf(in *ingress) trust {
	if _, origin, _ := s.deps.Subjects.InOrigin(in.subject); origin == subjects.OriginService {
		return trustService
	}
	switch {
	case in.header.Get(protocol.HeaderChange) != "":
		return trustChange
	case in.header.Get(protocol.HeaderService) != "":
		return trustService
	}
	return trustUser
}

// sequence is one attempt at sequencing in, decoded as m (decodeIngress's message
// and error; in carries the trust and answer it set), with the prefetched ID answers
// pre (may be nil). It returns terminal true for a message
// that can never be sequenced (invalid), and an error for a failure worth retrying.
// On success the message is in NATTER_LOG (now or from an earlier attempt) and has
// been fanned out, or was refused and the sender told.
func (s *Sequencer) sequence(ctx context.Context, in *ingress, m protocol.Message, err error, pre *idPrefetch) (terminal bool, _ error) {
	if err != nil {
		s.refuseInvalid(in.subject, in.answer, &m, err)
		return true, nil
	}
	st, err := s.state(ctx, m.ChatID)
	if err != nil {
		return false, err
	}
	if p, found, err := s.sequencedAs(ctx, st, m.ChatID, m.MessageID, pre); err != nil {
		return false, err
	} else if found {
		s.duplicate(in, &m, p)
		return false, nil
	}
	switch v, perr := s.check(ctx, st, &m, in.trust); v {
	case refuse:
		s.reject(in.answer, m.SenderID, &m, perr)
		return false, nil
	case drop:
		s.answerAck(in.answer, &m, 0, false)
		return false, nil
	}
	var ev *protocol.SystemEvent
	if m.MessageType == protocol.TypeSystem && in.trust == trustChange {
		ev = parseEvent(m.Meta) // check refused any other change
	}
	if ev != nil {
		// Membership is stored before the event is in the log (msgops.go).
		if err := s.applyMembership(ctx, m.ChatID, st, ev, time.Now()); err != nil {
			return false, err
		}
	}

	m.Seq = st.lastSeq + 1
	s.stamp(st, &m) // retention.go
	data := protocol.EncodeMessageFrame(&m)
	out := s.logMsg(&m, data, in.ref(), true, st.lastLogSeq)
	// Sent again across a NATTER_LOG leader change (natsutil.Publish), for as long
	// as a JetStream request may take; then the caller's retry reloads the chat.
	pctx, cancel := context.WithTimeout(ctx, appendTimeout)
	ack, err := natsutil.Publish(pctx, s.deps.JS, out)
	cancel()
	if err != nil {
		if isFenced(err) {
			// Another sequencer appended to this chat (we were deposed, or our state
			// is stale): reload and decide again.
			s.fenced.Add(1)
		}
		// Whatever failed, our view of the chat may be stale now.
		s.chats.Remove(m.ChatID)
		return false, fmt.Errorf("append %s/%d: %w", m.ChatID, m.Seq, err)
	}
	if ack.Duplicate {
		// The log already holds this message (an earlier attempt whose ingress ack was
		// lost). Reload the chat's true state and deliver the stored copy.
		s.chats.Remove(m.ChatID)
		stored, err := s.logS.GetMsg(ctx, ack.Sequence)
		if err != nil {
			return false, fmt.Errorf("read duplicate %s: %w", m.ChatID, err)
		}
		if orig, err := protocol.DecodeMessageFrame(stored.Data); err == nil {
			s.answerAck(in.answer, &m, orig.Seq, prior{seq: orig.Seq, in: inRefOf(stored.Header)}.duplicateOf(in.ref()))
			s.fanout(st.members, &orig, stored.Data)
		}
		return false, nil
	}
	st.lastSeq, st.lastLogSeq = m.Seq, ack.Sequence
	s.remember(ctx, st, m.MessageID, m.Seq, ack.Sequence, in.ref())
	s.answerAck(in.answer, &m, m.Seq, false)
	recipients := st.members
	if ev != nil {
		recipients = s.apply(st, ev)
		if err := s.markLarge(ctx, m.ChatID, st); err != nil {
			s.log.Warn("large-chat mark failed", zap.String("chat_id", m.ChatID), zap.Error(err))
		}
		if len(recipients) > s.cfg.LargeChatThreshold && (ev.Event == protocol.EventMemberAdded || ev.Event == protocol.EventMembersAdded) {
			s.tellAdded(&m, ev, data) // members.go
		}
	}
	s.fanout(recipients, &m, data)
	s.sequenced.Add(1)
	return false, nil
}

// decodeIngress decodes and validates in on its own, before any chat state is
// consulted. An error means in can never be sequenced; m then holds what could be
// decoded, for refuseInvalid.
func (s *Sequencer) decodeIngress(in *ingress) (m protocol.Message, err error) {
	in.trust = s.trustOf(in)
	in.answer = s.answerSubject(in)
	m, err = protocol.DecodeIngress(in.data)
	if err == nil {
		err = validateIngress(&m)
	}
	if chat, _, ok := s.deps.Subjects.InOrigin(in.subject); err == nil && (!ok || chat != m.ChatID) {
		// The partition was computed from the subject: a payload for another chat
		// would be sequenced outside that chat's partition.
		err = fmt.Errorf("chatId %s does not match subject %s", m.ChatID, in.subject)
	}
	return m, err
}

// refuseInvalid logs an ingress message (stored as subject) that decodeIngress
// refused and tells its publisher (answer) or else its sender, when the message
// names one.
func (s *Sequencer) refuseInvalid(subject, answer string, m *protocol.Message, err error) {
	s.log.Warn("dropping invalid ingress message", zap.String("subject", subject), zap.Error(err))
	if answer != "" || ids.Valid(m.SenderID) && ids.Valid(m.MessageID) {
		reason := err.Error()
		if perr := (*protocol.Error)(nil); errors.As(err, &perr) {
			reason = perr.Message
		}
		s.reject(answer, m.SenderID, m, protocol.Errorf(protocol.CodeBadRequest, "%s", reason))
	}
}

// duplicate answers in (decoded as m), whose chat and messageId were sequenced
// already (p): an ack with the original seq, duplicate unless it was this very
// ingress message (prior.duplicateOf), and nothing appended.
func (s *Sequencer) duplicate(in *ingress, m *protocol.Message, p prior) {
	s.log.Info("message ID already sequenced; acked without appending", zap.String("chat_id", m.ChatID),
		zap.String("message_id", m.MessageID), zap.Uint64("seq", p.seq), zap.Uint64("in_seq", in.seq),
		zap.Uint64("first_in_seq", p.in.seq))
	s.answerAck(in.answer, m, p.seq, p.duplicateOf(in.ref()))
}

// check decides, in chat order, whether m, which the chat does not hold yet
// (sequencedAs), is to be sequenced in a chat whose state is st. It returns
// accept, refuse with the error for the sender, or drop (an operation that changes
// nothing).
func (s *Sequencer) check(ctx context.Context, st *chatState, m *protocol.Message, tr trust) (verdict, *protocol.Error) {
	if tr == trustUser {
		if _, ok := st.members[m.SenderID]; !ok {
			return refuse, protocol.Errorf(protocol.CodeNotMember, "not a member of chat %s", m.ChatID)
		}
		if m.MessageType == protocol.TypeSystem {
			return refuse, protocol.Errorf(protocol.CodeForbidden, "only services send system messages")
		}
	}
	// Backend services publish here directly, past the gateway's check of the same rule.
	if perr := protocol.CheckEncryption(st.encrypted, m.MessageType); perr != nil {
		return refuse, perr
	}
	if m.MessageType == protocol.TypeSystem {
		// A chat change is applied only when a gateway vouches that a chat admin (or
		// an admin-scoped service) made it, as the sender, who is also its by.
		ev := protocol.ChatChangeIn(m.Meta)
		switch {
		case ev != "" && tr != trustChange:
			return refuse, protocol.Errorf(protocol.CodeForbidden,
				"%s is a chat change: make it with the REST chat API as a chat admin or with a service token holding the %s scope", ev, protocol.ScopeChatsAdmin)
		case ev == "" && tr == trustChange:
			return refuse, protocol.Errorf(protocol.CodeBadRequest, "a chat change needs a chat change event")
		case tr == trustChange:
			e := parseEvent(m.Meta)
			if e == nil || e.By != m.SenderID {
				return refuse, protocol.Errorf(protocol.CodeForbidden, "a chat change's by must be its sender")
			}
			if protocol.IsBulkChange(e.Event) {
				if err := protocol.ValidateBulkChange(e); err != nil {
					return refuse, protocol.Errorf(protocol.CodeBadRequest, "%v", err)
				}
			}
			if perr := s.roomFor(st, e); perr != nil { // groupcap.go
				return refuse, perr
			}
			if perr := keepsAdmin(st, e); perr != nil { // lastadmin.go
				return refuse, perr
			}
		}
	}
	if e := s.checkBlocked(ctx, st, m, tr); e != nil { // blocks.go
		return refuse, e
	}
	// Edits, deletes, reactions and replies must reference a fitting message (msgops.go).
	return s.authorizeRefs(ctx, st, m, tr != trustUser)
}

// logMsg is the NATTER_LOG message of m (encoded as data), sequenced from ingress
// message in. With fence, it may only be appended while the chat's last log message
// is lastLogSeq (0: none), so that a deposed sequencer's late append fails.
func (s *Sequencer) logMsg(m *protocol.Message, data []byte, in inRef, fence bool, lastLogSeq uint64) *nats.Msg {
	// Room for the batch headers too (Nats-Batch-Id, -Sequence, -Commit).
	h := make(nats.Header, 8)
	h.Set(jetstream.MsgIDHeader, protocol.MsgID(m.ChatID, m.MessageID))
	if fence {
		h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(lastLogSeq, 10))
	}
	h.Set(protocol.HeaderSeq, strconv.FormatUint(m.Seq, 10))
	h.Set(protocol.HeaderInSeq, strconv.FormatUint(in.seq, 10))
	h.Set(protocol.HeaderInTime, strconv.FormatInt(in.stored, 10))
	return &nats.Msg{Subject: s.deps.Subjects.Log(m.ChatID), Data: data, Header: h}
}

// isFenced reports whether err is JetStream refusing an append because the chat's
// last log message is not the expected one.
func isFenced(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// apply changes st's membership for a sequenced system event and returns who must
// receive the event: the members after the change, plus a removed member
// (members.go).
func (s *Sequencer) apply(st *chatState, ev *protocol.SystemEvent) map[string]string {
	switch ev.Event {
	case protocol.EventMemberAdded, protocol.EventRoleChanged:
		if _, member := st.members[ev.UserID]; ev.Event == protocol.EventRoleChanged && !member {
			break // a role change does not make a member
		}
		if ids.Valid(ev.UserID) {
			st.members[ev.UserID] = roleOf(ev)
		}
	case protocol.EventMemberRemoved, protocol.EventMemberLeft:
		if _, ok := st.members[ev.UserID]; ok {
			return removeMembers(st, []string{ev.UserID}, s.cfg.LargeChatThreshold)
		}
	case protocol.EventMessageTTLChanged:
		st.ttl = max(ev.MessageTTL, 0)
	case protocol.EventChatDeleted:
		// Everyone hears of it; nobody is a member after it.
		before := st.members
		st.members = map[string]string{}
		return before
	case protocol.EventMembersAdded:
		return addMembers(st, ev.UserIDs, roleOf(ev))
	case protocol.EventMembersRemoved:
		return removeMembers(st, ev.UserIDs, s.cfg.LargeChatThreshold)
	}
	return st.members
}

func parseEvent(meta []byte) *protocol.SystemEvent {
	var ev protocol.SystemEvent
	if err := json.Unmarshal(meta, &ev); err != nil || ev.Event == "" {
		return nil
	}
	return &ev
}

// markLarge records in the large-chats bucket whether chat is above the threshold.
func (s *Sequencer) markLarge(ctx context.Context, chat string, st *chatState) error {
	large := len(st.members) > s.cfg.LargeChatThreshold
	if large == st.large && !large {
		return nil
	}
	if large {
		if _, err := s.kv.Put(ctx, chat, []byte(strconv.Itoa(len(st.members)))); err != nil {
			return fmt.Errorf("mark %s large: %w", chat, err)
		}
	} else if err := s.kv.Delete(ctx, chat); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("unmark %s large: %w", chat, err)
	}
	st.large = large
	return nil
}

// fanout delivers data to every recipient's user subject, unless the chat is large:
// then gateways receive it from the log subject and no per-user publish is made.
func (s *Sequencer) fanout(recipients map[string]string, m *protocol.Message, data []byte) {
	if len(recipients) > s.cfg.LargeChatThreshold {
		return
	}
	for uid := range recipients {
		if err := s.deps.NC.Publish(s.deps.Subjects.User(uid), data); err != nil {
			// Live delivery may drop: clients fill gaps from history.
			s.log.Debug("fan-out publish failed", zap.String("user_id", uid), zap.Error(err))
		}
	}
	s.published.Add(uint64(len(recipients)))
}

// state returns chat's state, loading it from the log tail and the store when cold.
func (s *Sequencer) state(ctx context.Context, chat string) (*chatState, error) {
	if st, ok := s.chats.Get(chat); ok {
		return st, nil
	}
	st := &chatState{}
	last, err := s.logS.GetLastMsgForSubject(ctx, s.deps.Subjects.Log(chat))
	switch {
	case err == nil:
		st.lastLogSeq = last.Sequence
		st.lastSeq, _ = strconv.ParseUint(last.Header.Get(protocol.HeaderSeq), 10, 64)
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// Nothing in the log tail (new chat, or its messages aged out): continue
		// from the store.
		if st.lastSeq, err = s.deps.Store.LastSeq(ctx, chat); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("last log message of %s: %w", chat, err)
	}
	if err := s.loadRecentIDs(ctx, chat, st); err != nil {
		return nil, err
	}
	members, err := s.deps.Store.Members(ctx, chat)
	if err != nil {
		return nil, err
	}
	// The chat's settings: its message TTL (retention.go) and whether it is
	// end-to-end encrypted. An unknown chat has neither.
	switch c, err := s.deps.Store.GetChat(ctx, chat); {
	case err == nil:
		st.ttl, st.encrypted = c.MessageTTL, c.Encrypted
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("chat %s: %w", chat, err)
	}
	st.members = make(map[string]string, len(members))
	for _, mb := range members {
		st.members[mb.UserID] = mb.Role
	}
	if err := s.markLarge(ctx, chat, st); err != nil {
		return nil, err
	}
	s.chats.Add(chat, st)
	return st, nil
}

// validateIngress checks a message arriving on NATTER_IN with the rules every
// path in shares (protocol.ValidateMessage): from our gateways it is already valid,
// but backend services publish there directly. The history-state fields are the
// store's to set, never a publisher's: they are cleared.
func validateIngress(m *protocol.Message) error {
	if err := protocol.ValidateMessage(m); err != nil {
		return err
	}
	m.Edited, m.Deleted, m.Reactions, m.StateSeq, m.ExpiresAt = false, false, nil, 0, 0 // the expiry is the sequencer's (retention.go)
	return nil
}
