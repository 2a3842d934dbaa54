package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
)

// writeOp is one write: a statement, or an unlogged batch of statements on one
// partition. done, if set, runs after it succeeded.
type writeOp struct {
	what, chat string // for errors
	entries    []gocql.BatchEntry
	serverTime bool // membership: the coordinator's clock, like an LWT's
	done       func()
}

func entry(stmt string, args ...any) gocql.BatchEntry {
	return gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true}
}

// Batches of messages on one partition are cut at this many rows or bytes. Single
// partition batches are applied as one mutation and are exempt from Cassandra's
// batch size warnings, but a mutation must stay well under the commit log segment.
const (
	maxBatchRows  = 100
	maxBatchBytes = 512 << 10
)

// AppendMessages implements Store. It writes the batch with up to WriteConcurrency
// requests in flight: per (chat, bucket) an unlogged single-partition batch of
// message rows, per message its message_ids row, per chat the bucket index rows
// that are not known to be written yet and the last message, per sender the
// raised watermarks, and per operation its message_ops row and the mark on its
// target (see resolveTargets); the small writes are packed together (see pack).
// Every write is an idempotent upsert (registers only move one way), so a retried
// or concurrent batch converges to the same state; a message stored twice is
// overwritten with itself. On error some of the batch may be stored: the caller
// retries the whole batch.
func (s *CassandraStore) AppendMessages(ctx context.Context, msgs []protocol.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	msgs, err := s.withoutStoredIDs(ctx, msgs)
	if err != nil {
		return fmt.Errorf("cassandra: append %d messages: %w", len(msgs), err)
	}
	if len(msgs) == 0 {
		return nil
	}
	type chatPlan struct {
		last    *protocol.Message // highest seq
		lastMsg *protocol.Message // highest seq that is not an operation
		buckets map[int64][]*protocol.Message
		index   map[indexKey]seqRange
		pending []string
	}
	chats := map[string]*chatPlan{}
	senders := map[[2]string]int64{} // (sender, chat) -> highest seq
	var opMsgs []*protocol.Message
	for i := range msgs {
		m := &msgs[i]
		if m.ChatID == "" {
			return fmt.Errorf("cassandra: append: message %q has no chat ID", m.MessageID)
		}
		if m.Seq > math.MaxInt64 {
			return fmt.Errorf("cassandra: append %s/%d: seq out of range", m.ChatID, m.Seq)
		}
		cp := chats[m.ChatID]
		if cp == nil {
			cp = &chatPlan{buckets: map[int64][]*protocol.Message{}, index: map[indexKey]seqRange{}}
			chats[m.ChatID] = cp
		}
		if cp.last == nil || m.Seq > cp.last.Seq {
			cp.last = m
		}
		if protocol.Listed(m.MessageType) && (cp.lastMsg == nil || m.Seq > cp.lastMsg.Seq) {
			cp.lastMsg = m
		}
		if opTarget(m) != "" {
			opMsgs = append(opMsgs, m)
		}
		bucket := s.bucketOf(m.Timestamp)
		cp.buckets[bucket] = append(cp.buckets[bucket], m)
		seq := int64(m.Seq)
		k := indexKey{chat: m.ChatID, block: seq / seqBlock, bucket: bucket}
		if r, ok := cp.index[k]; ok {
			cp.index[k] = seqRange{min(r.lo, seq), max(r.hi, seq)}
		} else {
			cp.index[k] = seqRange{seq, seq}
		}
		if m.SenderID != "" && !protocol.IsKeyEvent(m) { // a key event is not one's own message
			sk := [2]string{m.SenderID, m.ChatID}
			senders[sk] = max(senders[sk], seq)
		}
	}

	ops := make([]writeOp, 0, 2*len(msgs)+3*len(chats)+len(senders)+2*len(opMsgs))
	var targets map[msgRef][]msgLoc
	if len(opMsgs) > 0 {
		var err error
		targets, err = s.resolveTargets(ctx, msgs, opMsgs)
		if err != nil {
			return fmt.Errorf("cassandra: append %d messages: %w", len(msgs), err)
		}
		marks := map[msgLoc]bool{}  // target row -> also purge its text
		markTTL := map[msgLoc]int{} // target row -> the longest TTL of its operations (0: none)
		for _, m := range opMsgs {
			ops = append(ops, writeOp{what: "operation", chat: m.ChatID, entries: []gocql.BatchEntry{opEntry(m)}})
			ref := msgRef{m.ChatID, m.RefID}
			locs, found := targets[ref]
			if !found {
				cp := chats[m.ChatID]
				if !slices.Contains(cp.pending, m.RefID) {
					cp.pending = append(cp.pending, m.RefID)
				}
				continue
			}
			for _, l := range locs {
				if l.seq < int64(m.Seq) { // an operation applies to earlier messages only
					marks[l] = marks[l] || m.MessageType == protocol.TypeDelete
					if prev, seen := markTTL[l]; seen {
						markTTL[l] = longerTTL(prev, ttlOf(m))
					} else {
						markTTL[l] = ttlOf(m)
					}
				}
			}
		}
		for l, purge := range marks {
			stmt := cqlMarkOps
			if purge {
				stmt = cqlMarkDeleted
			}
			ops = append(ops, writeOp{what: "operation target", chat: l.chat, entries: []gocql.BatchEntry{
				entry(stmt, markTTL[l], l.chat, l.bucket, l.seq)}})
		}
	}
	for chatID, cp := range chats {
		op, err := s.indexOp(chatID, cp.index, cp.last, cp.lastMsg, cp.pending)
		if err != nil {
			return fmt.Errorf("cassandra: append %s: %w", chatID, err)
		}
		ops = append(ops, op)
		for bucket, ms := range cp.buckets {
			var entries []gocql.BatchEntry
			size := 0
			for _, m := range ms {
				entries = append(entries, entry(cqlInsertMessage, m.ChatID, bucket, int64(m.Seq), m.MessageID, m.SenderID,
					m.Content, m.MessageType, m.Timestamp, unsetEmpty(m.ReplyTo), unsetEmpty(m.RefID), unsetBlob(m.Meta),
					unsetZero(m.ExpiresAt), ttlOf(m)))
				size += len(m.Content) + len(m.Meta) + 128
				if len(entries) == maxBatchRows || size >= maxBatchBytes {
					ops = append(ops, writeOp{what: "messages", chat: chatID, entries: entries})
					entries, size = nil, 0
				}
			}
			if len(entries) > 0 {
				ops = append(ops, writeOp{what: "messages", chat: chatID, entries: entries})
			}
			for _, m := range ms {
				if m.MessageID != "" {
					ops = append(ops, writeOp{what: "message id", chat: chatID, entries: []gocql.BatchEntry{
						entry(cqlInsertMsgID, chatID, m.MessageID, int64(m.Seq), bucket, ttlOf(m))}})
				}
			}
		}
	}
	ciphertexts, err := s.encryptedTargets(ctx, msgs, targets) // cassandra_search.go
	if err != nil {
		return fmt.Errorf("cassandra: append: %w", err)
	}
	ops = append(ops, searchOps(s.bucketOf, msgs, targets, ciphertexts)...)
	// One's own message counts as delivered and read.
	bySender := map[string][]gocql.BatchEntry{}
	for k, seq := range senders {
		bySender[k[0]] = append(bySender[k[0]], entry(cqlSetReadBoth, seq, seq, seq, k[0], k[1]))
	}
	for sender, entries := range bySender {
		ops = append(ops, writeOp{what: "read state of sender " + sender, chat: entries[0].Args[4].(string), entries: entries})
	}
	if err := s.run(ctx, pack(ops)); err != nil {
		return fmt.Errorf("cassandra: append %d messages: %w", len(msgs), err)
	}
	return nil
}

