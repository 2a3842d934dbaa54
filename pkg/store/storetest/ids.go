package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// messageIDsOnce checks the message-ID index the sequencer's exactly-once check
// reads (MessageSeqs: many keys across chats, found or not) and that a chat holds a
// message ID once: a message whose (chat, MessageID) is stored under another seq is
// not stored again, in a later batch or later in the same one, while the same
// (chat, seq) again stays a harmless retry.
func messageIDsOnce(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "i1", "alice", "bob")
	group(t, s, "i2", "alice", "bob")
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		msg("i1", 1, "alice", base.Add(time.Second)),
		msg("i1", 2, "bob", base.Add(2*time.Second)),
		msg("i2", 1, "alice", base.Add(3*time.Second)),
	}))
	got, err := s.MessageSeqs(ctx, []store.MessageKey{
		{ChatID: "i1", MessageID: "m1"}, {ChatID: "i1", MessageID: "m2"}, {ChatID: "i2", MessageID: "m1"},
		{ChatID: "i2", MessageID: "m2"}, {ChatID: "nochat", MessageID: "m1"}, {ChatID: "i1", MessageID: "m1"},
	})
	require.NoError(t, err)
	require.Equal(t, map[store.MessageKey]uint64{
		{ChatID: "i1", MessageID: "m1"}: 1, {ChatID: "i1", MessageID: "m2"}: 2, {ChatID: "i2", MessageID: "m1"}: 1,
	}, got)
	none, err := s.MessageSeqs(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, none)

	// m1 again under seq 3 (a later batch), and m4 twice in one batch.
	again := msg("i1", 1, "alice", base.Add(4*time.Second))
	again.Seq, again.Content = 3, "a second copy"
	m4 := msg("i1", 4, "alice", base.Add(5*time.Second))
	m4twice := m4
	m4twice.Seq, m4twice.Content = 5, "m4 again"
	retry := msg("i1", 2, "bob", base.Add(2*time.Second)) // the same (chat, seq): a retry
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{again, m4, m4twice, retry}))
	page, err := s.History(ctx, "i1", store.HistoryQuery{Dir: store.Forward, Limit: 100})
	require.NoError(t, err)
	count := map[string]int{}
	for _, m := range page {
		count[m.MessageID]++
	}
	require.Equal(t, map[string]int{"m1": 1, "m2": 1, "m4": 1}, count, "each message ID once: %v", seqs(page))
	require.Equal(t, []uint64{1, 2, 4}, seqs(page), "the first seq of each ID is the one kept")
	seq, err := s.MessageSeq(ctx, "i1", "m1")
	require.NoError(t, err)
	require.EqualValues(t, 1, seq)
	seq, err = s.MessageSeq(ctx, "i1", "m4")
	require.NoError(t, err)
	require.EqualValues(t, 4, seq)
}
