package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestHistoryWhilePersisterLags: with no persister running, history still shows
// every sequenced message (read from the log tail), in both directions; once a
// persister starts, the store catches up and history is unchanged.
func TestHistoryWhilePersisterLags(t *testing.T) {
	ns := natstest.Server(t)
	cfg := testutil.Config(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.Roles = []string{app.RoleGateway, app.RoleSequencer}
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := n.Dial(t, "alice")
	for i := 1; i <= 100; i++ {
		_, err := alice.Send(ctxT(t, 5*time.Second), chat, fmt.Sprintf("m%03d", i), "x")
		require.NoError(t, err)
	}
	collect(t, alice, 100, 10*time.Second)
	last, err := n.Store.LastSeq(ctxT(t, time.Second), chat)
	require.NoError(t, err)
	require.Zero(t, last, "nothing is persisted yet")

	check := func() {
		p := history(t, n, "bob", chat, "?limit=100")
		require.Len(t, p.Messages, 100)
		require.EqualValues(t, 100, p.Messages[0].Seq)
		require.EqualValues(t, 1, p.Messages[99].Seq)
		p = history(t, n, "bob", chat, "?limit=30&before=51")
		require.Equal(t, seqRange(50, 21), seqsOf(p.Messages))
		p = history(t, n, "bob", chat, "?limit=30&after=90")
		require.Equal(t, seqRange(91, 100), seqsOf(p.Messages))
	}
	check()

	pcfg := testutil.Config(t)
	pcfg.DataDir = cfg.DataDir
	pcfg.NATS.URL = ns.ClientURL()
	pcfg.Roles = []string{app.RolePersister}
	p := testutil.StartNatter(t, pcfg)
	require.Eventually(t, func() bool {
		last, err := p.Store.LastSeq(ctxT(t, time.Second), chat)
		return err == nil && last == 100
	}, 10*time.Second, 20*time.Millisecond)
	check()
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	for s := from; s >= to; s-- {
		out = append(out, s)
	}
	return out
}