// indexOp returns the writes of one chat's partition of chat_buckets: the last
// seq and time (from last), the last message that is not an operation (lastMsg,
// if any), the bucket index rows not known to be written already, and the
// operation targets not stored yet (pending). In the steady state of a busy chat
// that is one statement, which also raises the newest index row's max_seq.
func (s *CassandraStore) indexOp(chatID string, index map[indexKey]seqRange, last, lastMsg *protocol.Message, pending []string) (writeOp, error) {
	seq := int64(last.Seq)
	var body []byte
	if lastMsg != nil {
		var err error
		if body, err = json.Marshal(lastMsg); err != nil {
			return writeOp{}, fmt.Errorf("last message %d: %w", lastMsg.Seq, err)
		}
	}
	// An expiring last message is written on its own, with its TTL (it must not
	// take last_seq with it).
	together := lastMsg != nil && lastMsg.Seq == last.Seq && lastMsg.ExpiresAt == 0 // one timestamp
	entries := []gocql.BatchEntry{entry(cqlSetLastSeq, seq, seq, last.Timestamp, chatID)}
	if together {
		entries[0] = entry(cqlSetLastAll, seq, seq, last.Timestamp, body, chatID)
	} else if lastMsg != nil {
		entries = append(entries, lastMessageEntry(lastMsg, body, chatID)) // cassandra_retention.go
	}
	if len(pending) > 0 {
		entries = append(entries, entry(cqlAddPending, pending, chatID))
	}
	var written []indexKey
	s.mu.Lock()
	for k, r := range index {
		have, ok := s.known[k]
		needMin, needMax := !ok || r.lo < have.lo, !ok || r.hi > have.hi
		if !needMin && !needMax {
			continue
		}
		written = append(written, k)
		// min_seq: a min register (the lower the seq, the higher the timestamp,
		// within 1..seqBlock); max_seq: a max register (timestamp = seq).
		if needMin {
			entries = append(entries, entry(cqlIndexMin, (k.block+1)*seqBlock-r.lo, r.lo, chatID, k.block, k.bucket))
		}
		switch {
		case !needMax:
		case r.hi == seq && together:
			entries[0] = entry(cqlSetLastAllAndMax, seq, seq, last.Timestamp, body, seq, chatID, k.block, k.bucket)
		case r.hi == seq:
			entries[0] = entry(cqlSetLastSeqAndMax, seq, seq, last.Timestamp, seq, chatID, k.block, k.bucket)
		default:
			entries = append(entries, entry(cqlIndexMax, r.hi, r.hi, chatID, k.block, k.bucket))
		}
	}
	s.mu.Unlock()
	if len(written) == 0 {
		return writeOp{what: "last message", chat: chatID, entries: entries}, nil
	}
	return writeOp{what: "bucket index and last message", chat: chatID, entries: entries, done: func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.known) > maxKnownIndex {
			clear(s.known)
		}
		for _, k := range written {
			r := index[k]
			if have, ok := s.known[k]; ok {
				r = seqRange{min(r.lo, have.lo), max(r.hi, have.hi)}
			}
			s.known[k] = r
		}
	}}, nil
}

