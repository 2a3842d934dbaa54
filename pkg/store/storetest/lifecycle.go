package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// lifecycle runs the retention and deletion rules (store/lifecycle.go).
func lifecycle(t *testing.T, open func(t *testing.T) store.Store, group groupFn) {
	t.Run("ExpiredMessagesAreGone", func(t *testing.T) { expiredMessagesAreGone(t, open(t), group) })
	t.Run("MessageTTL", func(t *testing.T) { messageTTL(t, open(t), group) })
	t.Run("ClearHistory", func(t *testing.T) { clearHistory(t, open(t), group) })
	t.Run("DeleteChat", func(t *testing.T) { deleteChat(t, open(t), group) })
	t.Run("EraseUser", func(t *testing.T) { eraseUser(t, open(t), group) })
}

// expiredMessagesAreGone: a message past its ExpiresAt is in no history page (either
// direction), search result, unread count or chat list, before and after the sweep;
// a message that has not expired is, with its ExpiresAt.
func expiredMessagesAreGone(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "x", "alice", "bob")
	now := time.Now()
	gone, later := now.Add(-time.Second).UnixMilli(), now.Add(time.Hour).UnixMilli()
	var msgs []protocol.Message
	for seq := uint64(1); seq <= 6; seq++ {
		m := msg("x", seq, "alice", base.Add(time.Duration(seq)*time.Second))
		m.Content = "zebra words"
		switch seq {
		case 2, 3, 6: // 6 is the last message: the chat list shows none
			m.ExpiresAt = gone
		case 4:
			m.ExpiresAt = later
		}
		msgs = append(msgs, m)
	}
	require.NoError(t, s.AppendMessages(ctx, msgs))
	check := func(t *testing.T) {
		t.Helper()
		fwd, err := s.History(ctx, "x", store.HistoryQuery{Dir: store.Forward})
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 4, 5}, seqs(fwd))
		require.Equal(t, later, fwd[1].ExpiresAt)
		back, err := s.History(ctx, "x", store.HistoryQuery{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, []uint64{5, 4}, seqs(back), "a page is full of live messages")
		back, err = s.History(ctx, "x", store.HistoryQuery{Before: 4})
		require.NoError(t, err)
		require.Equal(t, []uint64{1}, seqs(back))
		found, err := searcher(t, s).Search(ctx, "bob", store.SearchQuery{Text: "zebra"})
		require.NoError(t, err)
		require.ElementsMatch(t, []uint64{1, 4, 5}, seqs(found))
		chats, err := s.UserChats(ctx, "bob", 0, 0)
		require.NoError(t, err)
		require.Len(t, chats, 1)
		require.Nil(t, chats[0].LastMessage, "the last message expired")
		require.Equal(t, uint64(3), chats[0].Unread, "1, 4 and 5")
	}
	check(t)
	n, err := s.SweepExpired(ctx, now, 2)
	require.NoError(t, err)
	if n > 0 { // a backend that sweeps: in batches of at most limit, until none is left
		require.Equal(t, 2, n)
		n, err = s.SweepExpired(ctx, now, 2)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		n, err = s.SweepExpired(ctx, now, 2)
		require.NoError(t, err)
		require.Zero(t, n)
	}
	check(t)
	// The sweep removed nothing that has not expired.
	n, err = s.SweepExpired(ctx, now.Add(30*time.Minute), 100)
	require.NoError(t, err)
	require.Zero(t, n)
	check(t)
	// An expired message's reactions and edits go with it; the seq stays taken.
	last, err := s.LastSeq(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, uint64(6), last)
}

// messageTTL: SetMessageTTL is what GetChat then answers; unknown chats are
// ErrNotFound.
func messageTTL(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "t", "alice", "bob")
	c, err := s.GetChat(ctx, "t")
	require.NoError(t, err)
	require.Zero(t, c.MessageTTL)
	require.NoError(t, s.SetMessageTTL(ctx, "t", 3600))
	c, err = s.GetChat(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, int64(3600), c.MessageTTL)
	require.NoError(t, s.SetMessageTTL(ctx, "t", 0))
	c, err = s.GetChat(ctx, "t")
	require.NoError(t, err)
	require.Zero(t, c.MessageTTL)
	require.ErrorIs(t, s.SetMessageTTL(ctx, "nope", 60), store.ErrNotFound)
}

