package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
)

// msgRef names a message by its ID, as an operation references it.
type msgRef struct{ chat, id string }

// msgLoc is where a message row is.
type msgLoc struct {
	chat        string
	bucket, seq int64
}

// opTarget returns the messageID that operation m can change, or "" if m is not an
// operation or changes nothing (protocol.OpOf).
func opTarget(m *protocol.Message) string {
	if _, ok := protocol.OpOf(m); !ok {
		return ""
	}
	return m.RefID
}

// opEntry is operation m's message_ops write. A reaction is a register per (emoji,
// user): present and rseq are written with timestamp = seq, so the event with the
// highest seq wins in any arrival order.
func opEntry(m *protocol.Message) gocql.BatchEntry {
	seq := int64(m.Seq)
	switch m.MessageType {
	case protocol.TypeEdit:
		return entry(cqlOpEdit, m.ChatID, m.RefID, m.SenderID, seq, m.Content, ttlOf(m))
	case protocol.TypeDelete:
		return entry(cqlOpDelete, m.ChatID, m.RefID, m.SenderID, seq)
	}
	ev, _ := protocol.ParseReaction(m.Meta)
	return entry(cqlOpReact, seq, ttlOf(m), !ev.Remove, seq, m.ChatID, m.RefID, ev.Emoji, m.SenderID)
}

// targetLookups bounds the message_ids reads of one AppendMessages call.
const targetLookups = 32

