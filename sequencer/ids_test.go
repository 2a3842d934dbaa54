package sequencer_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/sequencer"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// answers subscribes to every gateway answer subject and returns the answers by the
// subject they came on.
func (e *env) answers(t *testing.T) func(subject string) *protocol.Frame {
	sub, err := e.nc.SubscribeSync(e.subj.AnswerGatewayPrefix() + ">")
	require.NoError(t, err)
	require.NoError(t, e.nc.Flush())
	got := map[string]*protocol.Frame{}
	return func(subject string) *protocol.Frame {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got[subject] == nil {
			msg, err := sub.NextMsg(time.Until(deadline))
			require.NoError(t, err, "no answer on %s", subject)
			f, err := protocol.DecodeFrame(msg.Data)
			require.NoError(t, err)
			require.Nil(t, got[msg.Subject], "one answer per ingress message (%s)", msg.Subject)
			got[msg.Subject] = f
		}
		return got[subject]
	}
}

// send publishes chat message id from sender on the gateway ingress, as a gateway
// does: its own Nats-Msg-Id and answer subject (answer).
func (e *env) send(t *testing.T, chat, id, sender, answer string) {
	t.Helper()
	m := &protocol.Message{ChatID: chat, MessageID: id, SenderID: sender, Content: "x", MessageType: protocol.TypeText}
	msg := &nats.Msg{Subject: e.subj.In(chat), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, answer)
	msg.Header.Set(protocol.HeaderAnswer, answer)
	_, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func (e *env) answerSubject(n int) string {
	return e.subj.AnswerGatewayPrefix() + "test." + strconv.Itoa(n)
}

func requireAck(t *testing.T, f *protocol.Frame, chat, id string, seq uint64, dup bool) {
	t.Helper()
	require.Equal(t, protocol.FrameAck, f.Type, "%+v", f)
	require.Equal(t, chat, f.ChatID)
	require.Equal(t, id, f.MessageID)
	require.Equal(t, seq, f.Seq, "seq of %s", id)
	require.Equal(t, dup, f.Duplicate, "duplicate flag of %s", id)
}

// TestResendIsAnsweredWithTheOriginalSeqForever resends a message after the
// Nats-Msg-Id window (1 s here) has passed, after a restart of the sequencer (its
// chat states gone), after another instance took the partition over, and after the
// message left the log for the store: every resend is answered duplicate with the
// original seq, and the log holds the message once.
func TestResendIsAnsweredWithTheOriginalSeqForever(t *testing.T) {
	e := setup(t)
	answer := e.answers(t)
	stop := e.runStoppable(t)
	e.send(t, "c1", "m1", "alice", e.answerSubject(1))
	requireAck(t, answer(e.answerSubject(1)), "c1", "m1", 1, false)
	e.send(t, "c1", "m2", "bob", e.answerSubject(2))
	requireAck(t, answer(e.answerSubject(2)), "c1", "m2", 2, false)

	time.Sleep(e.ncfg.DedupWindow + 500*time.Millisecond)
	e.send(t, "c1", "m1", "alice", e.answerSubject(3))
	requireAck(t, answer(e.answerSubject(3)), "c1", "m1", 1, true)

	stop()
	stop = e.runStoppable(t) // cold: the IDs come from the log tail
	e.send(t, "c1", "m1", "alice", e.answerSubject(4))
	requireAck(t, answer(e.answerSubject(4)), "c1", "m1", 1, true)

	// Failover: a second instance waits; the first stops pulling and the partition
	// moves once its pin expires (PinnedTTL 1 s here).
	second := e.runStoppable(t)
	stop()
	e.send(t, "c1", "m2", "bob", e.answerSubject(5))
	requireAck(t, answer(e.answerSubject(5)), "c1", "m2", 2, true)
	e.send(t, "c1", "m3", "bob", e.answerSubject(6))
	requireAck(t, answer(e.answerSubject(6)), "c1", "m3", 3, false)
	second()
	require.Equal(t, []string{"m1", "m2", "m3"}, e.logIDs(t, "c1"), "each message once")

	// Stored and gone from the log (the persisters trim it): the store answers.
	ctx := context.Background()
	logS, err := e.js.Stream(ctx, "NATTER_LOG")
	require.NoError(t, err)
	var stored []protocol.Message
	for seq := uint64(1); seq <= 3; seq++ {
		raw, err := logS.GetMsg(ctx, seq)
		require.NoError(t, err)
		m, err := protocol.DecodeMessageFrame(raw.Data)
		require.NoError(t, err)
		stored = append(stored, m)
	}
	require.NoError(t, e.st.AppendMessages(ctx, stored))
	require.NoError(t, logS.Purge(ctx))
	e.run(t)
	e.send(t, "c1", "m2", "bob", e.answerSubject(7))
	requireAck(t, answer(e.answerSubject(7)), "c1", "m2", 2, true)
	e.send(t, "c1", "m4", "alice", e.answerSubject(8))
	requireAck(t, answer(e.answerSubject(8)), "c1", "m4", 4, false)
}

// runStoppable runs a sequencer and returns what stops it (and waits until it has).
func (e *env) runStoppable(t *testing.T) (stop func()) {
	// Its logs are printed if the test fails: a failover that does not happen says
	// why there.
	s, err := sequencer.New(e.cfg, sequencer.Deps{NC: e.nc, JS: e.js, Store: e.st, Subjects: e.subj},
		zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestOutOfOrderRedeliveryIsSequenced: the exactly-once check is by message ID, not
// by the ingress seq. An ingress message below the ingress seq of the chat's last
// log message (a redelivery that came after newer messages, as the NATS-node crash
// tests saw) is sequenced if its ID is not in the chat; the ingress-seq watermark
// used to drop it unsequenced.
func TestOutOfOrderRedeliveryIsSequenced(t *testing.T) {
	e := setup(t)
	answer := e.answers(t)
	e.send(t, "c1", "late", "alice", e.answerSubject(1))
	// A newer message of the chat was sequenced first, from a later ingress seq.
	m := &protocol.Message{ChatID: "c1", Seq: 1, MessageID: "newer", SenderID: "bob", Content: "x", MessageType: protocol.TypeText, Timestamp: 1}
	out := &nats.Msg{Subject: e.subj.Log("c1"), Data: protocol.EncodeMessageFrame(m), Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, "c1:newer")
	out.Header.Set(protocol.HeaderSeq, "1")
	out.Header.Set(protocol.HeaderInSeq, "1000")
	_, err := e.js.PublishMsg(context.Background(), out)
	require.NoError(t, err)
	e.run(t)
	requireAck(t, answer(e.answerSubject(1)), "c1", "late", 2, false)
	require.Equal(t, []string{"newer", "late"}, e.logIDs(t, "c1"))
}

// TestBatchAnswersEveryMessage lets a backlog build up so that the partition
// decides it in atomic batches: new messages, resends of messages sequenced before
// the batch, repeats of a message inside the batch, and a refusal are each answered
// once, on their own answer subject, and the log holds each ID once.
func TestBatchAnswersEveryMessage(t *testing.T) {
	e := setup(t)
	e.cfg.BatchMin = 2
	answer := e.answers(t)
	stop := e.runStoppable(t)
	e.send(t, "c1", "first", "alice", e.answerSubject(0))
	requireAck(t, answer(e.answerSubject(0)), "c1", "first", 1, false)
	stop()
	type want struct {
		id     string
		seq    uint64
		dup    bool
		refuse protocol.Code
	}
	var plan []want
	next := uint64(2)
	var lastNew want
	for i := 1; i <= 60; i++ {
		switch {
		case i%10 == 0: // sequenced before the batch
			plan = append(plan, want{id: "first", seq: 1, dup: true})
		case i%7 == 0: // a repeat of an earlier message of the backlog
			plan = append(plan, want{id: lastNew.id, seq: lastNew.seq, dup: true})
		case i%13 == 0:
			plan = append(plan, want{id: fmt.Sprintf("x%d", i), refuse: protocol.CodeNotMember})
		default:
			lastNew = want{id: fmt.Sprintf("m%d", i), seq: next}
			plan = append(plan, lastNew)
			next++
		}
	}
	for i, w := range plan {
		sender := "alice"
		if w.refuse != "" {
			sender = "mallory"
		}
		e.send(t, "c1", w.id, sender, e.answerSubject(100+i))
	}
	s := e.run(t)
	for i, w := range plan {
		f := answer(e.answerSubject(100 + i))
		if w.refuse != "" {
			require.Equal(t, protocol.FrameError, f.Type)
			require.Equal(t, w.refuse, f.Code)
			require.Equal(t, w.id, f.MessageID)
			continue
		}
		requireAck(t, f, "c1", w.id, w.seq, w.dup)
	}
	ids := e.logIDs(t, "c1")
	require.Len(t, ids, int(next-1))
	seen := map[string]bool{}
	for _, id := range ids {
		require.False(t, seen[id], "%s sequenced twice", id)
		seen[id] = true
	}
	batches, _, _ := s.BatchStats()
	require.Positive(t, batches, "the backlog went through the batch path")
}

// TestAnswerGoesOnlyUnderThePublishersPrefix: an answer subject outside the
// publisher's answer prefix is ignored (a refusal then goes to the sender's user
// subject, as before answers), so a header cannot make the sequencer publish onto a
// user's subject or the other origin's answers.
func TestAnswerGoesOnlyUnderThePublishersPrefix(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	bob, err := e.nc.SubscribeSync(e.subj.User("victim"))
	require.NoError(t, err)
	svcAnswers, err := e.nc.SubscribeSync(e.subj.AnswerServicePrefix() + ">")
	require.NoError(t, err)
	mallory, err := e.nc.SubscribeSync(e.subj.User("mallory"))
	require.NoError(t, err)
	require.NoError(t, e.nc.Flush())
	for i, target := range []string{e.subj.User("victim"), e.subj.AnswerServicePrefix() + "x.1", e.subj.AnswerGatewayPrefix() + "*", e.subj.AnswerGatewayPrefix()} {
		m := &protocol.Message{ChatID: "c1", MessageID: "h" + strconv.Itoa(i), SenderID: "mallory", Content: "x", MessageType: protocol.TypeText}
		msg := &nats.Msg{Subject: e.subj.In("c1"), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
		msg.Header.Set(protocol.HeaderAnswer, target)
		_, err := e.js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	e.send(t, "c1", "ok", "alice", e.answerSubject(1))
	answer := e.answers(t)
	e.run(t)
	requireAck(t, answer(e.answerSubject(1)), "c1", "ok", 1, false)
	for i := range 4 {
		f, err := mallory.NextMsg(5 * time.Second)
		require.NoError(t, err, "refusal %d goes to the sender's user subject", i)
		require.Contains(t, string(f.Data), `"code":"not_member"`)
	}
	_, err = bob.NextMsg(200 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "nothing on the user subject a header named")
	_, err = svcAnswers.NextMsg(10 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "nothing on the services' answers")
}
