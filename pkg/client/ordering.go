package client

import (
	"slices"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Orderer turns one chat's messages, arriving in any order and possibly twice, into
// the chat's sequence delivered exactly once with no gaps: a message is released only
// when every lower seq has been. It never drops a message it has not delivered; a gap
// stays open until the missing seqs are pushed (Client fills them from history).
//
// Duplicates are recognised by seq (at or below the watermark, or already held) and
// by messageId (the last seenCap delivered IDs): a messageId seen before still
// occupies its seq in the order but is not delivered again. Not safe for concurrent
// use.
type Orderer struct {
	chatID    string
	last      uint64 // highest seq delivered with every lower one delivered
	held      map[uint64]protocol.Message
	seen      map[string]struct{}
	seenOrder []string
	seenCap   int
}

// NewOrderer returns an Orderer for chatID that has delivered up to after.
func NewOrderer(chatID string, after uint64) *Orderer {
	return &Orderer{chatID: chatID, last: after, held: map[uint64]protocol.Message{},
		seen: map[string]struct{}{}, seenCap: 5000}
}

// LastSeq is the highest seq delivered with every lower seq delivered too.
func (o *Orderer) LastSeq() uint64 { return o.last }

// Push offers m and returns the messages now deliverable, in seq order, and whether m
// was a duplicate.
func (o *Orderer) Push(m protocol.Message) (deliver []protocol.Message, duplicate bool) {
	if m.Seq <= o.last {
		return nil, true
	}
	if _, ok := o.held[m.Seq]; ok {
		return nil, true
	}
	_, duplicate = o.seen[m.MessageID]
	if m.Seq != o.last+1 {
		o.held[m.Seq] = m
		return nil, duplicate
	}
	next, ok := m, true
	for ok {
		delete(o.held, next.Seq)
		o.last = next.Seq
		if _, dup := o.seen[next.MessageID]; !dup {
			o.remember(next.MessageID)
			deliver = append(deliver, next)
		}
		next, ok = o.held[o.last+1]
	}
	return deliver, duplicate
}

func (o *Orderer) remember(id string) {
	o.seen[id] = struct{}{}
	o.seenOrder = append(o.seenOrder, id)
	if len(o.seenOrder) > o.seenCap {
		delete(o.seen, o.seenOrder[0])
		o.seenOrder = o.seenOrder[1:]
	}
}

// Skip marks every seq up to through that has not arrived as gone for good (expired,
// erased, or below the reader's cleared history: docs/protocol.md, "Retention and
// deletion"), so the order no longer waits for it. It returns the messages now
// deliverable, in seq order: those held at or below through, then the ones that
// follow them without a gap. A through at or below LastSeq changes nothing.
func (o *Orderer) Skip(through uint64) []protocol.Message {
	if through <= o.last {
		return nil
	}
	var below []uint64
	for s := range o.held {
		if s <= through {
			below = append(below, s)
		}
	}
	slices.Sort(below)
	var out []protocol.Message
	release := func(m protocol.Message) {
		delete(o.held, m.Seq)
		o.last = m.Seq
		if _, dup := o.seen[m.MessageID]; !dup {
			o.remember(m.MessageID)
			out = append(out, m)
		}
	}
	for _, s := range below {
		release(o.held[s])
	}
	o.last = through
	for next, ok := o.held[o.last+1]; ok; next, ok = o.held[o.last+1] {
		release(next)
	}
	return out
}

// Gap returns the first missing range (after, before), both exclusive, and whether
// there is one: messages are held waiting for it.
func (o *Orderer) Gap() (after, before uint64, ok bool) {
	if len(o.held) == 0 {
		return 0, 0, false
	}
	lowest := ^uint64(0)
	for s := range o.held {
		lowest = min(lowest, s)
	}
	return o.last, lowest, true
}

// Held is the number of messages waiting for a lower seq.
func (o *Orderer) Held() int { return len(o.held) }
