package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// byID returns a history page's messages by messageId.
func byID(ms []protocol.Message) map[string]protocol.Message {
	out := map[string]protocol.Message{}
	for _, m := range ms {
		out[m.MessageID] = m
	}
	return out
}

// opsScenario runs, in group chat (alice admin, bob, carol), the message operations
// whose outcome checkOpsHistory expects, and returns the frames each member
// received.
func opsScenario(t *testing.T, chat string, alice, bob, carol *client.Conn) [3][]*protocol.Frame {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	_, err := alice.Send(ctx, chat, "a1", "helo everyone")
	require.NoError(t, err)
	_, err = bob.Send(ctx, chat, "b1", "hi")
	require.NoError(t, err)
	for _, op := range []func() (*protocol.Frame, error){
		func() (*protocol.Frame, error) { return alice.Edit(ctx, chat, "a1", "hello everyone") },
		func() (*protocol.Frame, error) { return bob.React(ctx, chat, "a1", "👍", false) },
		func() (*protocol.Frame, error) { return carol.React(ctx, chat, "a1", "👍", false) },
		func() (*protocol.Frame, error) { return bob.React(ctx, chat, "a1", "👍", false) }, // again: dropped
		func() (*protocol.Frame, error) { return carol.React(ctx, chat, "a1", "🎉", false) },
		func() (*protocol.Frame, error) { return alice.Delete(ctx, chat, "b1") }, // an admin deletes bob's
		func() (*protocol.Frame, error) { return bob.React(ctx, chat, "a1", "👍", true) },
		func() (*protocol.Frame, error) { return carol.React(ctx, chat, "a1", "🎉", true) },
		func() (*protocol.Frame, error) { return carol.React(ctx, chat, "a1", "🎉", true) }, // again: dropped
	} {
		ack, err := op()
		require.NoError(t, err)
		require.Equal(t, protocol.FrameAck, ack.Type)
	}
	_, err = carol.Send(ctx, chat, "c1", "done")
	require.NoError(t, err)
	var got [3][]*protocol.Frame
	for i, c := range []*client.Conn{alice, bob, carol} {
		got[i] = collect(t, c, 10, 10*time.Second)
	}
	return got
}

// checkOpsHistory checks the current state after opsScenario, as viewer.
func checkOpsHistory(t *testing.T, msgs []protocol.Message, viewer string) {
	t.Helper()
	require.Equal(t, seqRange(1, 10), seqsOf(msgs), "every sequenced event is in history as its own seq")
	m := byID(msgs)
	a1 := m["a1"]
	require.Equal(t, "hello everyone", a1.Content)
	require.True(t, a1.Edited)
	require.False(t, a1.Deleted)
	want := []protocol.Reaction{{Emoji: "👍", Count: 1, Me: viewer == "carol"}}
	require.Equal(t, want, a1.Reactions, "bob took his 👍 back, carol her 🎉; doubles counted once")
	b1 := m["b1"]
	require.True(t, b1.Deleted)
	require.Empty(t, b1.Content)
	require.False(t, m["c1"].Edited)
	require.Nil(t, m["c1"].Reactions)
}

