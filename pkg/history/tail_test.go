package history_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/history"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// tailEnv is NATTER_LOG on an in-process server, a SQLite store and a Reader.
type tailEnv struct {
	js   jetstream.JetStream
	subj subjects.Subjects
	st   *store.SQLiteStore
	r    *history.Reader
}

func newTailEnv(tb testing.TB) *tailEnv {
	tb.Helper()
	ns := natstest.Server(tb)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	ncfg := natsutil.DefaultConfig()
	require.NoError(tb, natsutil.EnsureStreams(context.Background(), js, &ncfg))
	st, err := store.OpenSQLite(context.Background(), filepath.Join(tb.TempDir(), "h.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { st.Close() })
	e := &tailEnv{js: js, subj: ncfg.Subjects(), st: st}
	e.r = &history.Reader{Store: st, JS: js, Subjects: e.subj, Consumer: subjects.PersisterConsumer}
	return e
}

// publish appends m to NATTER_LOG as the sequencer does (chat seq in the header).
func (e *tailEnv) publish(tb testing.TB, m protocol.Message) {
	tb.Helper()
	msg := &nats.Msg{Subject: e.subj.Log(m.ChatID), Data: protocol.EncodeMessageFrame(&m), Header: nats.Header{}}
	msg.Header.Set(protocol.HeaderSeq, strconv.FormatUint(m.Seq, 10))
	_, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(tb, err)
}

func text(chat string, seq uint64) protocol.Message {
	return protocol.Message{ChatID: chat, Seq: seq, MessageID: fmt.Sprintf("%s-%d", chat, seq), SenderID: "u",
		Content: "hello", MessageType: protocol.TypeText, Timestamp: time.Now().UnixMilli()}
}

// noDirect turns direct gets off on NATTER_LOG, as on a replicated log, and gives
// e a reader that sees it: the tail is then read a get at a time or through a
// short-lived consumer (readTail).
func (e *tailEnv) noDirect(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, subjects.LogStream)
	require.NoError(tb, err)
	cfg := st.CachedInfo().Config
	require.True(tb, cfg.AllowDirect, "NATTER_LOG on one replica allows direct gets")
	cfg.AllowDirect = false
	_, err = e.js.UpdateStream(ctx, cfg)
	require.NoError(tb, err)
	e.r = &history.Reader{Store: e.st, JS: e.js, Subjects: e.subj, Consumer: subjects.PersisterConsumer}
}

// TestPagesOfALongTailMatchTheLog: three chats interleaved at random in the log,
// none stored (no persister), a delete and an edit near the end of one chat; every
// page shape (newest, before, after, any limit) read through the bounded tail read
// equals the page cut from the full list: with the tail read by batched direct gets
// (one replica) and without (a replicated log).
func TestPagesOfALongTailMatchTheLog(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testPagesOfALongTail(t, true) })
	t.Run("no-direct", func(t *testing.T) { testPagesOfALongTail(t, false) })
}

func testPagesOfALongTail(t *testing.T, direct bool) {
	e := newTailEnv(t)
	if !direct {
		e.noDirect(t)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	chats := []string{"a", "b", "c"}
	last := map[string]uint64{}
	for range 900 {
		c := chats[rng.IntN(3)]
		if c == "a" && rng.IntN(3) > 0 {
			c = "b" // uneven shares, so the interpolation is off and bisection must finish
		}
		last[c]++
		e.publish(t, text(c, last[c]))
	}
	// Operations on chat a's message 5: an edit, then a delete of message 6.
	last["a"]++
	edit := text("a", last["a"])
	edit.MessageType, edit.RefID, edit.Content = protocol.TypeEdit, "a-5", "edited"
	e.publish(t, edit)
	last["a"]++
	del := text("a", last["a"])
	del.MessageType, del.RefID, del.Content = protocol.TypeDelete, "a-6", ""
	e.publish(t, del)

	ctx := context.Background()
	for _, c := range chats {
		n := last[c]
		check := func(q store.HistoryQuery, want []uint64) {
			t.Helper()
			page, err := e.r.Page(ctx, c, q)
			require.NoError(t, err)
			got := make([]uint64, len(page))
			for i, m := range page {
				got[i] = m.Seq
				if c == "a" && m.Seq == 5 {
					require.Equal(t, "edited", m.Content, "the edit in the tail applies to an older page")
				}
				if c == "a" && m.Seq == 6 {
					require.True(t, m.Deleted, "the delete in the tail applies to an older page")
				}
			}
			require.Equal(t, want, got, "chat %s, query %+v", c, q)
		}
		seqs := func(from, to uint64, down bool) []uint64 {
			out := []uint64{}
			for s := from; s <= to && s >= 1; s++ {
				out = append(out, s)
			}
			if down {
				for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
					out[i], out[j] = out[j], out[i]
				}
			}
			return out
		}
		check(store.HistoryQuery{Limit: 50}, seqs(n-49, n, true))
		check(store.HistoryQuery{Limit: 500}, seqs(1, n, true))
		for range 60 {
			b := 1 + uint64(rng.IntN(int(n)))
			l := 1 + rng.IntN(60)
			from := uint64(1)
			if b > uint64(l) {
				from = b - uint64(l)
			}
			check(store.HistoryQuery{Before: b, Limit: l}, seqs(from, b-1, true))
			check(store.HistoryQuery{Dir: store.Forward, After: b - 1, Limit: l}, seqs(b, min(n, b-1+uint64(l)), false))
		}
		for _, seq := range []uint64{5, n - 1, n - min(n-1, 100)} { // beyond, within and across the newest windows
			m, err := e.r.Message(ctx, c, fmt.Sprintf("%s-%d", c, seq), "")
			require.NoError(t, err)
			require.EqualValues(t, seq, m.Seq)
			if c == "a" && seq == 5 {
				require.Equal(t, "edited", m.Content)
			}
		}
		_, err := e.r.Message(ctx, c, "never-sent", "")
		require.ErrorIs(t, err, store.ErrNotFound)
	}
}

