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
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
)

// Reader reads history pages. It is safe for concurrent use.
type Reader struct {
	Store    store.Store
	JS       jetstream.JetStream
	Subjects subjects.Subjects
	// Consumer is the durable consumer whose ack floor marks what the store holds.
	// Empty: no floor is known, so every message still in NATTER_LOG is merged.
	Consumer string

	mu      sync.Mutex // guards floor, floorAt, stream
	floor   uint64
	floorAt time.Time
	stream  jetstream.Stream
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
// the store (the persister consumer's ack floor).
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
	c, err := r.JS.Consumer(ctx, subjects.LogStream, r.Consumer)
	if err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, nil // no persister yet: everything is in the log
		}
		return 0, fmt.Errorf("persister consumer: %w", err)
	}
	info := c.CachedInfo()
	if fresh, err := c.Info(ctx); err == nil {
		info = fresh
	}
	r.mu.Lock()
	r.floor, r.floorAt = info.AckFloor.Stream, time.Now()
	r.mu.Unlock()
	return info.AckFloor.Stream, nil
}

// unpersisted returns chat's messages in NATTER_LOG after stream seq floor, oldest
// first: at most what the persister has not stored yet.
func (r *Reader) unpersisted(ctx context.Context, chat string, floor uint64) ([]protocol.Message, error) {
	st, err := r.logStream(ctx)
	if err != nil {
		return nil, err
	}
	subj := r.Subjects.Log(chat)
	// Cheap check first: is the chat's last log message already persisted?
	last, err := st.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if last.Sequence <= floor {
		return nil, nil
	}
	var out []protocol.Message
	next := floor + 1
	for next <= last.Sequence {
		raw, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		m, err := protocol.DecodeMessageFrame(raw.Data)
		if err == nil {
			out = append(out, m)
		}
		next = raw.Sequence + 1
	}
	return out, nil
}

// Page returns one page of chat's history, like store.Store.History, including
// messages not yet persisted, and with the operations not yet persisted applied to
// the page's messages (state.go), for q.Viewer.
func (r *Reader) Page(ctx context.Context, chat string, q store.HistoryQuery) ([]protocol.Message, error) {
	floor, err := r.persistedFloor(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := r.Store.History(ctx, chat, q)
	if err != nil {
		return nil, err
	}
	tail, err := r.unpersisted(ctx, chat, floor)
	if err != nil {
		return nil, fmt.Errorf("log tail of %s: %w", chat, err)
	}
	if len(tail) == 0 {
		return stored, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultPage
	}
	limit = min(limit, store.MaxPage)
	seen := make(map[uint64]bool, len(stored))
	all := stored
	for _, m := range stored {
		seen[m.Seq] = true
	}
	for _, m := range tail {
		if seen[m.Seq] {
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
	return all, nil
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
