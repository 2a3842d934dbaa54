package sequencer

import (
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// roomFor counts only the users an add makes members, against the member map.
func TestRoomFor(t *testing.T) {
	s := &Sequencer{cfg: Config{MaxGroupMembers: 4}}
	st := &chatState{members: map[string]string{"a": store.RoleAdmin, "b": store.RoleMember, "c": store.RoleMember}}
	for _, tc := range []struct {
		name string
		ev   protocol.SystemEvent
		full bool
	}{
		{"one more fits", protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "d"}, false},
		{"two more do not", protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{"d", "e"}}, true},
		{"members already are not counted", protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{"a", "b", "d"}}, false},
		{"a role change adds nobody", protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: "b", Role: store.RoleAdmin}, false},
		{"a removal adds nobody", protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: []string{"x", "y"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perr := s.roomFor(st, &tc.ev)
			if !tc.full {
				require.Nil(t, perr)
				return
			}
			require.NotNil(t, perr)
			require.Equal(t, protocol.CodeGroupFull, perr.Code)
		})
	}
	st.members["d"] = store.RoleMember
	require.NotNil(t, s.roomFor(st, &protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "e"}), "full")
	require.Nil(t, (&Sequencer{}).roomFor(st, &protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "e"}), "0: no cap (a test's Config)")
}
