package sequencer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// TestMembershipEventsReachTheStoreBeforeTheLog: a membership event is written to
// the store before it is appended to the log, so whoever sees it in the log (a
// gateway answering the change, a member's client) finds the store changed; a role
// change does not make a member.
func TestMembershipEventsReachTheStoreBeforeTheLog(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.run(t)
	for _, ev := range []protocol.SystemEvent{
		{Event: protocol.EventMemberAdded, UserID: "carol", Role: store.RoleAdmin},
		{Event: protocol.EventRoleChanged, UserID: "zed", Role: store.RoleAdmin},
		{Event: protocol.EventMemberRemoved, UserID: "bob"},
		{Event: protocol.EventChatRenamed, Name: "renamed"},
	} {
		e.change(t, "c1", "alice", ev)
	}
	require.Eventually(t, func() bool { return len(e.logIDs(t, "c1")) == 4 }, 10*time.Second, 10*time.Millisecond)
	mb, err := e.st.GetMember(ctx, "c1", "carol")
	require.NoError(t, err)
	require.Equal(t, store.RoleAdmin, mb.Role)
	_, err = e.st.GetMember(ctx, "c1", "zed")
	require.ErrorIs(t, err, store.ErrNotFound, "a role change does not make a member")
	_, err = e.st.GetMember(ctx, "c1", "bob")
	require.ErrorIs(t, err, store.ErrNotFound)
	c, err := e.st.GetChat(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, "renamed", c.Name)

	// bob's send after his removal is refused; carol's is sequenced.
	sub, err := e.nc.SubscribeSync(e.subj.User("bob"))
	require.NoError(t, err)
	for _, m := range []*protocol.Message{
		{ChatID: "c1", MessageID: "b1", SenderID: "bob", Content: "still here?", MessageType: protocol.TypeText},
		{ChatID: "c1", MessageID: "c1m", SenderID: "carol", Content: "hi", MessageType: protocol.TypeText},
	} {
		e.publishMessage(t, m)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	f, err := protocol.DecodeFrame(msg.Data)
	require.NoError(t, err)
	require.Equal(t, protocol.FrameError, f.Type)
	require.Equal(t, protocol.CodeNotMember, f.Code)
	require.Eventually(t, func() bool { return len(e.logIDs(t, "c1")) == 5 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "c1m", e.logIDs(t, "c1")[4])
}

// TestOperationsAuthorizedInOrder: with no history reader given, the sequencer reads
// targets from the store and the whole log tail; the rules hold, refusals go to the
// sender, and a reaction that changes nothing is not sequenced.
func TestOperationsAuthorizedInOrder(t *testing.T) {
	e := setup(t)
	e.run(t)
	react := func(id, sender, emoji string, remove bool) *protocol.Message {
		meta, _ := json.Marshal(protocol.ReactionEvent{Emoji: emoji, Remove: remove})
		return &protocol.Message{ChatID: "c1", MessageID: id, SenderID: sender, MessageType: protocol.TypeReact, RefID: "m1", Meta: meta}
	}
	sub, err := e.nc.SubscribeSync(e.subj.User("bob"))
	require.NoError(t, err)
	for _, m := range []*protocol.Message{
		{ChatID: "c1", MessageID: "m1", SenderID: "alice", Content: "hello", MessageType: protocol.TypeText},
		{ChatID: "c1", MessageID: "e-bob", SenderID: "bob", Content: "not mine", MessageType: protocol.TypeEdit, RefID: "m1"},
		{ChatID: "c1", MessageID: "e-alice", SenderID: "alice", Content: "hello!", MessageType: protocol.TypeEdit, RefID: "m1"},
		react("r1", "bob", "👍", false),
		react("r2", "bob", "👍", false), // changes nothing: dropped
		react("r3", "bob", "🎉", true),  // bob has no 🎉: dropped
		{ChatID: "c1", MessageID: "reply", SenderID: "bob", Content: "re", MessageType: protocol.TypeText, ReplyTo: "m1"},
		{ChatID: "c1", MessageID: "reply-x", SenderID: "bob", Content: "re", MessageType: protocol.TypeText, ReplyTo: "nope"},
		{ChatID: "c1", MessageID: "d-bob", SenderID: "bob", MessageType: protocol.TypeDelete, RefID: "m1"},
		{ChatID: "c1", MessageID: "d-alice", SenderID: "alice", MessageType: protocol.TypeDelete, RefID: "m1"},
		{ChatID: "c1", MessageID: "e-late", SenderID: "alice", Content: "undelete?", MessageType: protocol.TypeEdit, RefID: "m1"},
	} {
		e.publishMessage(t, m)
	}
	require.Eventually(t, func() bool { return len(e.logIDs(t, "c1")) == 5 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"m1", "e-alice", "r1", "reply", "d-alice"}, e.logIDs(t, "c1"))
	codes := map[string]protocol.Code{}
	for len(codes) < 3 {
		msg, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err)
		f, err := protocol.DecodeFrame(msg.Data)
		require.NoError(t, err)
		if f.Type == protocol.FrameError {
			codes[f.MessageID] = f.Code
		}
	}
	require.Equal(t, map[string]protocol.Code{"e-bob": protocol.CodeForbidden, "reply-x": protocol.CodeNotFound,
		"d-bob": protocol.CodeForbidden}, codes)
	// The edit after the delete (alice's) was refused too: it is not in the log,
	// which already holds everything published after it was decided.
	require.Len(t, e.logIDs(t, "c1"), 5)
}

// publishMessage publishes m to the ingress as a gateway would (no service header).
func (e *env) publishMessage(t *testing.T, m *protocol.Message) {
	t.Helper()
	msg := &nats.Msg{Subject: e.subj.In(m.ChatID), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, m.ChatID+":"+m.MessageID)
	_, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}
