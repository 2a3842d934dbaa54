// Package storetest is the conformance suite every store.Store backend passes. Backends
// call Run from their own tests with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// Open returns a new, empty store for one test; the suite closes it.
type Open func(t *testing.T) store.Store

// Day is the spacing the suite uses between message timestamps when it spreads a chat
// over several time buckets; backends with buckets should use a bucket width <= Day in
// the stores they hand to Run, so history crosses bucket boundaries.
const Day = 24 * time.Hour

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func msg(chat string, seq uint64, sender string, at time.Time) protocol.Message {
	return protocol.Message{ChatID: chat, Seq: seq, MessageID: fmt.Sprintf("m%d", seq), SenderID: sender,
		Content: fmt.Sprintf("hello %d", seq), MessageType: protocol.TypeText, Timestamp: at.UnixMilli()}
}

// searcher returns s's full-text search (store.Searcher). Every backend in this
// repository searches (docs/search.md), so a store without it fails the suite.
func searcher(t *testing.T, s store.Store) store.Searcher {
	t.Helper()
	sr, ok := s.(store.Searcher)
	require.True(t, ok, "%T does not implement store.Searcher", s)
	return sr
}

func seqs(msgs []protocol.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func rng(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
	} else {
		for s := from; s >= to; s-- {
			out = append(out, s)
		}
	}
	return out
}

