package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// groupFn creates a group chat whose first user is its admin.
type groupFn func(t *testing.T, s store.Store, id string, users ...string)

func op(chat string, seq uint64, sender, typ, ref, content string, meta any) protocol.Message {
	m := protocol.Message{ChatID: chat, Seq: seq, MessageID: fmt.Sprintf("op%d", seq), SenderID: sender,
		Content: content, MessageType: typ, RefID: ref, Timestamp: base.Add(time.Duration(seq) * time.Second).UnixMilli()}
	if meta != nil {
		m.Meta, _ = json.Marshal(meta)
	}
	return m
}

func react(chat string, seq uint64, sender, ref, emoji string, remove bool) protocol.Message {
	return op(chat, seq, sender, protocol.TypeReact, ref, "", protocol.ReactionEvent{Emoji: emoji, Remove: remove})
}

// page reads chat's whole history (oldest first) as viewer, keyed by seq.
func page(t *testing.T, s store.Store, chat, viewer string) map[uint64]protocol.Message {
	t.Helper()
	got, err := s.History(context.Background(), chat, store.HistoryQuery{Dir: store.Forward, Limit: store.MaxPage, Viewer: viewer})
	require.NoError(t, err)
	out := map[uint64]protocol.Message{}
	for _, m := range got {
		out[m.Seq] = m
	}
	return out
}

func messageOperations(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "ops", "alice", "bob", "carol")
	m1 := msg("ops", 1, "alice", base)
	m2 := msg("ops", 2, "bob", base.Add(time.Second))
	m2.Meta = json.RawMessage(`{"mediaId":"x"}`)
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{m1, m2}))
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		op("ops", 3, "alice", protocol.TypeEdit, "m1", "hello, edited", nil),
		op("ops", 4, "bob", protocol.TypeEdit, "m1", "bob may not edit this", nil),
		react("ops", 5, "bob", "m1", "👍", false),
		react("ops", 6, "carol", "m1", "👍", false),
		react("ops", 7, "bob", "m1", "👍", false), // again: a user counts once
		react("ops", 8, "bob", "m1", "❤️", false),
		react("ops", 9, "carol", "m1", "👍", true),
		react("ops", 10, "carol", "m1", "🎉", false),
		op("ops", 11, "alice", protocol.TypeReact, "m1", "", map[string]string{"emoji": "not an emoji"}),
	}))

	h := page(t, s, "ops", "bob")
	require.Len(t, h, 11, "the operations are in history as messages of their own")
	got := h[1]
	require.Equal(t, "hello, edited", got.Content, "the author's edit applies, another user's does not")
	require.True(t, got.Edited)
	require.False(t, got.Deleted)
	require.EqualValues(t, 10, got.StateSeq, "the last operation applied (seq 11 names no emoji: it changes nothing)")
	require.Equal(t, []protocol.Reaction{{Emoji: "👍", Count: 1, Me: true}, {Emoji: "❤️", Count: 1, Me: true},
		{Emoji: "🎉", Count: 1}}, got.Reactions, "ordered by first reaction; Me for the viewer")
	require.Equal(t, protocol.TypeEdit, h[3].MessageType)
	require.Equal(t, "m1", h[3].RefID)
	require.Equal(t, "hello, edited", h[3].Content)
	require.Empty(t, h[4].Reactions, "operations have no state of their own")
	carol := page(t, s, "ops", "carol")[1]
	require.Equal(t, []protocol.Reaction{{Emoji: "👍", Count: 1}, {Emoji: "❤️", Count: 1}, {Emoji: "🎉", Count: 1, Me: true}},
		carol.Reactions)
	anon := page(t, s, "ops", "")[1]
	for _, r := range anon.Reactions {
		require.False(t, r.Me, "no viewer: Me is false")
	}
	require.Nil(t, page(t, s, "ops", "bob")[2].Reactions, "no reactions: nil")
	require.False(t, page(t, s, "ops", "bob")[2].Edited)

	// Delete m2 (by its author) and m1 (by an admin: the sequencer authorizes).
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		op("ops", 12, "bob", protocol.TypeDelete, "m2", "", nil),
		op("ops", 13, "alice", protocol.TypeDelete, "m1", "", nil),
		op("ops", 14, "alice", protocol.TypeEdit, "m1", "too late", nil),
		react("ops", 15, "bob", "m1", "😮", false),
	}))
	h = page(t, s, "ops", "bob")
	for _, seq := range []uint64{1, 2} {
		require.True(t, h[seq].Deleted, "seq %d is a tombstone", seq)
		require.Empty(t, h[seq].Content)
		require.Empty(t, h[seq].Meta)
		require.Empty(t, h[seq].Reactions)
		require.False(t, h[seq].Edited)
	}
	require.Empty(t, h[3].Content, "a deleted message's edits keep no text")
	require.Empty(t, h[14].Content, "nor does an edit that came after the delete")
	require.Equal(t, "m1", h[1].MessageID, "a tombstone keeps its identity")

	chats, err := s.UserChats(ctx, "carol", 0, 0)
	require.NoError(t, err)
	require.Len(t, chats, 1)
	require.EqualValues(t, 15, chats[0].LastSeq, "operations count in the last seq")
	require.NotNil(t, chats[0].LastMessage)
	require.EqualValues(t, 2, chats[0].LastMessage.Seq, "the last message is the last one that is not an operation")
	require.True(t, chats[0].LastMessage.Deleted, "in its current state")
	require.Empty(t, chats[0].LastMessage.Content)

	// The last message shows an edit too.
	group(t, s, "ops2", "alice")
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("ops2", 1, "alice", base),
		op("ops2", 2, "alice", protocol.TypeEdit, "m1", "fixed typo", nil)}))
	chats, err = s.UserChats(ctx, "alice", 0, 0)
	require.NoError(t, err)
	for _, c := range chats {
		if c.ID == "ops2" {
			require.Equal(t, "fixed typo", c.LastMessage.Content)
			require.True(t, c.LastMessage.Edited)
		}
	}
	// Re-appending the same operations changes nothing.
	before := page(t, s, "ops", "bob")
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{react("ops", 5, "bob", "m1", "👍", false),
		op("ops", 3, "alice", protocol.TypeEdit, "m1", "hello, edited", nil)}))
	require.Equal(t, before, page(t, s, "ops", "bob"))
}

