package sequencer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/sequencer"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

type env struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	st   store.Store
	subj subjects.Subjects
	ncfg natsutil.Config
	cfg  sequencer.Config
}

func setup(t *testing.T) *env { return setupWith(t, nil) }

// setupWith is setup, calling before (if not nil) on the empty server first.
func setupWith(t *testing.T, before func(jetstream.JetStream, *natsutil.Config)) *env {
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	return setupOn(t, nc, before)
}

// setupOn is setupWith on connection nc, which it closes when the test ends.
func setupOn(t *testing.T, nc *nats.Conn, before func(jetstream.JetStream, *natsutil.Config)) *env {
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ncfg := natsutil.DefaultConfig()
	ncfg.Partitions = 1
	ncfg.DedupWindow = time.Second
	if before != nil {
		before(js, &ncfg)
	}
	require.NoError(t, natsutil.EnsureStreams(context.Background(), js, &ncfg))
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, _, err = st.CreateChat(context.Background(), store.Chat{ID: "c1", Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: time.Now()},
		[]store.Member{{ChatID: "c1", UserID: "alice", Role: store.RoleAdmin}, {ChatID: "c1", UserID: "bob", Role: store.RoleMember}})
	require.NoError(t, err)
	var cfg sequencer.Config
	cfg.MaxChats, cfg.LargeChatThreshold, cfg.PinnedTTL, cfg.Fetch, cfg.BatchMin = 1000, 1000, time.Second, 64, 16
	return &env{nc: nc, js: js, st: st, subj: ncfg.Subjects(), ncfg: ncfg, cfg: cfg}
}

func (e *env) publishIngress(t *testing.T, chat, id string) uint64 {
	m := &protocol.Message{ChatID: chat, MessageID: id, SenderID: "alice", Content: "x", MessageType: protocol.TypeText}
	msg := &nats.Msg{Subject: e.subj.In(chat), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, chat+":"+id)
	ack, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
	return ack.Sequence
}

func (e *env) run(t *testing.T) *sequencer.Sequencer {
	s, err := sequencer.New(e.cfg, sequencer.Deps{NC: e.nc, JS: e.js, Store: e.st, Subjects: e.subj}, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// logIDs returns the message IDs in chat's log, in log order, and checks seqs.
func (e *env) logIDs(t *testing.T, chat string) []string {
	st, err := e.js.Stream(context.Background(), subjects.LogStream)
	require.NoError(t, err)
	var ids []string
	for seq := uint64(1); ; {
		raw, err := st.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject(e.subj.Log(chat)))
		if err != nil {
			break
		}
		m, err := protocol.DecodeMessageFrame(raw.Data)
		require.NoError(t, err)
		require.EqualValues(t, len(ids)+1, m.Seq, "seqs are 1..N in log order")
		require.Equal(t, strconv.FormatUint(m.Seq, 10), raw.Header.Get(protocol.HeaderSeq))
		ids = append(ids, m.MessageID)
		seq = raw.Sequence + 1
	}
	return ids
}

func TestExactlyOnceAfterDedupWindow(t *testing.T) {
	e := setup(t)
	inSeq := e.publishIngress(t, "c1", "m1")
	// A sequencer appended m1 and died before acking the ingress message.
	m := &protocol.Message{ChatID: "c1", Seq: 1, MessageID: "m1", SenderID: "alice", Content: "x", MessageType: protocol.TypeText, Timestamp: 1}
	out := &nats.Msg{Subject: e.subj.Log("c1"), Data: protocol.EncodeMessageFrame(m), Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, "c1:m1")
	out.Header.Set(protocol.HeaderSeq, "1")
	out.Header.Set(protocol.HeaderInSeq, strconv.FormatUint(inSeq, 10))
	_, err := e.js.PublishMsg(context.Background(), out)
	require.NoError(t, err)
	// Let the Nats-Msg-Id window (1 s here) pass, as a long outage would.
	time.Sleep(e.ncfg.DedupWindow + 500*time.Millisecond)
	e.publishIngress(t, "c1", "m2")
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"m1", "m2"}, e.logIDs(t, "c1"), "m1 is not sequenced a second time")
	in, err := e.js.Stream(context.Background(), subjects.InStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := in.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	}, 10*time.Second, 20*time.Millisecond, "both ingress messages are acked (and then purged: purge.go)")
}

