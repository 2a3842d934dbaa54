package sequencer

import (
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// The last-admin rule (a group with members always has an admin), enforced where
// membership is serialized, as the member cap is (groupcap.go).
//
// The gateway checks the rule before it publishes a removal, a departure or a
// demotion (gateway/chats, leave.go), reading the store: read-then-change, so two
// admins who leave or demote each other at once can both pass it. The sequencer
// applies a chat's membership events one at a time against its member map (roles
// included), so here the second of them is refused with conflict, which reaches
// its caller as the gateway's own refusal would. An erasure of a group's only
// admin names a successor first (gateway/erasure), whose promotion is sequenced
// before the removal, so the removal passes.

// keepsAdmin returns nil if the chat change ev, in a chat whose state is st, leaves
// the chat an admin or no members, or conflict. Only changes that take an admin
// away are checked: removals, departures and a demotion of an admin. It walks the
// member map until it finds an admin who stays (the whole map, 100,000 entries at
// most, only when none does).
func keepsAdmin(st *chatState, ev *protocol.SystemEvent) *protocol.Error {
	demotion := ev.Event == protocol.EventRoleChanged
	switch {
	case demotion && ev.Role == store.RoleAdmin: // a promotion
		return nil
	case !demotion && ev.Event != protocol.EventMemberRemoved && ev.Event != protocol.EventMemberLeft &&
		ev.Event != protocol.EventMembersRemoved:
		return nil
	}
	losing := ev.Members()
	anyAdmin := false
	for _, u := range losing {
		if st.members[u] == store.RoleAdmin {
			anyAdmin = true
			break
		}
	}
	if !anyAdmin {
		return nil
	}
	gone := make(map[string]bool, len(losing))
	for _, u := range losing {
		gone[u] = true
	}
	stays := false // a member stays after the change
	for u, role := range st.members {
		switch {
		case gone[u]:
			stays = stays || demotion // a demoted admin stays, as a member
		case role == store.RoleAdmin:
			return nil
		default:
			stays = true
		}
	}
	if !stays {
		return nil
	}
	return protocol.Errorf(protocol.CodeConflict,
		"the change would leave the group without an admin while it has members: make another member admin first")
}