// clearHistory: the floor only rises, is per user and chat, and marks what is
// below it read.
func clearHistory(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "c", "alice", "bob")
	var msgs []protocol.Message
	for seq := uint64(1); seq <= 5; seq++ {
		msgs = append(msgs, msg("c", seq, "alice", base.Add(time.Duration(seq)*time.Second)))
	}
	require.NoError(t, s.AppendMessages(ctx, msgs))
	f, err := s.HistoryFloor(ctx, "c", "bob")
	require.NoError(t, err)
	require.Zero(t, f)
	f, err = s.ClearHistory(ctx, "c", "bob", 3)
	require.NoError(t, err)
	require.Equal(t, uint64(3), f)
	f, err = s.ClearHistory(ctx, "c", "bob", 2)
	require.NoError(t, err)
	require.Equal(t, uint64(3), f, "a floor never goes down")
	f, err = s.HistoryFloor(ctx, "c", "bob")
	require.NoError(t, err)
	require.Equal(t, uint64(3), f)
	f, err = s.HistoryFloor(ctx, "c", "alice")
	require.NoError(t, err)
	require.Zero(t, f, "floors are per user")
	rs, err := s.GetReadState(ctx, "c", "bob")
	require.NoError(t, err)
	require.Equal(t, uint64(3), rs.Read)
	chats, err := s.UserChats(ctx, "bob", 0, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(2), chats[0].Unread)
	// Everyone else's history is whole.
	all, err := s.History(ctx, "c", store.HistoryQuery{Dir: store.Forward})
	require.NoError(t, err)
	require.Equal(t, rng(1, 5), seqs(all))
}

// deleteChat: everything of the chat goes; its ID stays reserved; other chats are
// untouched; deleting twice is fine.
func deleteChat(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "d", "alice", "bob")
	group(t, s, "keep", "alice", "bob")
	var msgs []protocol.Message
	for seq := uint64(1); seq <= 4; seq++ {
		m := msg("d", seq, "alice", base.Add(time.Duration(seq)*Day))
		m.Content = "secret plans"
		msgs = append(msgs, m, msg("keep", seq, "bob", base.Add(time.Duration(seq)*time.Second)))
	}
	msgs = append(msgs, react("d", 5, "bob", "m1", "👍", false))
	require.NoError(t, s.AppendMessages(ctx, msgs))
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "d", UserID: "bob", Muted: true}))
	_, err := s.ClearHistory(ctx, "d", "bob", 1)
	require.NoError(t, err)

	require.NoError(t, s.DeleteChat(ctx, "d"))
	_, err = s.GetChat(ctx, "d")
	require.ErrorIs(t, err, store.ErrNotFound)
	ms, err := s.Members(ctx, "d")
	require.NoError(t, err)
	require.Empty(t, ms)
	_, err = s.GetMember(ctx, "d", "alice")
	require.ErrorIs(t, err, store.ErrNotFound)
	h, err := s.History(ctx, "d", store.HistoryQuery{Dir: store.Forward})
	require.NoError(t, err)
	require.Empty(t, h)
	_, err = s.MessageSeq(ctx, "d", "m1")
	require.ErrorIs(t, err, store.ErrNotFound)
	found, err := searcher(t, s).Search(ctx, "alice", store.SearchQuery{Text: "secret"})
	require.NoError(t, err)
	require.Empty(t, found)
	mu, err := s.GetMute(ctx, "d", "bob")
	require.NoError(t, err)
	require.False(t, mu.Muted)
	f, err := s.HistoryFloor(ctx, "d", "bob")
	require.NoError(t, err)
	require.Zero(t, f)
	rs, err := s.GetReadState(ctx, "d", "bob")
	require.NoError(t, err)
	require.Zero(t, rs.Read)
	for _, u := range []string{"alice", "bob"} {
		chats, err := s.UserChats(ctx, u, 0, 0)
		require.NoError(t, err)
		require.Len(t, chats, 1)
		require.Equal(t, "keep", chats[0].ID)
	}
	keep, err := s.History(ctx, "keep", store.HistoryQuery{Dir: store.Forward})
	require.NoError(t, err)
	require.Equal(t, rng(1, 4), seqs(keep))

	// The ID is never used again.
	_, _, err = s.CreateChat(ctx, store.Chat{ID: "d", Kind: store.KindGroup, CreatedBy: "eve", CreatedAt: base},
		[]store.Member{{ChatID: "d", UserID: "eve", Role: store.RoleAdmin, JoinedAt: base}})
	require.ErrorIs(t, err, store.ErrChatDeleted)
	_, err = s.GetMember(ctx, "d", "eve")
	require.ErrorIs(t, err, store.ErrNotFound)
	// A message stored late (a lagging persister) is erased by the next delete.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("d", 6, "alice", base.Add(6*Day))}))
	require.NoError(t, s.DeleteChat(ctx, "d"))
	h, err = s.History(ctx, "d", store.HistoryQuery{Dir: store.Forward})
	require.NoError(t, err)
	require.Empty(t, h)
	require.NoError(t, s.DeleteChat(ctx, "never-was"))
}