func operationsOutOfOrder(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "ooo", "alice", "bob")
	// Persisters race: operations are stored before their message, and later
	// operations before earlier ones.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		op("ooo", 5, "alice", protocol.TypeEdit, "m1", "second edit", nil),
		react("ooo", 7, "bob", "m1", "👍", true),
	}))
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		op("ooo", 4, "alice", protocol.TypeEdit, "m1", "first edit", nil),
		react("ooo", 6, "bob", "m1", "👍", false),
		react("ooo", 8, "bob", "m1", "🎉", false),
	}))
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("ooo", 1, "alice", base), msg("ooo", 2, "bob", base)}))
	got := page(t, s, "ooo", "bob")[1]
	require.Equal(t, "second edit", got.Content, "the edit with the highest seq wins")
	require.True(t, got.Edited)
	require.Equal(t, []protocol.Reaction{{Emoji: "🎉", Count: 1, Me: true}}, got.Reactions,
		"the removal (seq 7) wins over the earlier add (seq 6) that arrived after it")
	require.EqualValues(t, 8, got.StateSeq)

	// A delete stored before its message.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{op("ooo", 10, "bob", protocol.TypeDelete, "m9", "", nil)}))
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("ooo", 9, "bob", base)}))
	got = page(t, s, "ooo", "bob")[9]
	require.True(t, got.Deleted)
	require.Empty(t, got.Content)
}

func userChatsCursor(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		group(t, s, id, "alice", "bob")
	}
	// Activity: e newest ... a oldest.
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg(id, 1, "bob", base.Add(time.Duration(i+1)*time.Hour))}))
	}
	ids := func(cs []store.ChatSummary) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	p1, err := s.UserChatsBefore(ctx, "alice", store.ChatListCursor{}, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"e", "d"}, ids(p1))
	require.True(t, p1[0].LastActivity.Equal(base.Add(5*time.Hour)), "LastActivity is the last message's time: %v", p1[0].LastActivity)
	all, err := s.UserChats(ctx, "alice", 0, 0)
	require.NoError(t, err)
	require.True(t, all[4].LastActivity.Equal(base.Add(time.Hour)))

	// Between pages, a chat from a later page becomes active and one on the first
	// page is left: the next page neither repeats nor skips a chat.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("a", 2, "bob", base.Add(10*time.Hour))}))
	require.NoError(t, s.RemoveMember(ctx, "e", "alice"))
	cur := store.ChatListCursor{Activity: p1[1].LastActivity, ChatID: p1[1].ID}
	p2, err := s.UserChatsBefore(ctx, "alice", cur, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"c", "b"}, ids(p2))
	cur = store.ChatListCursor{Activity: p2[1].LastActivity, ChatID: p2[1].ID}
	p3, err := s.UserChatsBefore(ctx, "alice", cur, 2)
	require.NoError(t, err)
	require.Empty(t, p3, "a moved to the top, which the client learns from its live message")

	// Ties on activity are broken by chat ID.
	group(t, s, "t1", "zed")
	group(t, s, "t2", "zed")
	p, err := s.UserChatsBefore(ctx, "zed", store.ChatListCursor{}, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"t1"}, ids(p))
	p, err = s.UserChatsBefore(ctx, "zed", store.ChatListCursor{Activity: p[0].LastActivity, ChatID: p[0].ID}, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"t2"}, ids(p))
}

