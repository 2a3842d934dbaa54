package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// unreadCountable checks that ChatSummary.Unread and UnreadTotal count only what a
// person reads: not system events, not key distributions (encrypted_keys), not
// edit, delete or react events, not deleted messages, not one's own; the same
// number in both.
func unreadCountable(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "u", "alice", "bob", "carol")
	sys := op("u", 1, "bob", protocol.TypeSystem, "", "", protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "carol", By: "bob"})
	image := msg("u", 8, "carol", base.Add(8*time.Second))
	image.MessageType, image.Content = protocol.TypeImage, ""
	image.Meta = []byte(`{"mediaId":"x1"}`)
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		sys,
		msg("u", 2, "bob", base.Add(2*time.Second)),
		msg("u", 3, "bob", base.Add(3*time.Second)),
		react("u", 4, "bob", "m2", "👍", false),
		op("u", 5, "bob", protocol.TypeEdit, "m2", "edited", nil),
		msg("u", 6, "bob", base.Add(6*time.Second)),
		op("u", 7, "bob", protocol.TypeDelete, "m6", "", nil),
		image,
		react("u", 9, "carol", "m8", "🎉", false),
	}))
	unread := func(user string) uint64 {
		t.Helper()
		chats, err := s.UserChats(ctx, user, 0, 0)
		require.NoError(t, err)
		require.Len(t, chats, 1)
		total, err := s.UnreadTotal(ctx, user, "")
		require.NoError(t, err)
		require.Equal(t, chats[0].Unread, total, "UnreadTotal agrees with UserChats for %s", user)
		return chats[0].Unread
	}
	// alice: 2, 3 and the image; not the system event, the reactions, the edit, the
	// delete or the deleted 6.
	require.EqualValues(t, 3, unread("alice"))
	_, err := s.SetReadState(ctx, "u", "alice", 0, 3)
	require.NoError(t, err)
	require.EqualValues(t, 1, unread("alice"), "after reading up to 3: the image")
	_, err = s.SetReadState(ctx, "u", "alice", 0, 8)
	require.NoError(t, err)
	require.EqualValues(t, 0, unread("alice"), "a reaction after everything read is not unread")
	// bob's own delete (7) moved his watermark; carol's own reaction (9) hers.
	require.EqualValues(t, 1, unread("bob"), "the image")
	require.EqualValues(t, 0, unread("carol"))
	// One's own message is read: alice's text moves only others' counts.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("u", 10, "alice", base.Add(10*time.Second))}))
	require.EqualValues(t, 0, unread("alice"))
	require.EqualValues(t, 2, unread("bob"))
	require.EqualValues(t, 1, unread("carol"))
	// An edit of a message already counted changes nothing; deleting an unread one
	// takes it off.
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		op("u", 11, "alice", protocol.TypeEdit, "m10", "edited", nil),
		op("u", 12, "alice", protocol.TypeDelete, "m10", "", nil),
	}))
	require.EqualValues(t, 1, unread("bob"), "alice's text was deleted")
	require.EqualValues(t, 0, unread("carol"))
	// A key distribution is stored and read back like any message, but it is nothing
	// a person reads: it counts for nobody, while the ciphertext after it does.
	keys := msg("u", 13, "carol", base.Add(13*time.Second))
	keys.MessageType, keys.Content = protocol.TypeEncryptedKeys, `{"v":1,"t":"keys","dev":"d1","ep":1,"boxes":[]}`
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{keys}))
	require.EqualValues(t, 0, unread("alice"), "a key distribution is not unread")
	chats, err := s.UserChats(ctx, "bob", 0, 0)
	require.NoError(t, err)
	require.NotNil(t, chats[0].LastMessage)
	require.EqualValues(t, 10, chats[0].LastMessage.Seq, "a key distribution is not the chat's last message")
	require.EqualValues(t, 13, chats[0].LastSeq)
	require.EqualValues(t, 1, unread("bob"), "a key distribution is not unread")
	got := page(t, s, "u", "alice")
	require.Contains(t, got, uint64(13), "the distribution is stored")
	require.Equal(t, protocol.TypeEncryptedKeys, got[13].MessageType)
	require.Equal(t, keys.Content, got[13].Content)
	ct := msg("u", 14, "carol", base.Add(14*time.Second))
	ct.MessageType = protocol.TypeEncrypted
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{ct}))
	require.EqualValues(t, 1, unread("alice"), "the encrypted message after it is")
	require.EqualValues(t, 2, unread("bob"))
}