func TestEditDeleteReactSeenInOrderAndInHistory(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	got := opsScenario(t, chat, alice, bob, carol)
	for i := range got {
		for j, f := range got[i] {
			require.EqualValues(t, j+1, f.Seq, "member %d: no gap", i)
			require.Equal(t, got[0][j].MessageID, f.MessageID, "member %d sees the order member 0 sees", i)
		}
	}
	types := []string{}
	for _, f := range got[1] {
		types = append(types, f.MessageType)
	}
	require.Equal(t, []string{"text", "text", "edit", "react", "react", "react", "delete", "react", "react", "text"}, types)
	edit := got[2][2]
	require.Equal(t, "a1", edit.RefID)
	require.Equal(t, "alice", edit.SenderID)
	require.Equal(t, "hello everyone", edit.Content)
	var rev protocol.ReactionEvent
	require.NoError(t, client.DecodeMeta(got[2][7], &rev))
	require.Equal(t, protocol.ReactionEvent{Emoji: "👍", Remove: true}, rev)
	require.Equal(t, "bob", got[2][7].SenderID)

	// History at once (the persister may lag: the log tail is merged) and after the
	// store has everything: the same current state.
	checkOpsHistory(t, history(t, n, "carol", chat, "?after=0").Messages, "carol")
	res, err := bob.HistoryBefore(ctxT(t, 5*time.Second), chat, 0, 50)
	require.NoError(t, err)
	checkOpsHistory(t, reverse(res.Messages), "bob")
	require.Eventually(t, func() bool {
		last, err := n.Store.LastSeq(ctxT(t, time.Second), chat)
		return err == nil && last == 10
	}, 10*time.Second, 20*time.Millisecond)
	checkOpsHistory(t, history(t, n, "carol", chat, "?after=0").Messages, "carol")
	checkOpsHistory(t, history(t, n, "alice", chat, "?after=0").Messages, "alice")

	// A resume (sync) replays the messages with their current state.
	fresh := n.Dial(t, "bob")
	_, err = fresh.Sync(ctxT(t, 5*time.Second), []protocol.ChatCursor{{ChatID: chat, Seq: 0}})
	require.NoError(t, err)
	replay := collect(t, fresh, 10, 5*time.Second)
	require.True(t, replay[0].Edited)
	require.Equal(t, "hello everyone", replay[0].Content)
	require.True(t, replay[1].Deleted)
	require.Empty(t, replay[1].Content)
}

func reverse(ms []protocol.Message) []protocol.Message {
	out := make([]protocol.Message, len(ms))
	for i, m := range ms {
		out[len(ms)-1-i] = m
	}
	return out
}