// Run runs the whole suite against the backend that open returns.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	newStore := func(t *testing.T) store.Store {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	group := func(t *testing.T, s store.Store, id string, users ...string) {
		t.Helper()
		var ms []store.Member
		for i, u := range users {
			role := store.RoleMember
			if i == 0 {
				role = store.RoleAdmin
			}
			ms = append(ms, store.Member{ChatID: id, UserID: u, Role: role, JoinedAt: base})
		}
		_, created, err := s.CreateChat(ctx, store.Chat{ID: id, Kind: store.KindGroup, Name: "g " + id,
			CreatedBy: users[0], CreatedAt: base}, ms)
		require.NoError(t, err)
		require.True(t, created)
	}

	t.Run("AppendAndHistory", func(t *testing.T) {
		s := newStore(t)
		group(t, s, "c1", "alice", "bob")
		var all []protocol.Message
		// 30 messages spread over 6 days: several buckets for bucketed backends.
		for i := uint64(1); i <= 30; i++ {
			all = append(all, msg("c1", i, "alice", base.Add(time.Duration(i/5)*Day+time.Duration(i)*time.Minute)))
		}
		require.NoError(t, s.AppendMessages(ctx, all))
		got, err := s.History(ctx, "c1", store.HistoryQuery{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, rng(30, 21), seqs(got), "newest first by default")
		require.Equal(t, all[29], got[0], "stored message round-trips")
		got, err = s.History(ctx, "c1", store.HistoryQuery{Before: 21, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, rng(20, 11), seqs(got))
		got, err = s.History(ctx, "c1", store.HistoryQuery{Before: 4, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, rng(3, 1), seqs(got))
		got, err = s.History(ctx, "c1", store.HistoryQuery{Dir: store.Forward, After: 0, Limit: 12})
		require.NoError(t, err)
		require.Equal(t, rng(1, 12), seqs(got))
		got, err = s.History(ctx, "c1", store.HistoryQuery{Dir: store.Forward, After: 12, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, rng(13, 30), seqs(got))
		got, err = s.History(ctx, "c1", store.HistoryQuery{Dir: store.Forward, After: 30})
		require.NoError(t, err)
		require.Empty(t, got)
		got, err = s.History(ctx, "nochat", store.HistoryQuery{})
		require.NoError(t, err)
		require.Empty(t, got)
		last, err := s.LastSeq(ctx, "c1")
		require.NoError(t, err)
		require.EqualValues(t, 30, last)
		last, err = s.LastSeq(ctx, "nochat")
		require.NoError(t, err)
		require.EqualValues(t, 0, last)
		seq, err := s.MessageSeq(ctx, "c1", "m17")
		require.NoError(t, err)
		require.EqualValues(t, 17, seq)
		_, err = s.MessageSeq(ctx, "c1", "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("HistoryAcrossSparseBuckets", func(t *testing.T) {
		s := newStore(t)
		group(t, s, "sparse", "alice")
		// Three messages a hundred days apart, then a burst: many empty buckets between.
		var ms []protocol.Message
		for i := uint64(1); i <= 3; i++ {
			ms = append(ms, msg("sparse", i, "alice", base.Add(time.Duration(i)*100*Day)))
		}
		for i := uint64(4); i <= 8; i++ {
			ms = append(ms, msg("sparse", i, "alice", base.Add(400*Day+time.Duration(i)*time.Second)))
		}
		require.NoError(t, s.AppendMessages(ctx, ms))
		got, err := s.History(ctx, "sparse", store.HistoryQuery{Before: 6, Limit: 4})
		require.NoError(t, err)
		require.Equal(t, rng(5, 2), seqs(got))
		got, err = s.History(ctx, "sparse", store.HistoryQuery{Dir: store.Forward, After: 1, Limit: 4})
		require.NoError(t, err)
		require.Equal(t, rng(2, 5), seqs(got))
		got, err = s.History(ctx, "sparse", store.HistoryQuery{Limit: 100})
		require.NoError(t, err)
		require.Equal(t, rng(8, 1), seqs(got))
	})

	t.Run("IdempotentReappend", func(t *testing.T) {
		s := newStore(t)
		group(t, s, "c2", "alice", "bob")
		batch := []protocol.Message{msg("c2", 1, "alice", base), msg("c2", 2, "bob", base.Add(time.Second))}
		require.NoError(t, s.AppendMessages(ctx, batch))
		// A retried batch, overlapping a new one, and a concurrent racer.
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.AppendMessages(ctx, append(batch, msg("c2", 3, "alice", base.Add(2*time.Second))))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		got, err := s.History(ctx, "c2", store.HistoryQuery{Limit: 100})
		require.NoError(t, err)
		require.Equal(t, []uint64{3, 2, 1}, seqs(got))
		chats, err := s.UserChats(ctx, "bob", 0, 0)
		require.NoError(t, err)
		require.Len(t, chats, 1)
		require.EqualValues(t, 3, chats[0].LastSeq)
		require.NotNil(t, chats[0].LastMessage)
		require.Equal(t, "m3", chats[0].LastMessage.MessageID)
	})

	t.Run("ChatsAndMembers", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetChat(ctx, "x")
		require.ErrorIs(t, err, store.ErrNotFound)
		group(t, s, "g1", "alice", "bob", "carol")
		c := store.Chat{ID: "g1", Kind: store.KindGroup, Name: "other", CreatedBy: "zed", CreatedAt: base.Add(Day)}
		got, created, err := s.CreateChat(ctx, c, nil)
		require.NoError(t, err)
		require.False(t, created, "same ID again returns the first chat")
		require.Equal(t, "g g1", got.Name)
		require.Equal(t, "alice", got.CreatedBy)
		require.True(t, got.CreatedAt.Equal(base))
		ms, err := s.Members(ctx, "g1")
		require.NoError(t, err)
		require.Len(t, ms, 3)
		require.Equal(t, "alice", ms[0].UserID)
		require.Equal(t, store.RoleAdmin, ms[0].Role)
		m, err := s.GetMember(ctx, "g1", "bob")
		require.NoError(t, err)
		require.Equal(t, store.RoleMember, m.Role)
		_, err = s.GetMember(ctx, "g1", "dave")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "g1", UserID: "dave", Role: store.RoleMember, JoinedAt: base}))
		require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "g1", UserID: "bob", Role: store.RoleAdmin, JoinedAt: base}))
		m, err = s.GetMember(ctx, "g1", "bob")
		require.NoError(t, err)
		require.Equal(t, store.RoleAdmin, m.Role, "AddMember updates the role")
		require.NoError(t, s.RemoveMember(ctx, "g1", "carol"))
		require.NoError(t, s.RemoveMember(ctx, "g1", "carol"), "removing twice is fine")
		_, err = s.GetMember(ctx, "g1", "carol")
		require.ErrorIs(t, err, store.ErrNotFound)
		ms, err = s.Members(ctx, "g1")
		require.NoError(t, err)
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.UserID)
		}
		require.Equal(t, []string{"alice", "bob", "dave"}, ids)
		chats, err := s.UserChats(ctx, "carol", 0, 0)
		require.NoError(t, err)
		require.Empty(t, chats, "a removed member no longer lists the chat")
	})

	t.Run("UserChatsOrderAndUnread", func(t *testing.T) {
		s := newStore(t)
		group(t, s, "a", "alice", "bob")
		group(t, s, "b", "alice", "carol")
		group(t, s, "c", "alice")
		require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
			msg("a", 1, "bob", base.Add(time.Hour)), msg("a", 2, "bob", base.Add(2*time.Hour)),
			msg("b", 1, "carol", base.Add(3*time.Hour)),
		}))
		chats, err := s.UserChats(ctx, "alice", 0, 0)
		require.NoError(t, err)
		require.Len(t, chats, 3)
		require.Equal(t, []string{"b", "a", "c"}, []string{chats[0].ID, chats[1].ID, chats[2].ID}, "most recent activity first")
		require.EqualValues(t, 1, chats[0].Unread)
		require.EqualValues(t, 2, chats[1].Unread)
		require.EqualValues(t, 0, chats[2].Unread)
		_, err = s.SetReadState(ctx, "a", "alice", 0, 1)
		require.NoError(t, err)
		chats, err = s.UserChats(ctx, "alice", 0, 0)
		require.NoError(t, err)
		require.EqualValues(t, 1, chats[1].Unread)
		// The sender's own messages count as read.
		chats, err = s.UserChats(ctx, "bob", 0, 0)
		require.NoError(t, err)
		require.EqualValues(t, 0, chats[0].Unread)
		page, err := s.UserChats(ctx, "alice", 2, 1)
		require.NoError(t, err)
		require.Equal(t, []string{"a", "c"}, []string{page[0].ID, page[1].ID}, "limit and offset page the list")
	})

	t.Run("UnreadTotal", func(t *testing.T) {
		s := newStore(t)
		group(t, s, "a", "alice", "bob")
		group(t, s, "b", "alice", "carol")
		group(t, s, "c", "alice")
		group(t, s, "d", "bob", "carol")
		require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
			msg("a", 1, "bob", base.Add(time.Hour)), msg("a", 2, "bob", base.Add(2*time.Hour)),
			msg("b", 1, "carol", base.Add(3*time.Hour)), msg("b", 2, "carol", base.Add(4*time.Hour)),
			msg("b", 3, "carol", base.Add(5*time.Hour)),
			msg("d", 1, "carol", base.Add(6*time.Hour)),
		}))
		total := func(user, except string) uint64 {
			t.Helper()
			n, err := s.UnreadTotal(ctx, user, except)
			require.NoError(t, err)
			return n
		}
		require.EqualValues(t, 5, total("alice", ""), "every chat: 2 in a, 3 in b, none in c; not d")
		require.EqualValues(t, 3, total("alice", "a"), "except a")
		require.EqualValues(t, 2, total("alice", "b"), "except b")
		require.EqualValues(t, 5, total("alice", "zzz"), "except a chat alice is not in")
		require.EqualValues(t, 1, total("bob", ""), "own messages are read: only d's")
		require.EqualValues(t, 0, total("nobody", ""))
		_, err := s.SetReadState(ctx, "a", "alice", 0, 1)
		require.NoError(t, err)
		_, err = s.SetReadState(ctx, "b", "alice", 0, 9) // beyond the last seq: no negative count
		require.NoError(t, err)
		require.EqualValues(t, 1, total("alice", ""))
		_, err = s.SetReadState(ctx, "d", "alice", 0, 0) // read state in a chat alice is not in
		require.NoError(t, err)
		require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "gone", UserID: "alice", Role: store.RoleMember, JoinedAt: base}))
		require.EqualValues(t, 1, total("alice", ""), "neither d nor a membership without a chat counts")
		require.NoError(t, s.RemoveMember(ctx, "a", "alice"))
		require.EqualValues(t, 0, total("alice", ""), "a chat alice left no longer counts")
		// The same as summing UserChats.
		for _, u := range []string{"alice", "bob", "carol"} {
			chats, err := s.UserChats(ctx, u, 0, 0)
			require.NoError(t, err)
			var sum uint64
			for _, c := range chats {
				sum += c.Unread
			}
			require.Equal(t, sum, total(u, ""), u)
		}
	})

	t.Run("UnreadCountsWhatAPersonReads", func(t *testing.T) { unreadCountable(t, newStore(t), group) })
	t.Run("UnreadBetween", func(t *testing.T) { unreadBetween(t, newStore(t), group) })
	t.Run("MessageIDsOnce", func(t *testing.T) { messageIDsOnce(t, newStore(t), group) })

	t.Run("ReadStateMonotonic", func(t *testing.T) {
		s := newStore(t)
		rs, err := s.GetReadState(ctx, "c", "u")
		require.NoError(t, err)
		require.Equal(t, store.ReadState{ChatID: "c", UserID: "u"}, rs)
		rs, err = s.SetReadState(ctx, "c", "u", 5, 3)
		require.NoError(t, err)
		require.EqualValues(t, 5, rs.Delivered)
		require.EqualValues(t, 3, rs.Read)
		rs, err = s.SetReadState(ctx, "c", "u", 2, 1)
		require.NoError(t, err)
		require.EqualValues(t, 5, rs.Delivered, "a lower value is ignored")
		require.EqualValues(t, 3, rs.Read)
		rs, err = s.SetReadState(ctx, "c", "u", 0, 9)
		require.NoError(t, err)
		require.EqualValues(t, 9, rs.Delivered, "read raises delivered")
		require.EqualValues(t, 9, rs.Read)
		rs, err = s.GetReadState(ctx, "c", "u")
		require.NoError(t, err)
		require.EqualValues(t, 9, rs.Read)
	})

	t.Run("Mutes", func(t *testing.T) {
		s := newStore(t)
		m, err := s.GetMute(ctx, "c", "u")
		require.NoError(t, err)
		require.Equal(t, store.Mute{ChatID: "c", UserID: "u"}, m, "no mute stored: not muted")
		require.False(t, m.Active(base))

		require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "c", UserID: "u", Muted: true}))
		m, err = s.GetMute(ctx, "c", "u")
		require.NoError(t, err)
		require.True(t, m.Muted)
		require.True(t, m.Until.IsZero(), "muted until unmuted")
		require.True(t, m.Active(base.Add(1000*Day)))

		until := base.Add(90*time.Minute + 123*time.Millisecond)
		require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "c", UserID: "u", Muted: true, Until: until}))
		m, err = s.GetMute(ctx, "c", "u")
		require.NoError(t, err)
		require.True(t, m.Until.Equal(until), "until round-trips to the millisecond: %v", m.Until)
		require.True(t, m.Active(until.Add(-time.Millisecond)))
		require.False(t, m.Active(until), "a timed mute ends at until")

		other, err := s.GetMute(ctx, "c", "v")
		require.NoError(t, err)
		require.False(t, other.Muted, "mutes are per user")
		other, err = s.GetMute(ctx, "d", "u")
		require.NoError(t, err)
		require.False(t, other.Muted, "mutes are per chat")

		require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "c", UserID: "u"}))
		m, err = s.GetMute(ctx, "c", "u")
		require.NoError(t, err)
		require.False(t, m.Muted, "unmuted")
		require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "c", UserID: "u"}), "unmuting twice is fine")
	})

	t.Run("MessageOperations", func(t *testing.T) { messageOperations(t, newStore(t), group) })
	t.Run("OperationsOutOfOrder", func(t *testing.T) { operationsOutOfOrder(t, newStore(t), group) })
	t.Run("RenameChat", func(t *testing.T) {
		s := newStore(t)
		group(t, s, "r1", "alice")
		require.NoError(t, s.RenameChat(ctx, "r1", "new name"))
		c, err := s.GetChat(ctx, "r1")
		require.NoError(t, err)
		require.Equal(t, "new name", c.Name)
		chats, err := s.UserChats(ctx, "alice", 0, 0)
		require.NoError(t, err)
		require.Equal(t, "new name", chats[0].Name, "the chat list shows the new name")
		require.ErrorIs(t, s.RenameChat(ctx, "nochat", "x"), store.ErrNotFound)
	})
	t.Run("UserChatsCursor", func(t *testing.T) { userChatsCursor(t, newStore(t), group) })
	t.Run("Search", func(t *testing.T) { search(t, newStore(t), group) })
	t.Run("Devices", func(t *testing.T) { devices(t, newStore(t)) })
	t.Run("Profiles", func(t *testing.T) { profiles(t, newStore(t)) })
	t.Run("Blocks", func(t *testing.T) { blocks(t, newStore(t)) })
	t.Run("BlockLimit", func(t *testing.T) { blockLimit(t, newStore(t)) })
	t.Run("SharesChat", func(t *testing.T) { sharesChat(t, newStore(t), group) })
	t.Run("Invitations", func(t *testing.T) { invitations(t, newStore(t)) })
	t.Run("KeyDirectory", func(t *testing.T) { keyDirectory(t, newStore(t)) })
	t.Run("ConcurrentKeyClaims", func(t *testing.T) { concurrentClaims(t, newStore(t)) })
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, newStore, group) })
	t.Run("BulkMembers", func(t *testing.T) { bulkMembers(t, newStore(t)) })
	t.Run("RecipientBatches", func(t *testing.T) { recipients(t, newStore(t), group) })
	t.Run("ChatAdmins", func(t *testing.T) { chatAdmins(t, newStore(t), group) })
	t.Run("EncryptedChats", func(t *testing.T) { encryptedChats(t, newStore(t), group) })
	t.Run("KeyEventsAreNotRead", func(t *testing.T) { keyEventsAreNotRead(t, newStore(t), group) })

	t.Run("Ping", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.Ping(ctx))
		require.False(t, errors.Is(s.Ping(ctx), store.ErrNotFound))
	})
}
