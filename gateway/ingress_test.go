package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/history"
	pmetrics "github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/sequencer"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.uber.org/zap"
)

// ingressEnv is a running gateway with an embedded NATS server (fsync policy
// "always", as in production) and a SQLite store, and no other role: nothing
// consumes NATTER_IN, so it keeps every send for the test to read (and no send is
// answered). startSequencedEnv adds a sequencer.
type ingressEnv struct {
	g       *Gateway
	js      jetstream.JetStream
	st      store.Store
	subj    subjects.Subjects
	metrics *pmetrics.Metrics
	secret  []byte
	url     string
}

func startIngressEnv(t testing.TB) *ingressEnv { return startEnv(t, false) }

// startSequencedEnv is startIngressEnv with a sequencer consuming NATTER_IN, so
// sends are answered.
func startSequencedEnv(t testing.TB) *ingressEnv { return startEnv(t, true) }

func startEnv(t testing.TB, sequenced bool) *ingressEnv { return startEnvWith(t, sequenced, nil) }

// startEnvWith is startEnv with tweak (if not nil) applied to the NATS config.
func startEnvWith(t testing.TB, sequenced bool, tweak func(*natsutil.Config)) *ingressEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	nfs := flag.NewFlagSet("nats", flag.PanicOnError)
	var ncfg natsutil.Config
	ncfg.RegisterFlags(nfs)
	ncfg.Listen, ncfg.Partitions, ncfg.Sync = "none", 4, "always"
	if tweak != nil {
		tweak(&ncfg)
	}
	e, err := natsutil.StartEmbedded(&ncfg, dir, zap.NewNop())
	require.NoError(t, err)
	ns := e.Server
	t.Cleanup(ns.Shutdown)
	nc, err := natsutil.Connect(&ncfg, e, "ingress test", natsutil.UserAdmin, nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, natsutil.EnsureStreams(ctx, js, &ncfg))
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "natter.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	gfs := flag.NewFlagSet("gateway", flag.PanicOnError)
	var cfg Config
	cfg.RegisterFlags(gfs)
	cfg.Listen, cfg.DrainWindow = "127.0.0.1:0", 0
	cfg.Limits.Disable()
	secret := []byte("ingress-test-secret-of-at-least-32-bytes")
	verifier, err := auth.NewVerifier(auth.Config{Secret: string(secret)}, dir)
	require.NoError(t, err)
	env := &ingressEnv{js: js, st: st, subj: ncfg.Subjects(), metrics: pmetrics.New(), secret: secret}
	ready := make(chan net.Addr, 1)
	env.g, err = New(cfg, Deps{NC: nc, JS: js, Store: st, Subjects: env.subj, Auth: verifier,
		History: &history.Reader{Store: st, JS: js, Subjects: env.subj}, Metrics: env.metrics,
		Ready: func(a net.Addr) { ready <- a }}, zap.NewNop())
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.g.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
	select {
	case a := <-ready:
		env.url = "ws://" + a.String() + "/ws"
	case err := <-done:
		t.Fatalf("gateway ended: %v", err)
	}
	if sequenced {
		sfs := flag.NewFlagSet("sequencer", flag.PanicOnError)
		var scfg sequencer.Config
		scfg.RegisterFlags(sfs)
		seq, err := sequencer.New(scfg, sequencer.Deps{NC: nc, JS: js, Store: st, Subjects: env.subj}, zap.NewNop())
		require.NoError(t, err)
		sctx, sstop := context.WithCancel(context.Background())
		sdone := make(chan error, 1)
		go func() { sdone <- seq.Run(sctx) }()
		t.Cleanup(func() {
			sstop()
			require.NoError(t, <-sdone)
		})
	}
	return env
}

// logged returns every message of NATTER_LOG in stream order.
func (e *ingressEnv) logged(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	return e.streamMsgs(t, subjects.LogStream)
}

// stored returns every message of NATTER_IN in stream order.
func (e *ingressEnv) stored(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	return e.streamMsgs(t, subjects.InStream)
}

