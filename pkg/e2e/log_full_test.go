package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestFullLogAppliesBackpressure: NATTER_LOG's size cap is a hard cap, not an
// eviction. With no persister, sends go on being acked (into NATTER_IN) while the
// log fills and sequencing stops; once a persister runs, it stores what the log
// holds and trims what it stored, sequencing resumes, and every acked message is
// delivered and stored, in order.
func TestFullLogAppliesBackpressure(t *testing.T) {
	old := persister.TrimInterval
	persister.TrimInterval = 100 * time.Millisecond
	t.Cleanup(func() { persister.TrimInterval = old })
	ns := natstest.Server(t)
	cfg := testutil.Config(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.NATS.LogMaxBytes = 64 << 10
	cfg.NATS.DedupWindow = time.Second
	cfg.Roles = []string{app.RoleGateway, app.RoleSequencer}
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	const total = 600
	for i := 1; i <= total; i++ {
		_, err := alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%03d", i), "a message of some length, to fill the log")
		require.NoError(t, err, "send %d is acked although the log is full", i)
	}
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