func TestTakeoverKeepsOrderOfUnackedMessages(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, subjects.InStream, sequencer.ConsumerConfig(e.cfg, e.subj, 0))
	require.NoError(t, err)
	for i := 1; i <= 10; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	// A previous holder takes the partition, receives the first messages and dies
	// without acking them.
	it, err := cons.Messages(jetstream.PullPriorityGroup(sequencer.PriorityGroup), jetstream.PullMaxMessages(5))
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := it.Next()
		require.NoError(t, err)
	}
	it.Stop()
	for i := 11; i <= 20; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 20 }, 20*time.Second, 20*time.Millisecond)
	var want []string
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	require.Equal(t, want, e.logIDs(t, "c1"), "the dead holder's messages keep their place")
	_, catchups, _ := s.Stats()
	require.Positive(t, catchups)
}

// TestTakeoverWhoseFirstDeliveryIsARedelivery: the new holder's first delivery
// is an old message coming back (its holder nak'ed it, or its AckWait ran out)
// while a dead holder still had newer messages in hand, unacked. The catch-up must
// sequence those too, before anything published later, and not only the (empty)
// range between the ack floor and that first delivery: found by e2e.TestCrashes,
// where a sequencer and a NATS node killed together lost the messages the
// sequencer had in hand (newer ones were sequenced first, and when the held ones
// came back after AckWait they were acked as already sequenced).
func TestTakeoverWhoseFirstDeliveryIsARedelivery(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, subjects.InStream, sequencer.ConsumerConfig(e.cfg, e.subj, 0))
	require.NoError(t, err)
	for i := 1; i <= 5; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	// The dead holder received m01..m05, gave m01 back and died with the others
	// in hand: they come back only after AckWait (30 s).
	it, err := cons.Messages(jetstream.PullPriorityGroup(sequencer.PriorityGroup), jetstream.PullMaxMessages(5))
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		m, err := it.Next()
		require.NoError(t, err)
		if i == 0 {
			require.NoError(t, m.NakWithDelay(200*time.Millisecond))
		}
	}
	it.Stop()
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n >= 1 }, 20*time.Second, 20*time.Millisecond)
	for i := 6; i <= 8; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 8 }, 20*time.Second, 20*time.Millisecond,
		"the dead holder's messages are sequenced before AckWait brings them back")
	var want []string
	for i := 1; i <= 8; i++ {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	require.Equal(t, want, e.logIDs(t, "c1"), "the dead holder's messages keep their place")
}

// TestCatchUpReadsOnlyWhatCameSince: a message a dead holder never acked keeps the
// ack floor below everything after it. A catch-up (here after a pause in
// deliveries) reads from where the partition is known to be sequenced, not from
// the ack floor: found by TestCrashes, where every catch-up read thousands of
// messages again from a stuck floor, and sequencing stalled behind them.
func TestCatchUpReadsOnlyWhatCameSince(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, subjects.InStream, sequencer.ConsumerConfig(e.cfg, e.subj, 0))
	require.NoError(t, err)
	for i := 1; i <= 10; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	// The dead holder took m01 and never acked it: it comes back after AckWait (30 s).
	it, err := cons.Messages(jetstream.PullPriorityGroup(sequencer.PriorityGroup), jetstream.PullMaxMessages(1))
	require.NoError(t, err)
	_, err = it.Next()
	require.NoError(t, err)
	it.Stop()
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 10 }, 20*time.Second, 20*time.Millisecond)
	_, first, _ := s.Stats()
	require.EqualValues(t, 1, first, "the takeover catch-up sequenced m01")
	// A pause longer than the catch-up's (2 s), then more.
	time.Sleep(2500 * time.Millisecond)
	e.publishIngress(t, "c1", "m11")
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 11 }, 20*time.Second, 20*time.Millisecond)
	_, catchups, _ := s.Stats()
	require.EqualValues(t, 1, catchups, "the catch-up after the pause read nothing it had sequenced before")
	var want []string
	for i := 1; i <= 11; i++ {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	require.Equal(t, want, e.logIDs(t, "c1"))
}

