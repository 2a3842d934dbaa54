package sequencer

import (
	"github.com/natter-chat/natter/pkg/protocol"
)

// The member cap (sequencer.max-group-members), enforced where membership is
// serialized.
//
// The gateway checks gateway.max-group-members before it publishes an add (a fast
// path that reads the store's or the large-chats bucket's count), but that check is
// read-then-add: two bulk adds published at once both read the same count and
// both pass. The sequencer applies a chat's membership events one at a time on the
// chat's partition goroutine, against its own member map, so here an add that
// would take the group past the cap is refused before anything is written: the
// store, the log and every member's view stay within the cap, and the publisher is
// answered group_full (answer.go) as the gateway's own check would have.

// roomFor returns nil if the chat change ev, in a chat whose state is st, keeps the
// chat within the cap, or group_full. Only adds are counted: the users ev adds who
// are not members yet. Creating a chat is checked by the gateway (it writes the
// members with the chat, before any event), so chat_created is not counted.
func (s *Sequencer) roomFor(st *chatState, ev *protocol.SystemEvent) *protocol.Error {
	if s.cfg.MaxGroupMembers <= 0 {
		return nil
	}
	var n int
	switch ev.Event {
	case protocol.EventMemberAdded, protocol.EventMembersAdded:
		for _, u := range ev.Members() {
			if _, member := st.members[u]; !member {
				n++
			}
		}
	}
	if n == 0 || len(st.members)+n <= s.cfg.MaxGroupMembers {
		return nil
	}
	return protocol.Errorf(protocol.CodeGroupFull,
		"a group has at most %d members (sequencer.max-group-members); it has %d and this would add %d: remove members first",
		s.cfg.MaxGroupMembers, len(st.members), n)
}
