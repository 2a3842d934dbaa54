package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Message returns chat's message messageID in its current state as viewer sees it
// (edited text, deletion, reactions with Me), whether or not the persister has
// stored it or its operations yet. It returns an error wrapping store.ErrNotFound if
// no message with that ID was sequenced in chat (or it has aged out of both the log
// and the store). The sequencer uses it to authorize edits, deletes, reactions and
// replies; the gateway to check media shares.
func (r *Reader) Message(ctx context.Context, chat, messageID, viewer string) (protocol.Message, error) {
	floor, err := r.persistedFloor(ctx)
	if err != nil {
		return protocol.Message{}, err
	}
	var msg protocol.Message
	found := false
	seq, err := r.Store.MessageSeq(ctx, chat, messageID)
	switch {
	case err == nil:
		page, err := r.Store.History(ctx, chat, store.HistoryQuery{Dir: store.Forward, After: seq - 1, Limit: 1, Viewer: viewer})
		if err != nil {
			return protocol.Message{}, err
		}
		if len(page) == 1 && page[0].Seq == seq {
			msg, found = page[0], true
		}
	case !errors.Is(err, store.ErrNotFound):
		return protocol.Message{}, err
	}
	var tail []protocol.Message
	if found {
		// A stored message needs only the tail's operations after it.
		if tail, err = r.unpersisted(ctx, chat, floor, func(uint64) uint64 { return seq + 1 }, nil); err != nil {
			return protocol.Message{}, fmt.Errorf("log tail of %s: %w", chat, err)
		}
	} else if msg, tail, found, err = r.findInTail(ctx, chat, floor, messageID); err != nil {
		return protocol.Message{}, err
	}
	if !found || msg.Expired(time.Now().UnixMilli()) {
		return protocol.Message{}, fmt.Errorf("message %s/%s: %w", chat, messageID, store.ErrNotFound)
	}
	one := []protocol.Message{msg}
	applyOps(one, tail, viewer)
	return one[0], nil
}

// tailWindows are the newest parts of a chat's tail searched, in turn, for a
// message not stored yet (0: all of it).
var tailWindows = []uint64{64, 1024, 0}

// findInTail looks for messageID in chat's unstored log tail, newest messages
// first: the message an edit or a reaction targets before the persister stored it
// was almost always sent moments ago, so a long tail (a lagging persister) is read
// whole only for an ID that is in none of its newest parts. It returns the message
// and the tail from it to the chat's newest message.
func (r *Reader) findInTail(ctx context.Context, chat string, floor uint64, messageID string) (protocol.Message, []protocol.Message, bool, error) {
	for _, w := range tailWindows {
		var from uint64
		tail, err := r.unpersisted(ctx, chat, floor, func(lastChat uint64) uint64 {
			if w > 0 && lastChat > w {
				from = lastChat - w + 1
			}
			return from
		}, nil)
		if err != nil {
			return protocol.Message{}, nil, false, fmt.Errorf("log tail of %s: %w", chat, err)
		}
		for i := range tail {
			if tail[i].MessageID == messageID {
				return tail[i], tail[i:], true, nil
			}
		}
		if len(tail) == 0 || tail[0].Seq > from {
			break // the window held the whole tail
		}
	}
	return protocol.Message{}, nil, false, nil
}

// applyOps applies the operations in tail (unpersisted messages of one chat, oldest
// first) to the messages of page, as the store will once it has them, by the same
// rules (protocol.ApplyOp): an edit by the author replaces the text, a delete makes
// a tombstone (and blanks the text of the target's edit events in the page), a
// react adds or removes the sender's reaction. Operations at or below a message's
// StateSeq are already in the store's answer and are skipped.
//
// Reaction counts are adjusted arithmetically (protocol.AdjustReactions): exact
// because the sequencer only sequences reactions that change something (an add of
// a reaction the user does not have, a removal of one they have).
func applyOps(page []protocol.Message, tail []protocol.Message, viewer string) {
	ops := map[string][]protocol.Op{}
	deleted := map[string]bool{}
	for i := range tail {
		m := &tail[i]
		if op, ok := protocol.OpOf(m); ok {
			ops[m.RefID] = append(ops[m.RefID], op)
			if op.Type == protocol.TypeDelete {
				deleted[m.RefID] = true
			}
		}
	}
	if len(ops) == 0 {
		return
	}
	for i := range page {
		p := &page[i]
		if p.MessageType == protocol.TypeEdit && deleted[p.RefID] {
			p.Content = ""
		}
		if len(ops[p.MessageID]) == 0 || !protocol.Referable(p.MessageType) {
			continue
		}
		// The store's answer holds every operation up to StateSeq: an edit above
		// it is newer than the one that gave the text.
		state := protocol.OpStateOf(p)
		for _, op := range ops[p.MessageID] {
			if op.Seq <= p.StateSeq {
				continue
			}
			var effect protocol.OpEffect
			if state, effect = protocol.ApplyOp(state, op); effect == protocol.OpReacted {
				p.Reactions = protocol.AdjustReactions(p.Reactions, op.Reaction, op.SenderID, viewer)
			}
		}
		state.Set(p)
	}
}