func search(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "s1", "alice", "bob")
	group(t, s, "s2", "alice", "carol")
	text := func(chat string, seq uint64, sender, content string, at time.Duration) protocol.Message {
		m := msg(chat, seq, sender, base.Add(at))
		m.Content = content
		return m
	}
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		text("s1", 1, "alice", "Let's meet at the café tomorrow", time.Minute),
		text("s1", 2, "bob", "the cafe on Main street?", 2*time.Minute),
		text("s1", 3, "alice", "no, the other one", 3*time.Minute),
		text("s2", 1, "carol", "Café au lait for everyone", 4*time.Minute),
		op("s2", 2, "carol", protocol.TypeSystem, "", "", protocol.SystemEvent{Event: protocol.EventChatRenamed, Name: "cafe"}),
	}))
	_, err := searcher(t, s).Search(ctx, "alice", store.SearchQuery{Text: "cafe"})
	require.NoError(t, err, "every backend searches (SQLite FTS5, Cassandra SAI)")
	keys := func(q store.SearchQuery, user string) []string {
		t.Helper()
		got, err := searcher(t, s).Search(ctx, user, q)
		require.NoError(t, err)
		var out []string
		for _, m := range got {
			out = append(out, fmt.Sprintf("%s/%d", m.ChatID, m.Seq))
		}
		return out
	}
	require.Equal(t, []string{"s2/1", "s1/2", "s1/1"}, keys(store.SearchQuery{Text: "cafe"}, "alice"),
		"accent- and case-insensitive, newest first, across the user's chats; system messages are not found")
	require.Equal(t, []string{"s1/2", "s1/1"}, keys(store.SearchQuery{Text: "CAFÉ", ChatID: "s1"}, "alice"))
	require.Equal(t, []string{"s1/2", "s1/1"}, keys(store.SearchQuery{Text: "cafe"}, "bob"), "only the user's chats")
	require.Empty(t, keys(store.SearchQuery{Text: "cafe"}, "mallory"))
	require.Empty(t, keys(store.SearchQuery{Text: "cafe", ChatID: "s2"}, "bob"), "a chat of others stays closed")
	require.Equal(t, []string{"s1/2"}, keys(store.SearchQuery{Text: "main str"}, "alice"), "all words; the last is a prefix")
	require.Empty(t, keys(store.SearchQuery{Text: "main cafeteria"}, "alice"))
	require.Empty(t, keys(store.SearchQuery{Text: `tomorrow" OR "other`}, "alice"),
		"query syntax is not interpreted: OR is a word like the others, all of which must match")
	require.Equal(t, []string{"s1/1"}, keys(store.SearchQuery{Text: `"tomorrow`}, "alice"),
		"an unbalanced quote is no syntax error")

	// Paging with the cursor.
	first, err := searcher(t, s).Search(ctx, "alice", store.SearchQuery{Text: "cafe", Limit: 2})
	require.NoError(t, err)
	require.Len(t, first, 2)
	last := first[1]
	require.Equal(t, []string{"s1/1"}, keys(store.SearchQuery{Text: "cafe", Limit: 2,
		Before: store.SearchCursor{Timestamp: last.Timestamp, ChatID: last.ChatID, Seq: last.Seq}}, "alice"))

	// Edits change what is found; deletes remove; leaving a chat hides it.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		op("s1", 4, "bob", protocol.TypeEdit, "m2", "the bakery on Main street?", nil),
		op("s1", 5, "alice", protocol.TypeDelete, "m1", "", nil),
	}))
	require.Empty(t, keys(store.SearchQuery{Text: "cafe", ChatID: "s1"}, "alice"))
	require.Equal(t, []string{"s1/2"}, keys(store.SearchQuery{Text: "bakery"}, "alice"))
	got, err := searcher(t, s).Search(ctx, "alice", store.SearchQuery{Text: "bakery"})
	require.NoError(t, err)
	require.True(t, got[0].Edited)
	require.Equal(t, "the bakery on Main street?", got[0].Content)
	require.Empty(t, keys(store.SearchQuery{Text: "edited"}, "alice"))
	require.NoError(t, s.RemoveMember(ctx, "s2", "alice"))
	require.Empty(t, keys(store.SearchQuery{Text: "cafe"}, "alice"), "only chats the user is a member of now")

	for _, bad := range []string{"", "  ", "!!!", string(make([]byte, store.MaxSearchBytes+1))} {
		_, err := searcher(t, s).Search(ctx, "alice", store.SearchQuery{Text: bad})
		require.ErrorIs(t, err, store.ErrBadSearch, "%q", bad)
	}
}
