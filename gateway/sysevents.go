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
// Why: above the large-chat threshold the sequencer publishes a members_added event
// on the subject of every user it adds (so their gateways join the chat's log
// subject), and a bulk event names up to protocol.MaxBulkMembers users. Each
// connected added user's copy is the same frame; parsing it for each (three times,
// as the watches did) cost ≈ 170 KB and ≈ 2,000 allocations per added user
// (BenchmarkBulkAddedDelivery), O(k²) for an event of k users. Copies of one
// event arrive one after another, so one remembered frame makes it one parse per
// event here, then a byte comparison per copy.
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
