package history

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// LoggedID is a sequenced message's ID with its chat seq and its NATTER_LOG stream
// seq.
type LoggedID struct {
	MessageID string
	Seq       uint64 // chat seq
	LogSeq    uint64 // NATTER_LOG stream seq
	InSeq     uint64 // NATTER_IN stream seq it was sequenced from (protocol.HeaderInSeq; 0: unknown)
	InTime    int64  // when NATTER_IN stored that message, unix ns (protocol.HeaderInTime; 0: unknown)
}

// PersistedFloor returns the NATTER_LOG stream seq up to which every message is in
// the store: the persister consumer's ack floor (read at most every 100 ms), 0 when
// no consumer is named or it does not exist yet.
func (r *Reader) PersistedFloor(ctx context.Context) (uint64, error) { return r.persistedFloor(ctx) }

// PersistedFloorAtLeast is PersistedFloor for a caller that needs to know whether
// the floor has reached min, not its newest value. A floor read earlier that has
// reached min answers at once: a floor read stays true (every log message at or
// below it was stored, and the store keeps what it stored). Once that read is
// 100 ms old it is read again in the background, as PersistedFloor would, so a
// deleted persister consumer is noticed as soon as before. Only a floor below min
// is read while the caller waits (at most every 100 ms). The sequencer asks for
// every batch whether the store is authoritative for a chat's message IDs; a fresh
// read there was two JetStream requests every 100 ms in the partition's path, 11 ms
// of each 85 ms round at saturation (docs/performance.md, "The persisted floor off
// the sequencer's path").
func (r *Reader) PersistedFloorAtLeast(ctx context.Context, min uint64) (uint64, error) {
	r.mu.Lock()
	f, at := r.floor, r.floorAt
	r.mu.Unlock()
	if at.IsZero() || f < min {
		return r.persistedFloor(ctx)
	}
	if time.Since(at) >= floorTTL && r.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer r.refreshing.Store(false)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = r.readFloor(rctx) // a failure keeps the floor read before
		}()
	}
	return f, nil
}

// UnpersistedIDs returns the IDs of chat's log messages that the store may not hold
// yet (those after the persisted floor), oldest first, at most max of them (the
// newest), in one bounded read. bound is a NATTER_LOG stream seq such that every
// message of chat above it is in ids: the floor when the whole unpersisted tail
// fit, else the stream seq just below the oldest one returned. Every message of
// chat at or below bound is in the store once PersistedFloor reaches bound.
func (r *Reader) UnpersistedIDs(ctx context.Context, chat string, max int) (ids []LoggedID, bound uint64, err error) {
	floor, err := r.persistedFloor(ctx)
	if err != nil {
		return nil, 0, err
	}
	st, err := r.logStream(ctx)
	if err != nil {
		return nil, 0, err
	}
	subj := r.Subjects.Log(chat)
	b, ok, err := r.bounds(ctx, st, subj, floor, nil)
	if err != nil || !ok {
		return nil, floor, err
	}
	start, bound := b.firstStream, floor
	n := b.lastChat - b.firstChat + 1
	if max > 0 && n > uint64(max) {
		n = uint64(max)
		if start, err = seek(ctx, st, subj, b, b.lastChat-n+1); err != nil {
			return nil, 0, fmt.Errorf("log tail of %s: %w", chat, err)
		}
		bound = start - 1
	}
	raws, err := readTail(ctx, r.JS, st, subj, start, b.lastStream, int(n))
	if err != nil {
		return nil, 0, fmt.Errorf("log tail of %s: %w", chat, err)
	}
	ids = make([]LoggedID, 0, len(raws))
	for _, raw := range raws {
		if m, err := protocol.DecodeMessageFrame(raw.data); err == nil && m.Seq <= b.lastChat {
			in, _ := strconv.ParseUint(raw.hdr.Get(protocol.HeaderInSeq), 10, 64)
			at, _ := strconv.ParseInt(raw.hdr.Get(protocol.HeaderInTime), 10, 64)
			ids = append(ids, LoggedID{MessageID: m.MessageID, Seq: m.Seq, LogSeq: raw.seq, InSeq: in, InTime: at})
		}
	}
	return ids, bound, nil
}