// Small writes are packed into unlogged batches that span partitions: up to
// packOps ops of at most packSmall statements each. Every op is on one partition,
// so a batch spans at most packOps partitions (Cassandra warns above 10). A batch
// costs one request instead of one per op, which is most of the cost of a small
// write; each partition's part is still applied atomically, and the coordinator
// forwards the parts it does not own to their replicas.
const (
	packSmall = 4
	packOps   = 10
)

// pack merges small ops into multi-partition batches, never splitting an op.
// Larger ops (single-partition batches of messages) stay as they are.
func pack(ops []writeOp) []writeOp {
	out := ops[:0:0]
	var cur *writeOp
	n := 0 // ops in cur
	for _, op := range ops {
		if len(op.entries) > packSmall || op.serverTime {
			out = append(out, op)
			continue
		}
		if cur != nil && n == packOps {
			out = append(out, *cur)
			cur = nil
		}
		if cur == nil {
			cur, n = &writeOp{what: "small writes", chat: op.chat}, 0
		}
		if cur.chat != op.chat {
			cur.chat = "(several)"
		}
		cur.entries = append(cur.entries, op.entries...)
		n++
		if op.done != nil {
			prev, done := cur.done, op.done
			cur.done = func() {
				if prev != nil {
					prev()
				}
				done()
			}
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

func unsetEmpty(v string) any {
	if v == "" {
		return gocql.UnsetValue // no cell at all, rather than an empty one
	}
	return v
}

func unsetBlob(b json.RawMessage) any {
	if len(b) == 0 {
		return gocql.UnsetValue
	}
	return []byte(b)
}

// run executes ops with at most WriteConcurrency in flight (shared by every caller)
// and returns the first error, after cancelling the rest.
func (s *CassandraStore) run(ctx context.Context, ops []writeOp) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	next := make(chan *writeOp)
	workers := min(len(ops), cap(s.writes))
	for range workers {
		wg.Go(func() {
			for op := range next {
				if err := s.exec(ctx, op); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range ops {
		select {
		case s.writes <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		select {
		case next <- &ops[i]:
		case <-ctx.Done():
			<-s.writes
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// exec runs one op and frees its slot in s.writes.
func (s *CassandraStore) exec(ctx context.Context, op *writeOp) error {
	defer func() { <-s.writes }()
	if ctx.Err() != nil {
		return nil // the run is being cancelled; its cause is already recorded
	}
	var err error
	if len(op.entries) == 1 {
		e := op.entries[0]
		err = s.sess.Query(e.Stmt, e.Args...).WithContext(ctx).Idempotent(true).DefaultTimestamp(!op.serverTime).Exec()
	} else {
		b := s.sess.NewBatch(gocql.UnloggedBatch).WithContext(ctx).DefaultTimestamp(!op.serverTime)
		b.Entries = op.entries
		err = s.sess.ExecuteBatch(b)
	}
	if err != nil {
		return fmt.Errorf("%s of chat %s (%d statements): %w", op.what, op.chat, len(op.entries), err)
	}
	if op.done != nil {
		op.done()
	}
	return nil
}
