package sequencer

import (
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// keepsAdmin refuses exactly the changes that leave members without an admin.
func TestKeepsAdmin(t *testing.T) {
	one := map[string]string{"a": store.RoleAdmin, "m": store.RoleMember, "n": store.RoleMember}
	two := map[string]string{"a": store.RoleAdmin, "b": store.RoleAdmin, "m": store.RoleMember}
	alone := map[string]string{"a": store.RoleAdmin}
	for _, tc := range []struct {
		name    string
		members map[string]string
		ev      protocol.SystemEvent
		refused bool
	}{
		{"the only admin leaves", one, protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: "a"}, true},
		{"the only admin is removed", one, protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: "a"}, true},
		{"the only admin is removed in bulk", one, protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: []string{"a", "m"}}, true},
		{"the only admin is demoted", one, protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: "a", Role: store.RoleMember}, true},
		{"everyone is removed", one, protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: []string{"a", "m", "n"}}, false},
		{"the last one leaves", alone, protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: "a"}, false},
		{"the only member demotes themself", alone, protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: "a", Role: store.RoleMember}, true},
		{"a member leaves", one, protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: "m"}, false},
		{"one of two admins leaves", two, protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: "a"}, false},
		{"both admins are removed", two, protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: []string{"a", "b"}}, true},
		{"one of two admins is demoted", two, protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: "b", Role: store.RoleMember}, false},
		{"a promotion", one, protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: "m", Role: store.RoleAdmin}, false},
		{"an add", one, protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{"x"}}, false},
		{"the chat is deleted", one, protocol.SystemEvent{Event: protocol.EventChatDeleted}, false},
		{"a non-member is removed", one, protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: "zz"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perr := keepsAdmin(&chatState{members: tc.members}, &tc.ev)
			if !tc.refused {
				require.Nil(t, perr)
				return
			}
			require.NotNil(t, perr)
			require.Equal(t, protocol.CodeConflict, perr.Code)
		})
	}
}
