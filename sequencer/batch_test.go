package sequencer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// createChats creates n group chats of alice (admin) and bob, named prefix00...
func (e *env) createChats(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var chats []string
	for i := range n {
		id := fmt.Sprintf("%s%02d", prefix, i)
		_, _, err := e.st.CreateChat(context.Background(), store.Chat{ID: id, Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: time.Now()},
			[]store.Member{{ChatID: id, UserID: "alice", Role: store.RoleAdmin}, {ChatID: id, UserID: "bob", Role: store.RoleMember}})
		require.NoError(t, err)
		chats = append(chats, id)
	}
	return chats
}

// ingressMsg is m as the gateway publishes it to NATTER_IN.
func (e *env) ingressMsg(m *protocol.Message) *nats.Msg {
	msg := &nats.Msg{Subject: e.subj.In(m.ChatID), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, m.ChatID+":"+m.MessageID)
	return msg
}

// change publishes ev as a chat change made by by, as a gateway does once it has
// checked by's right to make it (protocol.HeaderChange), and returns its message ID.
func (e *env) change(t *testing.T, chat, by string, ev protocol.SystemEvent) string {
	t.Helper()
	ev.By = by
	meta, err := json.Marshal(ev)
	require.NoError(t, err)
	m := &protocol.Message{ChatID: chat, MessageID: ids.New(), SenderID: by, MessageType: protocol.TypeSystem, Meta: meta}
	msg := e.ingressMsg(m)
	msg.Header.Set(protocol.HeaderChange, "1")
	_, err = e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
	return m.MessageID
}

// waitIngressEmpty waits until every ingress message is acked: the janitor purges
// only acked messages, at most a few PurgeIntervals after their ack (purge.go).
func (e *env) waitIngressEmpty(t *testing.T) {
	t.Helper()
	in, err := e.js.Stream(context.Background(), subjects.InStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := in.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	}, 20*time.Second, 20*time.Millisecond, "every ingress message is acked")
}

// TestBurstAcrossChatsIsBatchedInOrder: a burst over many chats of one partition,
// waiting before the sequencer starts, is appended in atomic batches, and each chat's
// log is its messages in ingress order with seqs 1..N, each once. The burst holds
// what cuts a batch: a membership change (bob's later sends are refused) and an
// edit of a message sequenced in the same drain (found, not refused).
func TestBurstAcrossChatsIsBatchedInOrder(t *testing.T) {
	e := setup(t)
	e.cfg.Fetch = 256
	e.cfg.BatchMin = 2
	ctx := context.Background()
	chats := e.createChats(t, "b", 20)
	bob, err := e.nc.SubscribeSync(e.subj.User("bob"))
	require.NoError(t, err)
	require.NoError(t, bob.SetPendingLimits(-1, -1))
	require.NoError(t, e.nc.Flush())

	const rounds = 12
	want := map[string][]string{}
	send := func(m *protocol.Message) {
		_, err := e.js.PublishMsg(ctx, e.ingressMsg(m))
		require.NoError(t, err)
	}
	for r := range rounds {
		for _, c := range chats {
			id := fmt.Sprintf("m%02d", r)
			send(&protocol.Message{ChatID: c, MessageID: id, SenderID: "alice", Content: "x", MessageType: protocol.TypeText})
			want[c] = append(want[c], id)
		}
		if r == 3 { // an edit of m02 of b05, in the same drain
			send(&protocol.Message{ChatID: "b05", MessageID: "e03", SenderID: "alice", Content: "edited", MessageType: protocol.TypeEdit, RefID: "m02"})
			want["b05"] = append(want["b05"], "e03")
		}
		if r == 5 { // bob leaves b03: his later sends there are refused
			want["b03"] = append(want["b03"], e.change(t, "b03", "alice", protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: "bob"}))
		}
		if r >= 6 {
			send(&protocol.Message{ChatID: "b03", MessageID: fmt.Sprintf("bob%02d", r), SenderID: "bob", Content: "x", MessageType: protocol.TypeText})
		}
	}
	total := 0
	for _, ids := range want {
		total += len(ids)
	}

	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == uint64(total) }, 20*time.Second, 20*time.Millisecond)
	e.waitIngressEmpty(t)
	n, _, _ := s.Stats()
	require.EqualValues(t, total, n, "nothing is sequenced twice")
	for _, c := range chats {
		require.Equal(t, want[c], e.logIDs(t, c), "chat %s", c)
	}
	batches, batched, fallbacks := s.BatchStats()
	t.Logf("%d messages in %d batches, %d fallbacks", batched, batches, fallbacks)
	require.Positive(t, batches)
	require.Greater(t, batched, 2*batches, "batches hold more than a message or two")
	require.Zero(t, fallbacks)

	// bob got every message of every chat he was in, once, in each chat's order.
	last := map[string]uint64{}
	got := 0
	refused := 0
	for {
		msg, err := bob.NextMsg(500 * time.Millisecond)
		if err != nil {
			break
		}
		f, err := protocol.DecodeMessageFrame(msg.Data)
		if err != nil {
			require.Contains(t, string(msg.Data), `"code":"not_member"`)
			refused++
			continue
		}
		require.Equal(t, last[f.ChatID]+1, f.Seq, "chat %s", f.ChatID)
		last[f.ChatID] = f.Seq
		got++
	}
	// Not b03's messages after his removal (m06..m11).
	require.Equal(t, total-(rounds-6), got)
	require.Equal(t, rounds-6, refused)
}

