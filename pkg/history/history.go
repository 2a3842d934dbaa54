// Package history reads a chat's history so that it never shows a hole while
// persisters lag: it merges the store with the tail of NATTER_LOG that the persister
// consumer has not acknowledged yet.
package history

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
)

// Store is what a Reader reads of the store (pkg/store's Store has it all).
type Store interface {
	History(ctx context.Context, chatID string, q store.HistoryQuery) ([]protocol.Message, error)
	LastSeq(ctx context.Context, chatID string) (uint64, error)
	MessageSeq(ctx context.Context, chatID, messageID string) (uint64, error)
}

var _ Store = store.Store(nil)

// Reader reads history pages. It is safe for concurrent use.
type Reader struct {
	Store    Store
	JS       jetstream.JetStream
	Subjects subjects.Subjects
	// Consumer is the durable consumer whose ack floor marks what the store holds.
	// Empty: no floor is known, so every message still in NATTER_LOG is merged.
	Consumer string

	mu      sync.Mutex // guards floor, floorAt, cons, stream
	floor   uint64
	floorAt time.Time
	cons    jetstream.Consumer // the persister consumer's handle, once looked up
	stream  jetstream.Stream
	// refreshing is set while PersistedFloorAtLeast reads the floor in the
	// background.
	refreshing atomic.Bool
}

// logStream returns the NATTER_LOG handle, looked up once.
func (r *Reader) logStream(ctx context.Context) (jetstream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		return r.stream, nil
	}
	st, err := r.JS.Stream(ctx, subjects.LogStream)
	if err != nil {
		return nil, fmt.Errorf("log stream: %w", err)
	}
	r.stream = st
	return st, nil
}

// floorTTL is how long a read of the persister's ack floor is reused.
var floorTTL = 100 * time.Millisecond

// persistedFloor returns the NATTER_LOG stream seq up to which every message is in
// the store (the persister consumer's ack floor), read again once the last read is
// floorTTL old.
func (r *Reader) persistedFloor(ctx context.Context) (uint64, error) {
	if r.Consumer == "" {
		return 0, nil
	}
	r.mu.Lock()
	if time.Since(r.floorAt) < floorTTL {
		f := r.floor
		r.mu.Unlock()
		return f, nil
	}
	r.mu.Unlock()
	return r.readFloor(ctx)
}

// readFloor reads the persister consumer's ack floor: one JetStream request once the
// consumer's handle is known (before, every read looked the consumer up and then
// asked for its info, two requests in the sequencer's path). A failed read answers
// the last floor read, if any: it is still true (see PersistedFloorAtLeast).
func (r *Reader) readFloor(ctx context.Context) (uint64, error) {
	r.mu.Lock()
	c := r.cons
	r.mu.Unlock()
	var info *jetstream.ConsumerInfo
	if c == nil {
		var err error
		if c, err = r.JS.Consumer(ctx, subjects.LogStream, r.Consumer); err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return 0, nil // no persister yet: everything is in the log
			}
			return r.lastFloor(fmt.Errorf("persister consumer: %w", err))
		}
		info = c.CachedInfo() // the lookup read it just now
	} else {
		var err error
		if info, err = c.Info(ctx); err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				r.mu.Lock()
				r.cons, r.floorAt = nil, time.Time{}
				r.mu.Unlock()
				return 0, nil // deleted: everything is in the log until it is back
			}
			return r.lastFloor(fmt.Errorf("persister consumer: %w", err))
		}
	}
	r.mu.Lock()
	r.cons, r.floor, r.floorAt = c, info.AckFloor.Stream, time.Now()
	r.mu.Unlock()
	return info.AckFloor.Stream, nil
}

// lastFloor answers a failed floor read: the last floor read, or err if there is
// none.
func (r *Reader) lastFloor(err error) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.floorAt.IsZero() {
		return 0, err
	}
	return r.floor, nil
}

// Why the tail is read this way: history used to fetch the unpersisted tail with one
// GetMsg per message on every page, so a page cost grew with the persister's lag
// (720 unpersisted messages: 15 ms became 1.7 s). Now a page reads only the part
// of the tail it needs, in one pull: the chat's messages from the page's lowest seq
// to its newest (the newer ones are needed for the edits, deletes and reactions
// that apply to the page's messages). The log has no index by chat seq, but a
// chat's log messages carry contiguous chat seqs in stream order, so the stream
// seq where a chat seq starts is found by a few next-by-subject probes
// (interpolation, then bisection). The newest page thus costs the same whatever
// the lag; a page deep inside a long unpersisted tail reads from itself to the
// tail's end.

