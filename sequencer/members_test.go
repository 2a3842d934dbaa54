package sequencer

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// Bulk events change the member map in place; a removal from a chat that stays
// large hands the map after the change (its log subject carries the event), one
// from a small chat a copy from before (per-user fan-out must reach the removed).
func TestApplyBulkMembership(t *testing.T) {
	s := &Sequencer{cfg: Config{LargeChatThreshold: 3}}
	st := &chatState{members: map[string]string{"a": store.RoleAdmin}}
	got := s.apply(st, &protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{"b", "c", "d", "a", "bad.id"}})
	require.Equal(t, map[string]string{"a": store.RoleAdmin, "b": store.RoleMember, "c": store.RoleMember, "d": store.RoleMember}, got,
		"added as members; a keeps its role; an invalid ID is not added")
	got = s.apply(st, &protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{"e"}, Role: store.RoleAdmin})
	require.Equal(t, store.RoleAdmin, got["e"])
	require.Len(t, st.members, 5)

	// 5 -> 4 members: still large, the map after.
	got = s.apply(st, &protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: []string{"e"}})
	require.NotContains(t, got, "e")
	// 4 -> 2: small after, a copy from before that still holds the removed.
	got = s.apply(st, &protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: []string{"c", "d", "zz"}})
	require.Contains(t, got, "c")
	require.Contains(t, got, "d")
	require.Equal(t, map[string]string{"a": store.RoleAdmin, "b": store.RoleMember}, st.members)
}

// BenchmarkLargeChatStateMemory measures what a 100,000-member chat's state costs
// the sequencer: the live heap after building it with 100 bulk events, per member
// (reported as B/member; user IDs of 13 bytes, as "u" + a 12-digit number).
func BenchmarkLargeChatStateMemory(b *testing.B) {
	const members = 100_000
	names := make([][]string, members/protocol.MaxBulkMembers)
	for i := range names {
		names[i] = make([]string, protocol.MaxBulkMembers)
		for j := range names[i] {
			names[i][j] = fmt.Sprintf("u%012d", i*protocol.MaxBulkMembers+j)
		}
	}
	s := &Sequencer{cfg: Config{LargeChatThreshold: 1000}}
	var perMember float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := &chatState{members: map[string]string{}}
		for _, batch := range names {
			s.apply(st, &protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: batch})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The IDs' bytes are shared with names here; in the sequencer they come from
		// the decoded event: add them.
		perMember = float64(after.HeapAlloc-before.HeapAlloc)/members + 16
		runtime.KeepAlive(st)
	}
	b.ReportMetric(perMember, "B/member")
}
