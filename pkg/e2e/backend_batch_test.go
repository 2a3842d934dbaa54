package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestBackendPublishesBatches: pkg/publish's PublishBatch pipelines a batch over
// several chats; each chat's messages are sequenced in batch order, members see
// them so, a resent batch is answered with the original seqs, a refusal inside a
// batch fails only its own message, and an invalid message publishes nothing.
func TestBackendPublishesBatches(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chats := []string{
		n.CreateChat(t, "alice", "group", "g1", "bob"),
		n.CreateChat(t, "alice", "group", "g2", "bob"),
		n.CreateChat(t, "alice", "group", "g3", "bob"),
	}
	bob := n.Dial(t, "bob")
	nc := n.ConnectNATS(t, natsutil.UserBackend, nil)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	pub, err := publish.New(js, n.Config.NATS.Prefix, "batch-bot")
	require.NoError(t, err)
	t.Cleanup(pub.Close)
	ctx := ctxT(t, 30*time.Second)

	batch := func(tag string, k int) []*protocol.Message {
		var ms []*protocol.Message
		for i := range k {
			ms = append(ms, &protocol.Message{ChatID: chats[i%len(chats)], MessageID: fmt.Sprintf("%s-%d", tag, i),
				SenderID: "batch-bot", Content: fmt.Sprintf("%s %d", tag, i)})
		}
		return ms
	}
	first := batch("b", 60)
	acks, err := pub.PublishBatch(ctx, first)
	require.NoError(t, err)
	require.Len(t, acks, 60)
	last := map[string]uint64{}
	for i, a := range acks {
		require.Equal(t, first[i].MessageID, a.MessageID)
		require.False(t, a.Duplicate)
		require.Greater(t, a.Seq, last[first[i].ChatID], "a chat's messages are sequenced in batch order")
		last[first[i].ChatID] = a.Seq
	}
	seen := collect(t, bob, 60, 15*time.Second)
	got := map[string][]string{}
	for _, f := range seen {
		got[f.ChatID] = append(got[f.ChatID], f.MessageID)
	}
	for c, chat := range chats {
		var want []string
		for i := c; i < 60; i += len(chats) {
			want = append(want, fmt.Sprintf("b-%d", i))
		}
		require.Equal(t, want, got[chat], "bob sees chat %d in batch order", c)
	}

	// The same batch again: nothing new, the original seqs.
	again, err := pub.PublishBatch(ctx, batch("b", 60))
	require.NoError(t, err)
	for i, a := range again {
		require.True(t, a.Duplicate)
		require.Equal(t, acks[i].Seq, a.Seq)
	}
	quiet(t, bob, 300*time.Millisecond)

	// A refusal fails its own message only: a chat change published raw by a service.
	meta, err := json.Marshal(protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "carol", By: "alice"})
	require.NoError(t, err)
	mixed := batch("m", 3)
	mixed[1] = &protocol.Message{ChatID: chats[1], MessageID: "m-forged", SenderID: "alice", MessageType: protocol.TypeSystem, Meta: meta}
	acks, err = pub.PublishBatch(ctx, mixed)
	var be *publish.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Errs, 3)
	require.NoError(t, be.Errs[0])
	require.NoError(t, be.Errs[2])
	var refusal *protocol.Error
	require.ErrorAs(t, be.Errs[1], &refusal)
	require.Equal(t, protocol.CodeForbidden, refusal.Code)
	require.ErrorAs(t, err, &refusal, "errors.As sees into the batch")
	require.Positive(t, acks[0].Seq)
	require.Positive(t, acks[2].Seq)
	require.Zero(t, acks[1].Seq)
	seen = collect(t, bob, 2, 10*time.Second)
	require.ElementsMatch(t, []string{"m-0", "m-2"}, []string{seen[0].MessageID, seen[1].MessageID}, "two chats: no order between them")

	// Invalid input publishes nothing.
	bad := batch("x", 3)
	bad[2].Content = ""
	_, err = pub.PublishBatch(ctx, bad)
	require.ErrorIs(t, err, publish.ErrInvalid)
	require.Contains(t, err.Error(), "message 2")
	_, err = pub.PublishBatch(ctx, append(batch("y", 1), nil))
	require.ErrorIs(t, err, publish.ErrInvalid)
	_, err = pub.PublishBatch(ctx, batch("z", publish.MaxBatch+1))
	require.ErrorIs(t, err, publish.ErrInvalid)
	require.True(t, strings.Contains(err.Error(), "at most"), err.Error())
	acks, err = pub.PublishBatch(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, acks)
	quiet(t, bob, 300*time.Millisecond)
}