// eraseUser: the user's messages become tombstones (seq kept), edits and reactions
// lose their text, search forgets them; memberships, read state, mutes, floors and
// devices go; others' messages are untouched.
func eraseUser(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "e", "bob", "alice", "carol")
	group(t, s, "f", "carol", "alice")
	msgs := []protocol.Message{
		msg("e", 1, "alice", base.Add(time.Second)),
		msg("e", 2, "bob", base.Add(2*time.Second)),
		op("e", 3, "alice", protocol.TypeEdit, "m1", "private edit", nil),
		react("e", 4, "alice", "m2", "👍", false),
		react("e", 5, "carol", "m2", "🎉", false),
		msg("f", 1, "carol", base.Add(time.Second)),
		msg("f", 2, "alice", base.Add(2*time.Second)),
	}
	msgs[0].Content = "alice secret"
	msgs[1].Content = "bob public"
	msgs[6].Content = "alice also"
	require.NoError(t, s.AppendMessages(ctx, msgs))
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "e", UserID: "alice", Muted: true}))
	require.NoError(t, s.PutDevice(ctx, store.Device{UserID: "alice", DeviceID: "phone", Platform: "ios", Provider: "apns", Token: "tok-a"}))
	require.NoError(t, s.PutProfile(ctx, store.Profile{UserID: "alice", DisplayName: "Alice A.", UpdatedAt: base}))
	_, err := s.Block(ctx, store.Block{Blocker: "alice", Blocked: "mallory", CreatedAt: base})
	require.NoError(t, err)
	_, err = s.PutInvitation(ctx, store.Invitation{UserID: "alice", ChatID: "g9", InvitedBy: "carol", Role: store.RoleMember, CreatedAt: base})
	require.NoError(t, err)
	_, _, err = s.PutDeviceKeys(ctx, devKeys("alice", "phone", "id-a"), otks(1, 3))
	require.NoError(t, err)

	rep, err := s.EraseUser(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 2, rep.Chats)
	require.Equal(t, 1, rep.Devices)
	require.True(t, rep.Profile)
	ps, err := s.Profiles(ctx, []string{"alice"})
	require.NoError(t, err)
	require.Empty(t, ps)
	bs, err := s.Blocks(ctx, "alice")
	require.NoError(t, err)
	require.Empty(t, bs)
	blockers, err := s.Blockers(ctx, "mallory")
	require.NoError(t, err)
	require.Empty(t, blockers)
	invs, err := s.Invitations(ctx, "alice")
	require.NoError(t, err)
	require.Empty(t, invs)
	keys, err := s.DeviceKeys(ctx, "alice")
	require.NoError(t, err)
	require.Empty(t, keys)
	bundles, err := s.ClaimKeys(ctx, "alice")
	require.NoError(t, err)
	require.Empty(t, bundles)
	require.GreaterOrEqual(t, rep.Messages, 2)

	e := page(t, s, "e", "bob")
	require.Len(t, e, 5, "every seq is still there")
	require.True(t, e[1].Deleted)
	require.Empty(t, e[1].Content)
	require.Equal(t, "alice", e[1].SenderID)
	require.Empty(t, e[3].Content, "the edit's text is gone")
	require.Equal(t, "bob public", e[2].Content)
	require.Equal(t, []protocol.Reaction{{Emoji: "🎉", Count: 1}}, e[2].Reactions, "alice's reaction is gone, carol's stays")
	f := page(t, s, "f", "carol")
	require.True(t, f[2].Deleted)
	require.False(t, f[1].Deleted)
	for _, q := range []string{"secret", "private", "also"} {
		found, err := searcher(t, s).Search(ctx, "carol", store.SearchQuery{Text: q})
		require.NoError(t, err)
		require.Empty(t, found, q)
	}
	chats, err := s.UserChats(ctx, "alice", 0, 0)
	require.NoError(t, err)
	require.Empty(t, chats)
	_, err = s.GetMember(ctx, "e", "alice")
	require.ErrorIs(t, err, store.ErrNotFound)
	rs, err := s.GetReadState(ctx, "f", "alice")
	require.NoError(t, err)
	require.Zero(t, rs.Read)
	mu, err := s.GetMute(ctx, "e", "alice")
	require.NoError(t, err)
	require.False(t, mu.Muted)
	ds, err := s.Devices(ctx, "alice")
	require.NoError(t, err)
	require.Empty(t, ds)
	// The chat list of the others does not show alice's last message's text.
	cl, err := s.UserChats(ctx, "carol", 0, 0)
	require.NoError(t, err)
	for _, c := range cl {
		if c.ID == "f" && c.LastMessage != nil {
			require.Empty(t, c.LastMessage.Content)
		}
	}
	again, err := s.EraseUser(ctx, "alice")
	require.NoError(t, err)
	require.Zero(t, again.Chats)
}
