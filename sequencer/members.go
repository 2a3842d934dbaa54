package sequencer

import (
	"context"
	"encoding/json"
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

// tellAdded tells each user that ev (m, encoded as data) added to a large chat, on
// the user's own subject. A large chat is delivered through its log subject to
// gateways that know the member; this copy is how the added member's gateway
// learns to join it (gateway/largechat) and how their devices learn, live, that
// they were added.
//
// Why not data itself: a bulk event names up to protocol.MaxBulkMembers users, so
// k copies of it cost O(k²) bytes (14 MB for 1,000 users of 11-byte IDs, each
// copy then parsed by its gateway). Each user's copy is the same message (chat,
// seq, messageId, by, role) whose event names only that user, with Total, the
// number the event added: O(k) bytes in all. The event with every user is the
// log's copy, which the chat's other members receive and history serves
// (docs/protocol.md, "Large groups"). A one-member event is sent as it is.
func (s *Sequencer) tellAdded(m *protocol.Message, ev *protocol.SystemEvent, data []byte) {
	added := ev.Members() // at most protocol.MaxBulkMembers
	if len(added) == 1 {
		if ids.Valid(added[0]) {
			_ = s.deps.NC.Publish(s.deps.Subjects.User(added[0]), data)
		}
		return
	}
	one := *m
	for _, u := range added {
		if !ids.Valid(u) {
			continue
		}
		meta, err := json.Marshal(protocol.SystemEvent{Event: ev.Event, UserIDs: []string{u}, Total: len(added), Role: ev.Role, By: ev.By})
		if err != nil {
			continue // a SystemEvent of strings always encodes
		}
		one.Meta = meta
		_ = s.deps.NC.Publish(s.deps.Subjects.User(u), protocol.EncodeMessageFrame(&one))
	}
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