// BenchmarkHistoryPage: the newest page of 50 of a chat with 11,000 messages, all
// stored (the persister caught up), the last 10 not stored yet (a persister that
// keeps up, a moment behind: the tail is read with a get per message) or the last
// 1,000 or 10,000 (the persister stopped): those read the tail from the log. A page deep in that tail (50
// messages before seq 2,000) reads from itself to the tail's end, for the
// operations that may apply to it. Run with
// go test -run '^$' -bench HistoryPage ./pkg/history/
func BenchmarkHistoryPage(b *testing.B) {
	for _, tc := range []struct {
		name        string
		unpersisted int
		before      uint64
	}{{"unpersisted=0", 0, 0}, {"unpersisted=10", 10, 0}, {"unpersisted=1000", 1000, 0}, {"unpersisted=10000", 10_000, 0}, {"unpersisted=10000/before=2000", 10_000, 2000}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newTailEnv(b)
			ctx := context.Background()
			const total = 11_000
			stored := uint64(total - tc.unpersisted)
			for i := uint64(1); i <= stored; i++ {
				e.publish(b, text("c", i))
			}
			// The real persister stores those, then stops; the rest stays in the log.
			p, err := persister.New(persister.Config{Batch: 500, MaxWait: 20 * time.Millisecond, MaxBackoff: time.Second, AckWait: 30 * time.Second},
				persister.Deps{JS: e.js, Store: e.st, Subjects: e.subj}, zap.NewNop())
			require.NoError(b, err)
			rctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = p.Run(rctx) }()
			require.Eventually(b, func() bool {
				lag, err := persister.CurrentLag(ctx, e.js)
				n, _ := e.st.LastSeq(ctx, "c")
				return err == nil && lag.Messages == 0 && n == stored
			}, time.Minute, 20*time.Millisecond)
			stop()
			<-done
			for i := stored + 1; i <= total; i++ {
				e.publish(b, text("c", i))
			}
			b.ResetTimer()
			for b.Loop() {
				page, err := e.r.Page(ctx, "c", store.HistoryQuery{Before: tc.before, Limit: 50})
				if err != nil || len(page) != 50 {
					b.Fatalf("page: %d messages, %v", len(page), err)
				}
			}
		})
	}
}

// TestPageUpToEndsAtTheNewestMessageRead: PageUpTo merges the log tail only up to
// the newest message the caller read, however many were sequenced since, with the
// tail read by batched direct gets and without.
func TestPageUpToEndsAtTheNewestMessageRead(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			e := newTailEnv(t)
			if !direct {
				e.noDirect(t)
			}
			ctx := context.Background()
			for seq := uint64(1); seq <= 7; seq++ {
				e.publish(t, text("a", seq))
				e.publish(t, text("b", seq))
			}
			st, err := e.js.Stream(ctx, subjects.LogStream)
			require.NoError(t, err)
			newest, err := st.GetLastMsgForSubject(ctx, e.subj.Log("a"))
			require.NoError(t, err)
			for seq := uint64(8); seq <= 10; seq++ {
				e.publish(t, text("a", seq))
			}
			seqs := func(page []protocol.Message) []uint64 {
				var out []uint64
				for _, m := range page {
					out = append(out, m.Seq)
				}
				return out
			}
			q := store.HistoryQuery{Dir: store.Forward, After: 2, Limit: 50}
			page, err := e.r.PageUpTo(ctx, "a", q, newest)
			require.NoError(t, err)
			require.Equal(t, []uint64{3, 4, 5, 6, 7}, seqs(page))
			page, err = e.r.Page(ctx, "a", q)
			require.NoError(t, err)
			require.Equal(t, []uint64{3, 4, 5, 6, 7, 8, 9, 10}, seqs(page))
		})
	}
}