func (e *ingressEnv) streamMsgs(t testing.TB, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

// histogramCount returns the sample count and sum of the histogram name.
func histogramCount(t testing.TB, m *pmetrics.Metrics, name string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

func counterValue(t testing.TB, m *pmetrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestIngressCommit drives one commit of a known group of sends (no committer
// goroutine, so the batch is exactly the group) and checks each send's outcome and
// what NATTER_IN stored.
func TestIngressCommit(t *testing.T) {
	env := startIngressEnv(t)
	defer func(n, m int) { ingressMinBatch, ingressMinBatchMemory = n, m }(ingressMinBatch, ingressMinBatchMemory)
	ingressMinBatch, ingressMinBatchMemory = 3, 3
	require.True(t, env.g.ingress.memory.Load(), "the gateway learnt that NATTER_IN is in memory")
	type send struct {
		chat, id string
		service  bool
		abandon  bool // the waiter left while the send was queued
	}
	for _, tc := range []struct {
		name    string
		before  []string // chat:id stored before the group
		sends   []send
		batched bool // stored as one atomic batch (else one by one)
		refused int  // batches expected to be refused
	}{
		{name: "fresh sends are one atomic batch, through the partition transform", batched: true,
			sends: []send{{chat: "c1", id: "a"}, {chat: "c2", id: "a"}, {chat: "c3", id: "b", service: true}, {chat: "c1", id: "b"}, {chat: "c4", id: "x"}}},
		{name: "a repeated ID in the group is a duplicate of its first", batched: true,
			sends: []send{{chat: "r1", id: "a"}, {chat: "r2", id: "b"}, {chat: "r1", id: "a"}, {chat: "r3", id: "c"}, {chat: "r1", id: "a"}}},
		{name: "a stored ID fails the batch; every send gets its own outcome", before: []string{"s2:old"}, refused: 1,
			sends: []send{{chat: "s1", id: "a"}, {chat: "s2", id: "old"}, {chat: "s3", id: "b"}, {chat: "s1", id: "a"}, {chat: "s4", id: "c", service: true}}},
		{name: "a send abandoned while queued is not published", batched: true,
			sends: []send{{chat: "d1", id: "a"}, {chat: "d2", id: "b", abandon: true}, {chat: "d3", id: "c"}, {chat: "d4", id: "d"}}},
		{name: "fewer sends than a batch are published one by one",
			sends: []send{{chat: "p1", id: "a"}, {chat: "p2", id: "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			storedBefore := map[string]bool{}
			for _, k := range tc.before {
				chat, id, _ := strings.Cut(k, ":")
				s := env.g.newIngressSend(&protocol.Message{ChatID: chat, MessageID: id, SenderID: "u0", Content: "before", MessageType: protocol.TypeText}, asUser, k)
				_, err := env.js.PublishMsg(ctx, s.msg)
				require.NoError(t, err)
				storedBefore[k] = true
			}
			first := len(env.stored(t))
			refused := counterValue(t, env.metrics, "natter_gateway_ingress_batch_failures_total")
			q := &ingressQueue{js: env.g.deps.JS, metrics: env.g.deps.Metrics, log: env.g.log, running: true}
			sends := make([]*ingressSend, len(tc.sends))
			for i, sd := range tc.sends {
				// The Nats-Msg-Id is the send's answer subject: named here after
				// the message, a repeat stands for the gateway's own retry.
				sends[i] = env.g.newIngressSend(&protocol.Message{ChatID: sd.chat, MessageID: sd.id, SenderID: "u" + strconv.Itoa(i),
					Content: fmt.Sprintf("send %d", i), MessageType: protocol.TypeText}, map[bool]sendAs{false: asUser, true: asService}[sd.service],
					sd.chat+":"+sd.id)
				if sd.abandon {
					sends[i].state.Store(sendAbandoned)
				}
			}
			q.pending = append(q.pending, sends...)
			batch := q.take(nil)
			require.Empty(t, q.pending)
			q.commit(batch)

			// Outcomes: an ID stored before is a duplicate every time; otherwise
			// exactly one send of it is the original (in a batch, the first).
			original := map[string]*ingressSend{}
			var order []string // IDs stored now, in queue order
			for i, sd := range tc.sends {
				if sd.abandon {
					require.Empty(t, sends[i].done, "send %d: abandoned, no outcome", i)
					continue
				}
				require.Len(t, sends[i].done, 1, "send %d: one outcome", i)
				r := <-sends[i].done
				require.NoError(t, r.err, "send %d", i)
				k := sends[i].msgID
				switch {
				case storedBefore[k]:
					require.True(t, r.duplicate, "send %d (%s): stored before", i, k)
				case !r.duplicate:
					require.Nil(t, original[k], "send %d (%s): a second original", i, k)
					original[k] = sends[i]
					order = append(order, k)
				case tc.batched:
					require.NotNil(t, original[k], "send %d (%s): in a batch the first is the original", i, k)
				}
			}
			got := env.stored(t)[first:]
			require.Len(t, got, len(original), "each ID stored once, nothing else")
			var gotOrder []string
			for _, m := range got {
				k := m.Header.Get(jetstream.MsgIDHeader)
				gotOrder = append(gotOrder, k)
				w := original[k]
				require.NotNil(t, w, "%s stored, but no send was told it is the original", k)
				require.Equal(t, w.msg.Data, m.Data)
				chat, _, _ := strings.Cut(k, ":")
				require.Equal(t, env.subj.InPartitioned(chat), m.Subject, "stored under the partitioned subject")
				require.Equal(t, w.msg.Header.Get(protocol.HeaderService), m.Header.Get(protocol.HeaderService))
				if tc.batched { // the server keeps the batch headers: proof of the path taken
					require.NotEmpty(t, m.Header.Get(jetstreamext.BatchIDHeader), "stored by an atomic batch")
				} else {
					require.Empty(t, m.Header.Get(jetstreamext.BatchIDHeader), "published alone")
				}
			}
			if tc.batched {
				require.Equal(t, order, gotOrder, "a batch is stored in queue order")
			} else {
				require.ElementsMatch(t, order, gotOrder)
			}
			require.Equal(t, float64(tc.refused), counterValue(t, env.metrics, "natter_gateway_ingress_batch_failures_total")-refused)
		})
	}
}

// TestIngressWaiterLeaves holds the committer back: a send whose context ends, or
// whose PublishTimeout passes, while it is queued fails with unavailable and is
// never published; the committer then stops, and the next send goes through.
func TestIngressWaiterLeaves(t *testing.T) {
	env := startIngressEnv(t)
	first := len(env.stored(t))
	held := &env.g.ingress
	held.mu.Lock()
	held.running = true // no committer runs: nothing leaves the queue
	held.mu.Unlock()
	msg := func(id string) *protocol.Message {
		return &protocol.Message{ChatID: "w1", MessageID: id, SenderID: "u1", Content: "hi", MessageType: protocol.TypeText}
	}
	var pe *protocol.Error

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	noAnswer := func(*protocol.Frame) {}
	err := env.g.publishIngress(ctx, msg("cancelled"), asUser, noAnswer)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, protocol.CodeUnavailable, pe.Code, "context ended")

	env.g.cfg.PublishTimeout = 50 * time.Millisecond
	start := time.Now()
	err = env.g.publishIngress(context.Background(), msg("timed-out"), asUser, noAnswer)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, protocol.CodeUnavailable, pe.Code, "PublishTimeout passed")
	require.Less(t, time.Since(start), 2*time.Second)
	env.g.cfg.PublishTimeout = 5 * time.Second

	held.mu.Lock()
	require.Len(t, held.pending, 2)
	held.mu.Unlock()
	require.Empty(t, held.take(nil), "both abandoned: nothing to publish")
	held.mu.Lock()
	require.False(t, held.running, "an empty queue stops its committer")
	held.mu.Unlock()
	require.Len(t, env.stored(t), first, "an abandoned send is never published")

	require.NoError(t, env.g.publishIngress(context.Background(), msg("cancelled"), asUser, noAnswer))
	require.Len(t, env.stored(t), first+1, "the resend is the first copy stored")
	require.Eventually(t, func() bool {
		held.mu.Lock()
		defer held.mu.Unlock()
		return !held.running
	}, 5*time.Second, 10*time.Millisecond, "the committer ends when the queue is empty")
}

// TestIngressFullIsBackpressure: nothing consumes NATTER_IN, which holds at most
// 1 MiB here. Sends are stored until it is full; then each is refused at once as
// unavailable, saying the server is behind and to resend later, and none of what
// was stored is dropped to make room (DiscardNew).
func TestIngressFullIsBackpressure(t *testing.T) {
	env := startEnvWith(t, false, func(c *natsutil.Config) { c.IngressMaxBytes = 1 << 20 })
	content := strings.Repeat("x", 16<<10)
	stored := 0
	var pe *protocol.Error
	for i := range 200 {
		m := &protocol.Message{ChatID: "full", MessageID: fmt.Sprintf("m%03d", i), SenderID: "u1", Content: content, MessageType: protocol.TypeText}
		err := env.g.publishIngress(context.Background(), m, asUser, func(*protocol.Frame) {})
		if err != nil {
			require.ErrorAs(t, err, &pe)
			break
		}
		stored++
	}
	require.NotNil(t, pe, "a 1 MiB NATTER_IN refuses sends before 200 of 16 KiB")
	require.Equal(t, protocol.CodeUnavailable, pe.Code)
	require.Contains(t, pe.Message, "behind")
	require.Contains(t, pe.Message, "resend it with the same messageId later")
	require.Greater(t, stored, 30, "sends are stored until the cap")
	msgs := env.stored(t)
	require.Len(t, msgs, stored, "every stored send is kept")
	first, err := protocol.DecodeIngress(msgs[0].Data)
	require.NoError(t, err)
	require.Equal(t, "m000", first.MessageID, "nothing old was discarded to make room")
}

// TestIngressManyConnections sends from many WebSocket connections at once: a
// direct chat per connection pair and one group chat whose sends interleave, with
// resends of sequenced messages and the same messageId from two connections mixed
// in. Every send is answered once with the right duplicate flag and the seq of the
// one copy NATTER_LOG holds, and each connection's originals are sequenced in the
// order it sent them.
func TestIngressManyConnections(t *testing.T) {
	env := startSequencedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const users, rounds = 80, 12
	now := time.Now()
	group := store.Chat{ID: "busy", Kind: "group", Name: "busy", CreatedBy: "u0", CreatedAt: now}
	var gm []store.Member
	for i := range users {
		gm = append(gm, store.Member{ChatID: group.ID, UserID: user(i), Role: "member", JoinedAt: now})
	}
	_, _, err := env.st.CreateChat(ctx, group, gm)
	require.NoError(t, err)
	for i := 0; i < users; i += 2 {
		c := store.Chat{ID: fmt.Sprintf("dm-%d", i), Kind: "direct", CreatedBy: user(i), CreatedAt: now}
		_, _, err := env.st.CreateChat(ctx, c, []store.Member{{ChatID: c.ID, UserID: user(i), Role: "member", JoinedAt: now},
			{ChatID: c.ID, UserID: user(i + 1), Role: "member", JoinedAt: now}})
		require.NoError(t, err)
	}
	conns := make([]*client.Conn, users)
	for i := range users {
		tok, err := auth.Sign(env.secret, user(i), time.Hour, false)
		require.NoError(t, err)
		conns[i], err = client.Dial(ctx, env.url, tok, nil)
		require.NoError(t, err)
		defer conns[i].CloseNow()
	}

	// Each connection, each round: a new message to its direct chat, one to the
	// group, and every third round a resend of its previous round's group message
	// (stored: a duplicate). Pairs of connections also race the same messageId
	// into the group: exactly one of each pair is the original.
	type sent struct {
		chat, id string
		dup      bool
	}
	plans := make([][]sent, users)
	for i := range users {
		for r := range rounds {
			plans[i] = append(plans[i], sent{chat: fmt.Sprintf("dm-%d", i/2*2), id: fmt.Sprintf("%s-d%d", user(i), r)})
			plans[i] = append(plans[i], sent{chat: "busy", id: fmt.Sprintf("%s-g%d", user(i), r)})
			if r > 0 && r%3 == 0 {
				plans[i] = append(plans[i], sent{chat: "busy", id: fmt.Sprintf("%s-g%d", user(i), r-1), dup: true})
			}
			if r%4 == 1 {
				plans[i] = append(plans[i], sent{chat: "busy", id: fmt.Sprintf("race-%d-%d", i/2, r)}) // dup: decided by the race
			}
		}
	}
	type answer struct {
		dup []bool
		seq []uint64
	}
	answers := make([]answer, users)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for _, s := range plans[i] {
				ack, err := conns[i].Send(ctx, s.chat, s.id, "hello from "+user(i))
				if err != nil {
					errs <- fmt.Errorf("%s %s:%s: %w", user(i), s.chat, s.id, err)
					return
				}
				if ack.Type != protocol.FrameAck {
					errs <- fmt.Errorf("%s %s:%s: answered %s", user(i), s.chat, s.id, ack.Type)
					return
				}
				answers[i].dup = append(answers[i].dup, ack.Duplicate)
				answers[i].seq = append(answers[i].seq, ack.Seq)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Duplicate flags: as planned, and exactly one original per raced ID.
	originals := map[string]string{} // chat:id → sender of the stored copy
	for i := range users {
		require.Len(t, answers[i].dup, len(plans[i]), "%s: one answer per send", user(i))
		for n, s := range plans[i] {
			k := s.chat + ":" + s.id
			dup := answers[i].dup[n]
			if strings.HasPrefix(s.id, "race-") {
				if !dup {
					require.Empty(t, originals[k], "%s: two originals", k)
					originals[k] = user(i)
				}
				continue
			}
			require.Equal(t, s.dup, dup, "%s send %d (%s): duplicate flag", user(i), n, k)
			if !dup {
				originals[k] = user(i)
			}
		}
	}

	// NATTER_LOG: every message once, from the sender that got dup=false, under
	// the seq every answer for it named, and each sender's originals in the order
	// it sent them.
	seqOf := map[string]uint64{} // chat:id → seq answered
	for i := range users {
		for n, s := range plans[i] {
			k := s.chat + ":" + s.id
			require.NotZero(t, answers[i].seq[n], "%s: an ack carries the seq", k)
			if prev, ok := seqOf[k]; ok {
				require.Equal(t, prev, answers[i].seq[n], "%s: a resend is answered with the original seq", k)
			}
			seqOf[k] = answers[i].seq[n]
		}
	}
	logged := env.logged(t)
	require.Len(t, logged, len(originals), "each message sequenced once")
	order := map[string][]string{} // sender → chat:id in log order
	for _, m := range logged {
		k := m.Header.Get(jetstream.MsgIDHeader)
		msg, err := protocol.DecodeMessageFrame(m.Data)
		require.NoError(t, err)
		require.Equal(t, originals[k], msg.SenderID, "%s: sequenced from the sender told it was the original", k)
		require.Equal(t, seqOf[k], msg.Seq, "%s: the seq acked", k)
		delete(originals, k)
		order[msg.SenderID] = append(order[msg.SenderID], k)
	}
	require.Empty(t, originals, "acked but not sequenced")
	for i := range users {
		var want []string
		for n, s := range plans[i] {
			if !answers[i].dup[n] {
				want = append(want, s.chat+":"+s.id)
			}
		}
		require.Equal(t, want, order[user(i)], "%s: sender FIFO", user(i))
	}

	// The load was committed to NATTER_IN in batches.
	n, sum := histogramCount(t, env.metrics, "natter_gateway_ingress_batch_size")
	t.Logf("%d sends stored, %d sequenced, %d atomic batches holding %.0f", len(env.stored(t)), len(logged), n, sum)
	require.NotZero(t, n, "no atomic batch")
}

func user(i int) string { return "u" + strconv.Itoa(i) }

// BenchmarkIngressCommit compares, per message, n plain publishes one after
// another, n at once, and one atomic batch of n (sync always), into a NATTER_IN in
// memory (the default) and on file: what ingressMinBatch is tuned from. cpu-µs/msg
// is the process's CPU (the NATS server is in it), steadier than wall time on a
// shared machine.
func BenchmarkIngressCommit(b *testing.B) {
	seq := 0 // message IDs unique across runs (-count): a repeated one fails a batch
	for _, storage := range []string{natsutil.IngressMemory, natsutil.IngressFile} {
		env := startEnvWith(b, false, func(c *natsutil.Config) { c.IngressStorage, c.IngressMaxBytes = storage, 1<<30 })
		for _, n := range []int{1, 2, 4, 8, 16, 32, 128} {
			for _, mode := range []string{"sequential", "concurrent", "batch"} {
				if n == 1 && mode != "sequential" {
					continue
				}
				b.Run(fmt.Sprintf("%s/n=%d/%s", storage, n, mode), func(b *testing.B) {
					ctx := context.Background()
					cpu0 := cpuTime(b)
					for b.Loop() {
						msgs := make([]*nats.Msg, n)
						for i := range msgs {
							seq++
							id := fmt.Sprintf("n%d-%s-%d", n, mode, seq)
							s := env.g.newIngressSend(&protocol.Message{ChatID: "bench" + strconv.Itoa(seq%16), MessageID: id,
								SenderID: "u1", Content: "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
								MessageType: protocol.TypeText}, asUser, env.g.deps.Subjects.AnswerGatewayPrefix()+"bench."+id)
							msgs[i] = s.msg
						}
						switch mode {
						case "batch":
							if _, err := jetstreamext.PublishMsgBatch(ctx, env.js, msgs, jetstreamext.BatchFlowControl{}); err != nil {
								b.Fatal(err)
							}
						case "concurrent":
							var wg sync.WaitGroup
							for _, m := range msgs {
								wg.Go(func() {
									if _, err := env.js.PublishMsg(ctx, m); err != nil {
										b.Error(err)
									}
								})
							}
							wg.Wait()
						default:
							for _, m := range msgs {
								if _, err := env.js.PublishMsg(ctx, m); err != nil {
									b.Fatal(err)
								}
							}
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/msg")
					b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/msg")
				})
			}
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