// tailBounds are the first and last of a chat's log messages after the floor.
type tailBounds struct {
	firstStream, firstChat uint64
	lastStream, lastChat   uint64
}

// bounds returns chat's first log message after stream seq floor and its last
// one (newest, when the caller has read it: else read here); ok false if there is
// none.
func (r *Reader) bounds(ctx context.Context, st jetstream.Stream, subj string, floor uint64, newest *jetstream.RawStreamMsg) (b tailBounds, ok bool, err error) {
	// Cheap check first: is the chat's last log message already persisted?
	last := newest
	if last == nil {
		if last, err = st.GetLastMsgForSubject(ctx, subj); errors.Is(err, jetstream.ErrMsgNotFound) {
			return b, false, nil
		} else if err != nil {
			return b, false, err
		}
	}
	if last.Sequence <= floor {
		return b, false, nil
	}
	first, err := st.GetMsg(ctx, floor+1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return b, false, nil
	}
	if err != nil {
		return b, false, err
	}
	b = tailBounds{firstStream: first.Sequence, firstChat: chatSeq(first), lastStream: last.Sequence, lastChat: chatSeq(last)}
	return b, b.firstChat <= b.lastChat, nil
}

// chatSeq is the chat seq of log message m (its header, else its payload).
func chatSeq(m *jetstream.RawStreamMsg) uint64 {
	if seq, err := strconv.ParseUint(m.Header.Get(protocol.HeaderSeq), 10, 64); err == nil {
		return seq
	}
	if msg, err := protocol.DecodeMessageFrame(m.Data); err == nil {
		return msg.Seq
	}
	return 0
}

// seek returns the stream seq of chat's log message with chat seq target, given
// b.firstChat < target <= b.lastChat: the smallest stream seq x whose next message
// on subj has a chat seq >= target.
func seek(ctx context.Context, st jetstream.Stream, subj string, b tailBounds, target uint64) (uint64, error) {
	// Invariants: the next message at or after lo has a chat seq cLo < target; the
	// one at or after hi is ans, with chat seq cHi >= target.
	lo, cLo := b.firstStream, b.firstChat
	hi, cHi, ans := b.lastStream, b.lastChat, b.lastStream
	for probe := 0; hi-lo > 1; probe++ {
		x := lo + (hi-lo)/2
		if probe%2 == 0 && cHi > cLo {
			// Interpolate, as if the chat's share of the stream were even: exact
			// for a chat alone in the log, close for a steady one.
			x = lo + uint64(float64(hi-lo)*float64(target-cLo)/float64(cHi-cLo))
		}
		x = min(max(x, lo+1), hi-1)
		m, err := st.GetMsg(ctx, x, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return 0, fmt.Errorf("seek seq %d: %w", target, err)
		}
		switch c := chatSeq(m); {
		case c == target:
			return m.Sequence, nil
		case c > target:
			hi, cHi, ans = x, c, m.Sequence
		default:
			lo, cLo = max(x, m.Sequence), c
		}
	}
	return ans, nil
}

// smallTail is the most messages read with one GetMsg each rather than through a
// short-lived consumer. The consumer costs three requests, and on a cluster its
// creation goes through the meta leader; a persister that keeps up leaves a tail
// of a few messages, read faster one by one.
const smallTail = 16

// unpersisted returns chat's messages in NATTER_LOG after stream seq floor whose
// chat seq is at least from(lastChat) (from gets the chat's last sequenced seq),
// oldest first: at most what the persister has not stored yet. With newest (the
// chat's newest log message, as the caller read it) the tail ends there.
func (r *Reader) unpersisted(ctx context.Context, chat string, floor uint64, from func(lastChat uint64) uint64, newest *jetstream.RawStreamMsg) ([]protocol.Message, error) {
	st, err := r.logStream(ctx)
	if err != nil {
		return nil, err
	}
	subj := r.Subjects.Log(chat)
	b, ok, err := r.bounds(ctx, st, subj, floor, newest)
	if err != nil || !ok {
		return nil, err
	}
	target := max(from(b.lastChat), b.firstChat)
	if target > b.lastChat {
		return nil, nil
	}
	start := b.firstStream
	if target > b.firstChat {
		if start, err = seek(ctx, st, subj, b, target); err != nil {
			return nil, err
		}
	}
	raws, err := readTail(ctx, r.JS, st, subj, start, b.lastStream, int(b.lastChat-target+1))
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Message, 0, len(raws))
	for _, raw := range raws {
		if m, err := protocol.DecodeMessageFrame(raw.data); err == nil && m.Seq <= b.lastChat {
			out = append(out, m)
		}
	}
	return out, nil
}