// resolveTargets finds the rows of the messages that opMsgs reference: in msgs
// itself, else through message_ids. A reference missing from the result is not
// stored (yet).
func (s *CassandraStore) resolveTargets(ctx context.Context, msgs []protocol.Message, opMsgs []*protocol.Message) (map[msgRef][]msgLoc, error) {
	local := map[msgRef][]msgLoc{}
	for i := range msgs {
		m := &msgs[i]
		if protocol.Referable(m.MessageType) && m.MessageID != "" {
			ref := msgRef{m.ChatID, m.MessageID}
			local[ref] = append(local[ref], msgLoc{m.ChatID, s.bucketOf(m.Timestamp), int64(m.Seq)})
		}
	}
	out := map[msgRef][]msgLoc{}
	var lookup []msgRef
	for _, m := range opMsgs {
		ref := msgRef{m.ChatID, m.RefID}
		if _, done := out[ref]; done || slices.Contains(lookup, ref) {
			continue
		}
		if locs, ok := local[ref]; ok {
			out[ref] = locs
		} else {
			lookup = append(lookup, ref)
		}
	}
	found := make([][]msgLoc, len(lookup))
	errs := make([]error, len(lookup))
	sem := make(chan struct{}, targetLookups)
	var wg sync.WaitGroup
	for i, ref := range lookup {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			iter := s.sess.Query(cqlFindMessage, ref.chat, ref.id).WithContext(ctx).Idempotent(true).Iter()
			var seq int64
			var bucket *int64
			for iter.Scan(&seq, &bucket) {
				if bucket != nil {
					found[i] = append(found[i], msgLoc{ref.chat, *bucket, seq})
				}
			}
			if err := iter.Close(); err != nil {
				errs[i] = fmt.Errorf("find message %s/%s: %w", ref.chat, ref.id, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, ref := range lookup {
		if len(found[i]) > 0 {
			out[ref] = found[i]
		}
	}
	return out, nil
}

// opRow is one row of message_ops; for a reaction, seq is the seq of the event
// that set it.
type opRow struct {
	kind, user, emoji, content string
	seq                        int64
	present                    bool
}

// msgOps are the operations stored against one messageID.
type msgOps []opRow

func (s *CassandraStore) readOps(ctx context.Context, chatID, messageID string) (msgOps, error) {
	iter := s.sess.Query(cqlMessageOps, chatID, messageID).WithContext(ctx).Idempotent(true).Iter()
	var out msgOps
	for {
		var r opRow
		var content *string
		var present *bool
		var rseq *int64
		if !iter.Scan(&r.kind, &r.user, &r.emoji, &r.seq, &content, &present, &rseq) {
			break
		}
		if content != nil {
			r.content = *content
		}
		if r.kind == "react" {
			if present == nil || rseq == nil {
				continue
			}
			r.present, r.seq = *present, *rseq
		}
		out = append(out, r)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("operations on %s/%s: %w", chatID, messageID, err)
	}
	return out, nil
}

// deleted reports whether any delete event references the message.
func (o msgOps) deleted() bool {
	return slices.ContainsFunc(o, func(r opRow) bool { return r.kind == "delete" })
}

// apply sets m's current state from the operations stored against it, by the
// rules of protocol.ApplyOp (which give the same state in any order, so the rows'
// order does not matter): a delete makes it a tombstone; otherwise its sender's
// edit with the highest seq gives the content, and, if withReactions, the present
// reactions give Reactions (per emoji, ordered by the earliest event that set a
// present one, Me for viewer). StateSeq is the highest seq of those operations.
func (o msgOps) apply(m *protocol.Message, viewer string, withReactions bool) {
	if !protocol.Referable(m.MessageType) {
		return
	}
	type agg struct {
		r     protocol.Reaction
		first int64
	}
	var reactions []agg
	state := protocol.OpStateOf(m)
	for _, r := range o {
		op := protocol.Op{Type: r.kind, Seq: uint64(r.seq), SenderID: r.user, Content: r.content,
			Reaction: protocol.ReactionEvent{Emoji: r.emoji, Remove: !r.present}}
		var effect protocol.OpEffect
		// A react row is the register of (emoji, user): the event with the
		// highest seq set it, so a row taken back is no reaction.
		if state, effect = protocol.ApplyOp(state, op); effect != protocol.OpReacted || !r.present {
			continue
		}
		i := slices.IndexFunc(reactions, func(a agg) bool { return a.r.Emoji == r.emoji })
		if i < 0 {
			reactions = append(reactions, agg{r: protocol.Reaction{Emoji: r.emoji}, first: r.seq})
			i = len(reactions) - 1
		}
		a := &reactions[i]
		a.r.Count++
		a.r.Me = a.r.Me || (viewer != "" && r.user == viewer)
		a.first = min(a.first, r.seq)
	}
	state.Set(m)
	if state.Deleted || !withReactions || len(reactions) == 0 {
		return
	}
	slices.SortFunc(reactions, func(a, b agg) int {
		if c := cmp.Compare(a.first, b.first); c != 0 {
			return c
		}
		return strings.Compare(a.r.Emoji, b.r.Emoji)
	})
	m.Reactions = make([]protocol.Reaction, len(reactions))
	for i, a := range reactions {
		m.Reactions[i] = a.r
	}
}

// stateReads bounds the message_ops reads of one History call.
const stateReads = 16

// currentState returns page in its current state (see AppendMessages in store.go):
// the operations of messages marked has_ops or named in pending are read and
// applied, and the text of an edit event whose target was deleted is dropped.
func (s *CassandraStore) currentState(ctx context.Context, chatID string, page []storedMsg, pending []string, viewer string) ([]protocol.Message, error) {
	var ids []string
	need := func(id string) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, m := range page {
		if protocol.Referable(m.MessageType) && (m.hasOps || slices.Contains(pending, m.MessageID)) {
			need(m.MessageID)
		}
		if m.MessageType == protocol.TypeEdit && m.RefID != "" {
			need(m.RefID)
		}
	}
	ops := make([]msgOps, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, stateReads)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ops[i], errs[i] = s.readOps(ctx, chatID, id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]protocol.Message, len(page))
	for i, sm := range page {
		m := sm.Message
		if j := slices.Index(ids, m.MessageID); j >= 0 {
			ops[j].apply(&m, viewer, true)
		}
		if m.MessageType == protocol.TypeEdit && m.RefID != "" {
			if j := slices.Index(ids, m.RefID); j >= 0 && ops[j].deleted() {
				m.Content = "" // a deleted message's edits keep no text
			}
		}
		out[i] = m
	}
	return out, nil
}
