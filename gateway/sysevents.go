package gateway

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/natter-chat/natter/pkg/protocol"
)

// sysEvents parses the system event of a message frame for the membership watches
// (userDelivery, gateway/largechat), remembering the last frame it parsed.
//
// Why: in a chat at or below the large-chat threshold the sequencer publishes each
// event on every member's subject, the same frame each time, and a bulk event
// names up to protocol.MaxBulkMembers users (≈ 14 KB). Parsing it for every
// connected member (three times, as the watches once did) cost ≈ 170 KB and
// ≈ 2,000 allocations per member (BenchmarkBulkAddedDelivery, "whole event").
// Copies of one event arrive one after another, so one remembered frame makes it
// one parse per event here, then a byte comparison per copy. Above the threshold
// an added member's copy names only that member (sequencer/members.go, tellAdded):
// each is a small frame of its own, parsed once ("per-user copy"), and the event
// naming everyone arrives once, on the chat's log subject.
type sysEvents struct {
	mu   sync.Mutex // guards the fields below
	data []byte     // the last system frame parsed (shared with its delivery: never modified)
	chat string
	ev   *protocol.SystemEvent
}

// Parse returns the chat and system event of data; ev is nil for a frame that is
// not a system message with an event. ev may be shared with other callers: it must
// not be modified.
func (s *sysEvents) Parse(data []byte) (chat string, ev *protocol.SystemEvent) {
	if !bytes.Contains(data, []byte(`"system"`)) {
		return "", nil
	}
	s.mu.Lock()
	if s.data != nil && bytes.Equal(s.data, data) {
		chat, ev = s.chat, s.ev
		s.mu.Unlock()
		return chat, ev
	}
	s.mu.Unlock()
	m, err := protocol.DecodeMessageFrame(data)
	if err != nil || m.MessageType != protocol.TypeSystem || len(m.Meta) == 0 {
		return "", nil
	}
	var e protocol.SystemEvent
	if err := json.Unmarshal(m.Meta, &e); err != nil {
		return "", nil
	}
	s.mu.Lock()
	s.data, s.chat, s.ev = data, m.ChatID, &e
	s.mu.Unlock()
	return m.ChatID, &e
}