// pageFrom returns the lowest chat seq a page for q may hold, given the chat's
// last seq: seqs are contiguous, so a page of limit messages before q.Before (or
// the newest) starts limit below it.
func pageFrom(q store.HistoryQuery, limit int) func(lastChat uint64) uint64 {
	return func(lastChat uint64) uint64 {
		if q.Dir == store.Forward {
			return q.After + 1
		}
		top := lastChat + 1
		if q.Before != 0 {
			top = min(top, q.Before)
		}
		if top <= uint64(limit) {
			return 1
		}
		return top - uint64(limit)
	}
}

// Page returns one page of chat's history, like store.Store.History, including
// messages not yet persisted, and with the operations not yet persisted applied to
// the page's messages (state.go), for q.Viewer.
func (r *Reader) Page(ctx context.Context, chat string, q store.HistoryQuery) ([]protocol.Message, error) {
	return r.page(ctx, chat, q, nil)
}

// PageUpTo is Page for a caller that has just read the chat's newest log message,
// newest (as the log stream's GetLastMsgForSubject returns it): the log tail it
// merges ends at newest, so messages sequenced since may be missing from the page
// (as if it had been read at that moment), and the newest message is not read
// again. The notifier counts a notification's unread messages up to the newest
// message it decided on this way: one request less per notification.
func (r *Reader) PageUpTo(ctx context.Context, chat string, q store.HistoryQuery, newest *jetstream.RawStreamMsg) ([]protocol.Message, error) {
	return r.page(ctx, chat, q, newest)
}

func (r *Reader) page(ctx context.Context, chat string, q store.HistoryQuery, newest *jetstream.RawStreamMsg) ([]protocol.Message, error) {
	floor, err := r.persistedFloor(ctx)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultPage
	}
	limit = min(limit, store.MaxPage)
	if q.Dir == store.Forward {
		q.After = max(q.After, q.Floor)
	} else if q.Floor > 0 && q.Before != 0 && q.Before <= q.Floor+1 {
		return nil, nil // everything before it is below the floor
	}
	// The tail is read before the store: the persisters trim the log only of what
	// is stored (persister/trim.go), so a message gone from the log by now was in
	// the store before the store read below.
	tail, err := r.unpersisted(ctx, chat, floor, pageFrom(q, limit), newest)
	if err != nil {
		return nil, fmt.Errorf("log tail of %s: %w", chat, err)
	}
	stored, err := r.Store.History(ctx, chat, q)
	if err != nil {
		return nil, err
	}
	if len(tail) == 0 {
		return aboveFloor(stored, q.Floor), nil
	}
	// Expired messages are gone (the store hides its own; the log keeps them until
	// it is trimmed), and so is what is below the viewer's floor. An expired
	// operation still applies to its target, as it does in the store.
	now := time.Now().UnixMilli()
	seen := make(map[uint64]bool, len(stored))
	all := stored
	for _, m := range stored {
		seen[m.Seq] = true
	}
	for _, m := range tail {
		if seen[m.Seq] || m.Expired(now) {
			continue
		}
		if q.Dir == store.Forward && m.Seq > q.After || q.Dir == store.Backward && (q.Before == 0 || m.Seq < q.Before) {
			all = append(all, m)
		}
	}
	if q.Dir == store.Forward {
		slices.SortFunc(all, func(a, b protocol.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	} else {
		slices.SortFunc(all, func(a, b protocol.Message) int { return cmp.Compare(b.Seq, a.Seq) })
	}
	if len(all) > limit {
		all = all[:limit]
	}
	applyOps(all, tail, q.Viewer)
	return aboveFloor(all, q.Floor), nil
}

// aboveFloor drops the messages at or below floor from page (any order).
func aboveFloor(page []protocol.Message, floor uint64) []protocol.Message {
	if floor == 0 {
		return page
	}
	return slices.DeleteFunc(page, func(m protocol.Message) bool { return m.Seq <= floor })
}

// LastSeq returns chat's last sequenced seq, from the log tail or else the store.
func (r *Reader) LastSeq(ctx context.Context, chat string) (uint64, error) {
	st, err := r.logStream(ctx)
	if err != nil {
		return 0, err
	}
	last, err := st.GetLastMsgForSubject(ctx, r.Subjects.Log(chat))
	if err == nil {
		if seq, perr := strconv.ParseUint(last.Header.Get(protocol.HeaderSeq), 10, 64); perr == nil {
			return seq, nil
		}
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, err
	}
	return r.Store.LastSeq(ctx, chat)
}