// TestOperationsInHistoryWhilePersisterLags: with no persister, history applies the
// operations still in the log tail; once a persister has stored everything, the
// answer is the same.
func TestOperationsInHistoryWhilePersisterLags(t *testing.T) {
	ns := natstest.Server(t)
	cfg := testutil.Config(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.Roles = []string{app.RoleGateway, app.RoleSequencer}
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	opsScenario(t, chat, alice, bob, carol)
	last, err := n.Store.LastSeq(ctxT(t, time.Second), chat)
	require.NoError(t, err)
	require.Zero(t, last, "nothing is persisted yet")
	checkOpsHistory(t, history(t, n, "carol", chat, "?after=0").Messages, "carol")
	checkOpsHistory(t, history(t, n, "bob", chat, "?after=0").Messages, "bob")

	pcfg := testutil.Config(t)
	pcfg.DataDir = cfg.DataDir
	pcfg.NATS.URL = ns.ClientURL()
	pcfg.Roles = []string{app.RolePersister}
	p := testutil.StartNatter(t, pcfg)
	require.Eventually(t, func() bool {
		last, err := p.Store.LastSeq(ctxT(t, time.Second), chat)
		return err == nil && last == 10
	}, 10*time.Second, 20*time.Millisecond)
	checkOpsHistory(t, history(t, n, "carol", chat, "?after=0").Messages, "carol")
	checkOpsHistory(t, history(t, n, "bob", chat, "?after=0").Messages, "bob")
}

// refusedBySequencer sends f, which the gateway accepts and the sequencer refuses,
// and returns the refusal's code. The ack (stored in NATTER_IN) and the error (from
// the sequencer, through the user's subject) race to the connection: either may
// come first.
func refusedBySequencer(t *testing.T, c *client.Conn, f *protocol.Frame) protocol.Code {
	t.Helper()
	ack, err := c.SendFrame(ctxT(t, 5*time.Second), f)
	if err != nil {
		return errCode(t, err)
	}
	e := nextError(t, c, ack.MessageID)
	require.Equal(t, f.ChatID, e.ChatID)
	return e.Code
}

// nextError returns the next error frame about messageID.
func nextError(t *testing.T, c *client.Conn, messageID string) *protocol.Frame {
	t.Helper()
	for {
		f := next(t, c, protocol.FrameError, 5*time.Second)
		if f.MessageID == messageID {
			return f
		}
	}
}

func TestMessageOperationRefusals(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "dave")
	other := n.CreateChat(t, "bob", "group", "other", "carol")
	alice, bob, carol, dave, mallory := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol"), n.Dial(t, "dave"), n.Dial(t, "mallory")
	ctx := ctxT(t, 30*time.Second)
	_, err := alice.Send(ctx, chat, "a1", "alice's")
	require.NoError(t, err)
	_, err = bob.Send(ctx, chat, "b1", "bob's")
	require.NoError(t, err)
	_, err = dave.Send(ctx, chat, "d1", "dave's")
	require.NoError(t, err)
	_, err = bob.Send(ctx, other, "o1", "in the other chat")
	require.NoError(t, err)
	_, err = alice.Send(ctx, chat, "gone", "to be deleted")
	require.NoError(t, err)
	_, err = alice.Delete(ctx, chat, "gone")
	require.NoError(t, err)
	status, body := call(t, n, "DELETE", "/api/v1/chats/"+chat+"/members/dave", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	collect(t, alice, 6, 5*time.Second) // a1 b1 d1 gone, delete, dave removed
	seq := lastSeq(t, n, chat)

	f := func(typ, ref string, mod func(f *protocol.Frame)) *protocol.Frame {
		fr := &protocol.Frame{Type: typ, ChatID: chat, RefID: ref, Content: "new text", Emoji: "👍"}
		if typ != protocol.FrameEdit {
			fr.Content = ""
		}
		if mod != nil {
			mod(fr)
		}
		return fr
	}
	// Refused at the gateway: an error answers the frame and nothing is published.
	for _, tc := range []struct {
		name string
		c    *client.Conn
		f    *protocol.Frame
		code protocol.Code
	}{
		{"non-member edits", mallory, f("edit", "a1", nil), protocol.CodeNotMember},
		{"non-member reacts", mallory, f("react", "a1", nil), protocol.CodeNotMember},
		{"non-member deletes", carol, f("delete", "a1", nil), protocol.CodeNotMember},
		{"removed member edits their own", dave, f("edit", "d1", nil), protocol.CodeNotMember},
		{"removed member reacts", dave, f("react", "a1", nil), protocol.CodeNotMember},
		{"edit another's message", bob, f("edit", "a1", nil), protocol.CodeForbidden},
		{"non-admin deletes another's message", bob, f("delete", "a1", nil), protocol.CodeForbidden},
		{"edit a system message", alice, nil, protocol.CodeBadRequest}, // set below
		{"edit a deleted message", alice, f("edit", "gone", nil), protocol.CodeConflict},
		{"react to a deleted message", bob, f("react", "gone", nil), protocol.CodeConflict},
		{"delete twice", alice, f("delete", "gone", nil), protocol.CodeConflict},
		{"no refId", alice, f("edit", "", nil), protocol.CodeBadRequest},
		{"invalid refId", alice, f("edit", "a.1", nil), protocol.CodeInvalidID},
		{"invalid chat", alice, f("edit", "a1", func(f *protocol.Frame) { f.ChatID = "x>y" }), protocol.CodeInvalidID},
		{"refId is the operation's own id", alice, f("edit", "a1", func(f *protocol.Frame) { f.MessageID = "a1" }), protocol.CodeBadRequest},
		{"empty edit", alice, f("edit", "a1", func(f *protocol.Frame) { f.Content = "" }), protocol.CodeBadRequest},
		{"oversize edit", alice, f("edit", "a1", func(f *protocol.Frame) { f.Content = strings.Repeat("x", protocol.MaxContentBytes+1) }), protocol.CodeTooLarge},
		{"no emoji", bob, f("react", "a1", func(f *protocol.Frame) { f.Emoji = "" }), protocol.CodeBadRequest},
		{"two emoji", bob, f("react", "a1", func(f *protocol.Frame) { f.Emoji = "👍👍" }), protocol.CodeBadRequest},
		{"text for an emoji", bob, f("react", "a1", func(f *protocol.Frame) { f.Emoji = "<b>x</b>" }), protocol.CodeBadRequest},
		{"oversize emoji", bob, f("react", "a1", func(f *protocol.Frame) { f.Emoji = ":" + strings.Repeat("a", 40) + ":" }), protocol.CodeBadRequest},
		{"send with an operation type", alice, &protocol.Frame{Type: "send", ChatID: chat, Content: "x", MessageType: "edit", RefID: "a1"}, protocol.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := tc.f
			if fr == nil {
				fr = f("edit", systemMessageID(t, n, chat), nil)
			}
			_, err := tc.c.SendFrame(ctxT(t, 5*time.Second), fr)
			require.Equal(t, tc.code, errCode(t, err), "%v", err)
		})
	}
	quiet(t, alice, 200*time.Millisecond)
	require.Equal(t, seq, lastSeq(t, n, chat), "nothing refused was sequenced")

	// Refused by the sequencer: the target is not visible at the edge (unknown, or in
	// another chat), so the frame is acked, then refused with an error frame carrying
	// its messageId; nothing is sequenced.
	for _, tc := range []struct {
		name string
		f    *protocol.Frame
		code protocol.Code
	}{
		{"unknown refId", f("edit", "nosuchmessage", nil), protocol.CodeNotFound},
		{"refId in another chat", f("react", "o1", nil), protocol.CodeNotFound},
		{"reply to an unknown message", &protocol.Frame{Type: "send", ChatID: chat, Content: "re", ReplyTo: "nosuchmessage"}, protocol.CodeNotFound},
		{"reply to a message of another chat", &protocol.Frame{Type: "send", ChatID: chat, Content: "re", ReplyTo: "o1"}, protocol.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.code, refusedBySequencer(t, bob, tc.f))
		})
	}
	quiet(t, alice, 200*time.Millisecond)
	require.Equal(t, seq, lastSeq(t, n, chat), "nothing refused was sequenced")

	// A reply to a message of the chat is accepted and keeps its reference; a reply
	// to a system message is refused.
	ack, err := bob.SendFrame(ctx, &protocol.Frame{Type: "send", ChatID: chat, Content: "agreed", ReplyTo: "a1"})
	require.NoError(t, err)
	m := next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, ack.MessageID, m.MessageID)
	require.Equal(t, "a1", m.ReplyTo)
	refused := &protocol.Frame{Type: "send", ChatID: chat, Content: "re", ReplyTo: systemMessageID(t, n, chat)}
	require.Equal(t, protocol.CodeBadRequest, refusedBySequencer(t, bob, refused))
	// The refused reply was never sequenced: deleting it is refused too.
	require.Equal(t, protocol.CodeNotFound, refusedBySequencer(t, bob,
		&protocol.Frame{Type: "delete", ChatID: chat, RefID: refused.MessageID}))
	// An admin deletes anyone's message.
	_, err = alice.Delete(ctx, chat, "b1")
	require.NoError(t, err)
	m = next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, protocol.TypeDelete, m.MessageType)
	require.Equal(t, "b1", m.RefID)
}

// systemMessageID returns the messageId of the first system message in chat.
func systemMessageID(t *testing.T, n *testutil.Natter, chat string) string {
	t.Helper()
	for _, m := range history(t, n, "alice", chat, "?after=0&limit=500").Messages {
		if m.MessageType == protocol.TypeSystem {
			return m.MessageID
		}
	}
	t.Fatal("no system message in chat")
	return ""
}