// TestBatchWithAFencedChatSequencesEachMessageOnce: when a log message is appended
// to one chat of a batch behind the sequencer's back (its cached state is stale),
// the fence fails the whole batch, and every message of it is still sequenced
// exactly once, in order, after the foreign one.
func TestBatchWithAFencedChatSequencesEachMessageOnce(t *testing.T) {
	e := setup(t)
	e.cfg.Fetch = 256
	e.cfg.BatchMin = 2
	ctx := context.Background()
	chats := e.createChats(t, "f", 20)
	s := e.run(t)
	want := map[string][]string{}
	firstIn := map[string]uint64{}
	for _, c := range chats {
		firstIn[c] = e.publishIngress(t, c, "first")
		want[c] = []string{"first"}
	}
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == uint64(len(chats)) }, 10*time.Second, 10*time.Millisecond)

	// Another sequencer (say, a deposed one) appends seq 2 to f07.
	m := &protocol.Message{ChatID: "f07", Seq: 2, MessageID: "intruder", SenderID: "alice", Content: "x", MessageType: protocol.TypeText, Timestamp: 1}
	out := &nats.Msg{Subject: e.subj.Log("f07"), Data: protocol.EncodeMessageFrame(m), Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, "f07:intruder")
	out.Header.Set(protocol.HeaderSeq, "2")
	out.Header.Set(protocol.HeaderInSeq, strconv.FormatUint(firstIn["f07"], 10))
	_, err := e.js.PublishMsg(ctx, out)
	require.NoError(t, err)
	want["f07"] = append(want["f07"], "intruder")

	// A burst stored at once (one atomic batch on NATTER_IN), so that it is
	// delivered at once; f07's messages come late in it, inside a large drain.
	var burst []*nats.Msg
	for r := range 10 {
		for _, c := range chats {
			id := fmt.Sprintf("m%02d", r)
			if c == "f07" && r < 5 {
				continue
			}
			burst = append(burst, e.ingressMsg(&protocol.Message{ChatID: c, MessageID: id, SenderID: "alice", Content: "x", MessageType: protocol.TypeText}))
			want[c] = append(want[c], id)
		}
	}
	for r := range 5 {
		id := fmt.Sprintf("m%02d", r)
		burst = append(burst, e.ingressMsg(&protocol.Message{ChatID: "f07", MessageID: id, SenderID: "alice", Content: "x", MessageType: protocol.TypeText}))
		want["f07"] = append(want["f07"], id)
	}
	_, err = jetstreamext.PublishMsgBatch(ctx, e.js, burst)
	require.NoError(t, err)

	total := uint64(len(chats) + len(burst))
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == total }, 20*time.Second, 20*time.Millisecond)
	e.waitIngressEmpty(t)
	n, _, fenced := s.Stats()
	require.Equal(t, total, n, "nothing is sequenced twice")
	require.Positive(t, fenced)
	for _, c := range chats {
		require.Equal(t, want[c], e.logIDs(t, c), "chat %s", c)
	}
	batches, batched, fallbacks := s.BatchStats()
	t.Logf("%d messages in %d batches, %d fallbacks, %d fenced", batched, batches, fallbacks, fenced)
	require.Positive(t, fallbacks, "the batch holding f07 failed and was sequenced one at a time")
}