// unreadBetween checks UnreadBetween (a notification's count) against the count a
// reader of history makes: every message with seq in (after, upTo] that History
// returns (not expired) and that is Countable for the user, at most MaxUnread; for
// every range of a chat that has every kind of message, and at the cap.
func unreadBetween(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "v", "alice", "bob", "carol")
	// Seq i+1 is kinds[i]: every kind of message, from each member, one deleted, one
	// expired and one that expires later.
	kinds := []struct{ sender, typ, ref string }{
		{"bob", protocol.TypeSystem, ""}, {"bob", protocol.TypeText, ""}, {"alice", protocol.TypeText, ""},
		{"bob", protocol.TypeReact, "m2"}, {"bob", protocol.TypeEdit, "m2"}, {"bob", protocol.TypeText, ""},
		{"bob", protocol.TypeDelete, "m6"}, {"carol", protocol.TypeImage, ""}, {"alice", protocol.TypeText, ""},
		{"carol", protocol.TypeEncryptedKeys, ""}, {"bob", "expired", ""}, {"bob", "expires later", ""},
		{"carol", protocol.TypeText, ""},
	}
	msgs := make([]protocol.Message, len(kinds))
	for i, k := range kinds {
		seq := uint64(i + 1)
		switch k.typ {
		case protocol.TypeSystem:
			msgs[i] = op("v", seq, k.sender, k.typ, "", "", protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "carol", By: "bob"})
		case protocol.TypeReact:
			msgs[i] = react("v", seq, k.sender, k.ref, "👍", false)
		case protocol.TypeEdit, protocol.TypeDelete:
			msgs[i] = op("v", seq, k.sender, k.typ, k.ref, "edited", nil)
		default:
			msgs[i] = msg("v", seq, k.sender, base.Add(time.Duration(seq)*time.Second))
		}
		switch k.typ {
		case protocol.TypeImage:
			msgs[i].MessageType, msgs[i].Content, msgs[i].Meta = k.typ, "", []byte(`{"mediaId":"x1"}`)
		case protocol.TypeEncryptedKeys:
			msgs[i].MessageType, msgs[i].Content = k.typ, `{"v":1,"t":"keys","dev":"d1","ep":1,"boxes":[]}`
		case "expired":
			msgs[i].ExpiresAt = time.Now().Add(-time.Minute).UnixMilli()
		case "expires later":
			msgs[i].ExpiresAt = time.Now().Add(time.Hour).UnixMilli()
		}
	}
	require.NoError(t, s.AppendMessages(ctx, msgs))
	stored := map[uint64]protocol.Message{}
	for _, u := range []string{"alice", "bob", "carol"} {
		for seq, m := range page(t, s, "v", u) {
			stored[seq] = m
		}
	}
	require.NotContains(t, stored, uint64(11), "history hides the expired message")
	want := func(user string, after, upTo uint64) uint64 {
		var n uint64
		for seq := after + 1; seq <= upTo; seq++ {
			if m, ok := stored[seq]; ok && store.Countable(&m, user) {
				n++
			}
		}
		return n
	}
	last := uint64(len(msgs))
	for _, u := range []string{"alice", "bob", "carol", "nobody"} {
		for after := uint64(0); after <= last+1; after++ {
			for upTo := uint64(0); upTo <= last+1; upTo++ {
				got, err := s.UnreadBetween(ctx, "v", u, after, upTo)
				require.NoError(t, err)
				require.Equal(t, want(u, after, upTo), got, "%s in (%d, %d]", u, after, upTo)
			}
		}
	}
	// alice from the start: 2 (its edit is not counted again), the image, the message
	// that expires later and 13; not the deleted 6, her own, the distribution.
	n, err := s.UnreadBetween(ctx, "v", "alice", 0, last)
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	n, err = s.UnreadBetween(ctx, "nochat", "alice", 0, last)
	require.NoError(t, err)
	require.Zero(t, n)

	// The cap: a backlog beyond MaxUnread reads as MaxUnread; a range inside it
	// counts exactly.
	group(t, s, "w", "alice", "bob")
	backlog := make([]protocol.Message, store.MaxUnread+5)
	for i := range backlog {
		backlog[i] = msg("w", uint64(i+1), "bob", base.Add(time.Duration(i)*time.Millisecond))
	}
	require.NoError(t, s.AppendMessages(ctx, backlog))
	for _, c := range []struct{ after, upTo, want uint64 }{
		{0, uint64(len(backlog)), store.MaxUnread},
		{0, 10, 10},
		{uint64(len(backlog)) - 3, uint64(len(backlog)), 3},
		{4, store.MaxUnread + 4, store.MaxUnread},
		{5, store.MaxUnread + 4, store.MaxUnread - 1},
	} {
		n, err := s.UnreadBetween(ctx, "w", "alice", c.after, c.upTo)
		require.NoError(t, err)
		require.Equal(t, c.want, n, "(%d, %d]", c.after, c.upTo)
	}
}
