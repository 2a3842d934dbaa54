package sequencer

import (
	"context"
	"errors"
	"fmt"

	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Exactly once by (chat, messageId), forever.
//
// A message is sequenced at most once per chat and client message ID, however late
// it is sent again: after JetStream's dedupe window, a sequencer restart or a
// failover. Before a message is sequenced, the sequencer asks whether its chat
// already holds its ID, in two places that between them cover every message of the
// chat:
//   - the chat state's recent IDs (recentIDs): every message of the chat whose
//     NATTER_LOG stream seq is above the state's bound. They are filled as messages
//     are sequenced and, when a chat's state is loaded cold, from the chat's log tail
//     that the persister has not stored yet (history.Reader.UnpersistedIDs, one
//     bounded read), so bound starts at the persister's ack floor;
//   - the store's message-ID index (store.MessageSeqs) for the rest: every message
//     at or below bound, which the store holds once the persister's ack floor is at
//     or past bound. The IDs of a sequencer batch are looked up in one call
//     (prefetch), not one round trip per message.
//
// The recent IDs are trimmed to recentIDsKept, but only of messages the persister
// has stored (at or below its ack floor), so bound never passes the floor and the
// store stays the authority below it; only a chat holding more than recentIDsMax
// unstored messages trims unstored ones, and while the floor is below bound its
// misses are looked up in the store and the whole log tail (history.Reader.Message:
// slow, but exact).
//
// This replaces the ingress-seq watermark that used to decide "already sequenced"
// (inSeq <= the chat's last Natter-In-Seq): it assumed a chat's ingress is
// sequenced in ingress order, and the NATS-node crash tests found messages
// redelivered out of order that it then dropped unsequenced. JetStream's
// Nats-Msg-Id dedupe on NATTER_LOG stays as a second net (sequence: ack.Duplicate).
//
// The ingress message a chat message came from (inRef) only decides whether a
// message found sequenced is answered as a duplicate: a resend is, the same ingress
// message delivered again is not.

// recentIDsKept is how many of a chat's most recent message IDs its state keeps
// once they are stored: a resend soon after its ack is answered from memory.
var recentIDsKept = 64

// recentIDsMax bounds a chat's recent IDs whatever the persister's lag.
var recentIDsMax = 65536

// recentIDs are the IDs of a chat's newest sequenced messages, oldest first. Owned
// by the chat state's partition goroutine.
type recentIDs struct {
	entries []idEntry // entries[head:] are kept, in seq order
	head    int
	byID    map[string]prior // message ID -> where it was sequenced
	// bound is a NATTER_LOG stream seq: every message of the chat above it is in
	// entries; those at or below it are in the store once the persister's ack floor
	// reaches it.
	bound uint64
	// evictions counts trims: a prefetched store answer is believed only if none
	// happened since (idPrefetch).
	evictions uint64
}

type idEntry struct {
	id     string
	seq    uint64
	logSeq uint64
	in     inRef
}

// inRef names one NATTER_IN message: its stream seq and when the stream stored it
// (unix ns). The seq alone does not: a memory NATTER_IN (natsutil.InStreamConfig)
// comes back empty from a NATS restart and numbers from 1 again, so a client's
// resend can be stored under the seq of the message it resends. The store time
// tells them apart (a restart takes far longer than a nanosecond). Log messages
// carry both (protocol.HeaderInSeq, protocol.HeaderInTime).
type inRef struct {
	seq    uint64
	stored int64 // 0: unknown (a log message appended before HeaderInTime existed)
}

// prior is where a message ID was sequenced before: its chat seq and the ingress
// message it came from (zero: unknown, e.g. found in the store).
type prior struct {
	seq uint64
	in  inRef
}

// duplicateOf reports whether ingress message in, whose chat and message ID were
// sequenced as p, is a duplicate for its publisher: a different send of the same
// ID. The same ingress message found sequenced (its ingress ack or its answer was
// lost, a batch whose commit was not acknowledged was committed after all) is not:
// its publisher may still wait for the answer, and it is its first. When p's
// ingress message is not fully known, it is a duplicate: never an ack to a resend
// that says "first".
func (p prior) duplicateOf(in inRef) bool {
	return p.in.seq == 0 || p.in.stored == 0 || p.in != in
}

func (r *recentIDs) len() int { return len(r.entries) - r.head }

func (r *recentIDs) get(id string) (prior, bool) {
	p, ok := r.byID[id]
	return p, ok
}

func (r *recentIDs) add(id string, seq, logSeq uint64, in inRef) {
	if r.byID == nil {
		r.byID = make(map[string]prior)
	}
	r.entries = append(r.entries, idEntry{id: id, seq: seq, logSeq: logSeq, in: in})
	r.byID[id] = prior{seq: seq, in: in}
}

// evictOldest drops the oldest entry, raising bound to its log seq.
func (r *recentIDs) evictOldest() {
	e := r.entries[r.head]
	r.entries[r.head] = idEntry{}
	r.head++
	if r.byID[e.id].seq == e.seq {
		delete(r.byID, e.id)
	}
	r.bound = max(r.bound, e.logSeq)
	r.evictions++
	if r.head > 64 && r.head > len(r.entries)/2 { // compact: memory stays bounded
		n := copy(r.entries, r.entries[r.head:])
		clear(r.entries[n:])
		r.entries, r.head = r.entries[:n], 0
	}
}

// remember records that chat message id was sequenced as seq at log stream seq
// logSeq from ingress message in, and trims st's recent IDs of what the store holds.
func (s *Sequencer) remember(ctx context.Context, st *chatState, id string, seq, logSeq uint64, in inRef) {
	r := &st.ids
	r.add(id, seq, logSeq, in)
	if r.len() <= recentIDsKept {
		return
	}
	// Enough to trim the oldest: a floor read earlier that reaches it answers
	// without a request (history.Reader.PersistedFloorAtLeast).
	floor, err := s.hist.PersistedFloorAtLeast(ctx, r.entries[r.head].logSeq)
	if err != nil {
		floor = 0 // unknown: trim nothing stored-only
	}
	for r.len() > recentIDsKept && r.entries[r.head].logSeq <= floor {
		r.evictOldest()
	}
	for r.len() > recentIDsMax {
		r.evictOldest()
	}
}

// loadRecentIDs fills a cold chat state's recent IDs from the chat's unstored log
// tail.
func (s *Sequencer) loadRecentIDs(ctx context.Context, chat string, st *chatState) error {
	ids, bound, err := s.hist.UnpersistedIDs(ctx, chat, recentIDsMax)
	if err != nil {
		return fmt.Errorf("recent message IDs of %s: %w", chat, err)
	}
	st.ids = recentIDs{bound: bound, entries: make([]idEntry, 0, len(ids))}
	for _, e := range ids {
		st.ids.add(e.MessageID, e.Seq, e.LogSeq, inRef{seq: e.InSeq, stored: e.InTime})
	}
	return nil
}

// storeAuthoritative reports whether every message of st's chat not in its recent
// IDs is in the store (the persister's ack floor has reached their bound).
func (s *Sequencer) storeAuthoritative(ctx context.Context, st *chatState) (bool, error) {
	if st.ids.bound == 0 {
		return true, nil
	}
	floor, err := s.hist.PersistedFloorAtLeast(ctx, st.ids.bound)
	if err != nil {
		return false, err
	}
	return floor >= st.ids.bound, nil
}

// idPrefetch holds the store's answers for the message IDs of one batch, asked in
// one call. An answer for a chat is believed only while the chat's state is the
// one it was asked for and has trimmed nothing since: the answer plus the recent
// IDs then still cover the chat.
type idPrefetch struct {
	seqs  map[store.MessageKey]uint64 // asked: 0 means not stored
	chats map[string]prefetchedChat
}

type prefetchedChat struct {
	st        *chatState
	evictions uint64
}

func (p *idPrefetch) reset() {
	clear(p.seqs)
	clear(p.chats)
}

// lookup returns the prefetched answer for k in state st, if there is a valid one.
func (p *idPrefetch) lookup(k store.MessageKey, st *chatState) (seq uint64, ok bool) {
	if p == nil {
		return 0, false
	}
	c, ok := p.chats[k.ChatID]
	if !ok || c.st != st || c.evictions != st.ids.evictions {
		return 0, false
	}
	seq, ok = p.seqs[k]
	return seq, ok
}

// prefetch asks the store, in one call, for the keys whose chats have a loaded
// state that does not already know them and whose store answers are
// authoritative. Errors are left to the per-message lookup.
func (s *Sequencer) prefetch(ctx context.Context, p *idPrefetch, keys []store.MessageKey) {
	if p.seqs == nil {
		p.seqs, p.chats = make(map[store.MessageKey]uint64), make(map[string]prefetchedChat)
	}
	ask := keys[:0:0]
	for _, k := range keys {
		if _, done := p.seqs[k]; done {
			continue
		}
		c, ok := p.chats[k.ChatID]
		if !ok {
			st, cached := s.chats.Peek(k.ChatID)
			if !cached {
				continue
			}
			if auth, err := s.storeAuthoritative(ctx, st); err != nil || !auth {
				continue
			}
			c = prefetchedChat{st: st, evictions: st.ids.evictions}
			p.chats[k.ChatID] = c
		}
		if _, known := c.st.ids.get(k.MessageID); known {
			continue
		}
		p.seqs[k] = 0
		ask = append(ask, k)
	}
	if len(ask) == 0 {
		return
	}
	found, err := s.deps.Store.MessageSeqs(ctx, ask)
	if err != nil {
		for _, k := range ask {
			delete(p.seqs, k)
		}
		return
	}
	for k, seq := range found {
		p.seqs[k] = seq
	}
}

// sequencedAs reports whether chat message id was sequenced already, and where:
// from the recent IDs, a prefetched store answer (pre, may be nil), the store, or,
// while the store is not authoritative for the chat, the store and the whole log
// tail. An error means it cannot tell now (retry).
func (s *Sequencer) sequencedAs(ctx context.Context, st *chatState, chat, id string, pre *idPrefetch) (prior, bool, error) {
	if p, ok := st.ids.get(id); ok {
		return p, true, nil
	}
	auth, err := s.storeAuthoritative(ctx, st)
	if err != nil {
		return prior{}, false, fmt.Errorf("persisted floor: %w", err)
	}
	if !auth {
		m, err := s.hist.Message(ctx, chat, id, "")
		switch {
		case errors.Is(err, store.ErrNotFound):
			return prior{}, false, nil
		case err != nil:
			return prior{}, false, fmt.Errorf("look up %s/%s: %w", chat, id, err)
		}
		s.log.Debug("message ID looked up in the log tail", zap.String("chat_id", chat), zap.Uint64("bound", st.ids.bound))
		return prior{seq: m.Seq}, true, nil
	}
	k := store.MessageKey{ChatID: chat, MessageID: id}
	if seq, ok := pre.lookup(k, st); ok {
		return prior{seq: seq}, seq > 0, nil
	}
	seq, err := s.deps.Store.MessageSeq(ctx, chat, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return prior{}, false, nil
	case err != nil:
		return prior{}, false, fmt.Errorf("look up %s/%s: %w", chat, id, err)
	}
	return prior{seq: seq}, true, nil
}

// prefetchIDs loads the chat states of ds (a partition's drain, decoded) and asks the
// store, in one call, about their message IDs that the recent IDs do not hold,
// which sequencedAs would otherwise look up one by one.
func (b *batcher) prefetchIDs(ctx context.Context, ds []delivery) {
	keys := make([]store.MessageKey, 0, len(ds))
	for i := range ds {
		if ds[i].metaErr != nil || ds[i].err != nil {
			continue // never sequenced: nothing to look up
		}
		chat := ds[i].m.ChatID
		keys = append(keys, store.MessageKey{ChatID: chat, MessageID: ds[i].m.MessageID})
		if !b.s.chats.Contains(chat) {
			// Loaded now rather than when its first message is decided (add), so
			// its IDs are asked with the others. A failure is left to add.
			_, _ = b.s.state(ctx, chat)
		}
	}
	b.s.prefetch(ctx, &b.pre, keys)
}
