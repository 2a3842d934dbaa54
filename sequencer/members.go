package sequencer

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Membership in the sequencer's memory.
//
// A chat's state holds its members as a map from user ID to role, changed in place
// as membership events are sequenced (one partition goroutine owns it, and every
// reader — the membership check, fan-out — runs on that goroutine before the next
// event). The cost is that of a Go map entry: the 16-byte string header of the key
// and of the value (the role strings are shared constants), the user ID's own bytes
// and the map's overhead, about 70 bytes per member for 10-byte IDs (measured:
// docs/performance.md, "Large groups"), so a 100,000-member chat costs about 7 MB.
// The number of chats held is bounded by sequencer.max-chats (an LRU); a chat's
// members are read back from the store when it is loaded again.
//
// A change used to copy the map (copy on write), which made each single add to a
// 100,000-member chat cost 100,000 inserts; now only a removal from a chat that is
// (or becomes) small copies it, because the removed members must still receive the
// event through per-user fan-out.

// addMembers makes users members of st with role, in place; those already members
// keep their role. It returns who receives the event: the members after it.
func addMembers(st *chatState, users []string, role string) map[string]string {
	for _, u := range users {
		if _, ok := st.members[u]; !ok && ids.Valid(u) {
			st.members[u] = role
		}
	}
	return st.members
}

// removeMembers removes users from st, in place, and returns who receives the event:
// the members before it. A large chat's events go through its log subject, which
// the removed members' gateways still follow, so the map after the change does; a
// small chat's are fanned out per user, so it gets a copy of the map before.
func removeMembers(st *chatState, users []string, largeThreshold int) map[string]string {
	recipients := st.members
	if len(st.members)-len(users) <= largeThreshold {
		recipients = maps.Clone(st.members)
	}
	for _, u := range users {
		delete(st.members, u)
	}
	return recipients
}

// applyBulkMembership writes a bulk event's change to the store before the event is
// appended to the log, as applyMembership does for one member. Both writes are
// idempotent (AddMembers leaves existing members as they are), so a retried or
// re-sequenced event is harmless.
func (s *Sequencer) applyBulkMembership(ctx context.Context, chat string, ev *protocol.SystemEvent, at time.Time) error {
	var err error
	switch ev.Event {
	case protocol.EventMembersAdded:
		role := roleOf(ev)
		ms := make([]store.Member, len(ev.UserIDs))
		for i, u := range ev.UserIDs {
			ms[i] = store.Member{ChatID: chat, UserID: u, Role: role, JoinedAt: at.UTC()}
		}
		err = s.deps.Store.AddMembers(ctx, chat, ms)
	case protocol.EventMembersRemoved:
		err = s.deps.Store.RemoveMembers(ctx, chat, ev.UserIDs)
	}
	if err != nil {
		return fmt.Errorf("%s %s (%d users): %w", ev.Event, chat, len(ev.UserIDs), err)
	}
	return nil
}