// TestDeposedSequencerIsFenced drives the sequencer's own append with a stale view
// of a chat: another holder of the partition appended to the chat's log after this
// sequencer cached it. Its append must be refused by the expected-last-sequence
// fence it sets, and it must reload and sequence after the other's message: were the
// fence header dropped, it would append a second seq 2 (logIDs checks 1..N).
func TestDeposedSequencerIsFenced(t *testing.T) {
	e := setup(t)
	in1 := e.publishIngress(t, "c1", "m1")
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 1 }, 10*time.Second, 20*time.Millisecond)

	// The other holder appends seq 2 behind this sequencer's back, fenced on m1 as
	// a sequencer would.
	st, err := e.js.Stream(context.Background(), subjects.LogStream)
	require.NoError(t, err)
	last, err := st.GetLastMsgForSubject(context.Background(), e.subj.Log("c1"))
	require.NoError(t, err)
	m := &protocol.Message{ChatID: "c1", Seq: 2, MessageID: "other", SenderID: "bob", Content: "x", MessageType: protocol.TypeText}
	out := &nats.Msg{Subject: e.subj.Log("c1"), Data: protocol.EncodeMessageFrame(m), Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, protocol.MsgID("c1", "other"))
	out.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last.Sequence, 10))
	out.Header.Set(protocol.HeaderSeq, "2")
	out.Header.Set(protocol.HeaderInSeq, strconv.FormatUint(in1, 10))
	_, err = e.js.PublishMsg(context.Background(), out)
	require.NoError(t, err)

	e.publishIngress(t, "c1", "m2")
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 2 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"m1", "other", "m2"}, e.logIDs(t, "c1"), "sequenced after the other holder's message, not beside it")
	_, _, fenced := s.Stats()
	require.Positive(t, fenced, "the stale append was refused by the fence")
}

func TestNonMemberAndHostileIngress(t *testing.T) {
	e := setup(t)
	sub, err := e.nc.SubscribeSync(e.subj.User("mallory"))
	require.NoError(t, err)
	ctx := context.Background()
	// A non-member, a payload naming another chat than its subject, and garbage.
	m := &protocol.Message{ChatID: "c1", MessageID: "x1", SenderID: "mallory", Content: "x", MessageType: protocol.TypeText}
	_, err = e.js.Publish(ctx, e.subj.In("c1"), protocol.EncodeIngress(m))
	require.NoError(t, err)
	other := &protocol.Message{ChatID: "c2", MessageID: "x2", SenderID: "mallory", Content: "x", MessageType: protocol.TypeText}
	_, err = e.js.Publish(ctx, e.subj.In("c1"), protocol.EncodeIngress(other))
	require.NoError(t, err)
	_, err = e.js.Publish(ctx, e.subj.In("c1"), []byte("{not json"))
	require.NoError(t, err)
	sys := &protocol.Message{ChatID: "c1", MessageID: "x3", SenderID: "alice", Content: "x", MessageType: protocol.TypeSystem}
	_, err = e.js.Publish(ctx, e.subj.In("c1"), protocol.EncodeIngress(sys))
	require.NoError(t, err)
	e.publishIngress(t, "c1", "ok")
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"ok"}, e.logIDs(t, "c1"))
	f, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Contains(t, string(f.Data), `"code":"not_member"`)
}
