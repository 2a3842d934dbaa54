package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestFullLogAppliesBackpressure: NATTER_LOG's size cap is a hard cap, not an
// eviction. With no persister the log fills and sequencing stops: sends are still
// stored in NATTER_IN, but no longer acknowledged (an ack means sequenced), so the
// client gets unavailable and keeps its message. Once a persister runs, it stores
// what the log holds and trims what it stored, sequencing resumes, the stored send
// is sequenced, the client's resend of it is answered with its seq, and every
// message is delivered and stored, in order, once.
func TestFullLogAppliesBackpressure(t *testing.T) {
	old := persister.TrimInterval
	persister.TrimInterval = 100 * time.Millisecond
	t.Cleanup(func() { persister.TrimInterval = old })
	ns := natstest.Server(t)
	cfg := testutil.Config(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.NATS.LogMaxBytes = 64 << 10
	cfg.NATS.DedupWindow = time.Second
	cfg.Gateway.PublishTimeout = 2 * time.Second
	cfg.Roles = []string{app.RoleGateway, app.RoleSequencer}
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	const total = 600
	const content = "a message of some length, to fill the log"
	stalled := 0 // the first send not acknowledged: the log is full
	for i := 1; i <= total; i++ {
		_, err := alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%03d", i), content)
		if err != nil {
			var pe *protocol.Error
			require.ErrorAs(t, err, &pe, "send %d", i)
			require.Equal(t, protocol.CodeUnavailable, pe.Code, "send %d: %v", i, err)
			stalled = i
			break
		}
	}
	require.NotZero(t, stalled, "the log filled before every send was sequenced")
	st, err := n.JS.Stream(ctxT(t, 5*time.Second), subjects.LogStream)
	require.NoError(t, err)
	info := st.CachedInfo()
	require.Less(t, info.State.Msgs, uint64(total), "the log is full before every send is sequenced")
	require.LessOrEqual(t, info.State.Bytes, uint64(cfg.NATS.LogMaxBytes))
	require.Greater(t, info.State.Bytes, uint64(cfg.NATS.LogMaxBytes)/2, "the log is near its cap")

	pcfg := testutil.Config(t)
	pcfg.DataDir = cfg.DataDir
	pcfg.NATS.URL = ns.ClientURL()
	pcfg.NATS.LogMaxBytes, pcfg.NATS.DedupWindow = cfg.NATS.LogMaxBytes, cfg.NATS.DedupWindow
	pcfg.Roles = []string{app.RolePersister}
	p := testutil.StartNatter(t, pcfg)

	// The stalled send was stored: it is sequenced now, and its resend is
	// answered with its seq; the rest follow it.
	var ack *protocol.Frame
	require.Eventually(t, func() bool {
		var err error
		ack, err = alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%03d", stalled), content)
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "the stalled send is sequenced once a persister makes room")
	require.EqualValues(t, stalled, ack.Seq)
	// The log may fill again: the persister trims only what is stored and, under
	// size pressure, older than the dedup window (1 s here), and these sends come
	// faster than that. A send then gets unavailable again, and a client resends it
	// with the same messageId, as the SDKs do: each is sequenced once all the same.
	resent := 0
	for i := stalled + 1; i <= total; i++ {
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := alice.Send(ctxT(t, 30*time.Second), chat, fmt.Sprintf("m%03d", i), content)
			if err == nil {
				break
			}
			var pe *protocol.Error
			require.ErrorAs(t, err, &pe, "send %d", i)
			require.Equal(t, protocol.CodeUnavailable, pe.Code, "send %d: %v", i, err)
			require.True(t, time.Now().Before(deadline), "send %d still refused after a minute: %v", i, err)
			resent++
		}
	}
	t.Logf("%d resends after the first stall", resent)

	got := collect(t, bob, total, 90*time.Second)
	for i, f := range got {
		require.EqualValues(t, i+1, f.Seq)
		require.Equal(t, fmt.Sprintf("m%03d", i+1), f.MessageID)
	}
	require.Eventually(t, func() bool {
		page, err := p.Store.History(context.Background(), chat, store.HistoryQuery{Dir: store.Forward, Limit: store.MaxPage})
		if err != nil || len(page) != store.MaxPage {
			return false
		}
		last, err := p.Store.LastSeq(context.Background(), chat)
		return err == nil && last == total
	}, 30*time.Second, 50*time.Millisecond, "every message is stored")
	for after := uint64(0); after < total; after += store.MaxPage {
		page, err := p.Store.History(context.Background(), chat, store.HistoryQuery{Dir: store.Forward, After: after, Limit: store.MaxPage})
		require.NoError(t, err)
		for i, m := range page {
			require.EqualValues(t, after+uint64(i)+1, m.Seq)
		}
	}
}
