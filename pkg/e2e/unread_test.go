package e2e

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestUnreadCountsWhatAPersonReads: after reading everything, a reaction and an edit
// once made 2 unread (the count was lastSeq - readSeq). Only messages a person reads
// count; one's own never do.
func TestUnreadCountsWhatAPersonReads(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	ctx := ctxT(t, 20*time.Second)
	unread := func(user string, want uint64, lastSeq uint64) {
		t.Helper()
		require.Eventually(t, func() bool {
			c := listChats(t, n, user)
			return len(c) == 1 && c[0].LastSeq == lastSeq && c[0].Unread == want
		}, 10*time.Second, 20*time.Millisecond, "%s: %d unread at seq %d, got %+v", user, want, lastSeq, listChats(t, n, user))
	}
	for _, id := range []string{"m1", "m2"} {
		_, err := alice.Send(ctx, chat, id, "hello "+id)
		require.NoError(t, err)
	}
	unread("bob", 2, 2)
	unread("alice", 0, 2) // her own
	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 2}))
	unread("bob", 0, 2)

	// A reaction and an edit after everything was read: nothing new to read.
	_, err := alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameReact, ChatID: chat, MessageID: "r1", RefID: "m1", Emoji: "👍"})
	require.NoError(t, err)
	_, err = alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameEdit, ChatID: chat, MessageID: "e1", RefID: "m2", Content: "hello again"})
	require.NoError(t, err)
	unread("bob", 0, 4)

	// A message counts; deleting it before it is read takes it off again.
	_, err = alice.Send(ctx, chat, "m3", "are you there?")
	require.NoError(t, err)
	unread("bob", 1, 5)
	_, err = alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameDelete, ChatID: chat, MessageID: "d1", RefID: "m3"})
	require.NoError(t, err)
	unread("bob", 0, 6)

	// bob's reply is his own: it counts for alice only.
	_, err = bob.Send(ctx, chat, "b1", "yes")
	require.NoError(t, err)
	unread("bob", 0, 7)
	unread("alice", 1, 7)
}
