package blockchanges_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/blockchanges"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// countingLister is a real SQLite store counting its block list reads.
type countingLister struct {
	store.Store
	reads atomic.Int64
}

func (c *countingLister) Blocks(ctx context.Context, blocker string) ([]store.Block, error) {
	c.reads.Add(1)
	return c.Store.Blocks(ctx, blocker)
}

// TestFollowerAppliesBeforeLaterMessages: a follower keeps a block list until a
// change of it is announced, and a check made after any message its connection
// received after the announcement sees the change (as the sequencer's check of the
// next ingress message does), in both directions.
func TestFollowerAppliesBeforeLaterMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := natstest.Server(t)
	connect := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	gw, seq := connect(), connect()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	lister := &countingLister{Store: st}
	subj := subjects.New("", 1)
	f, err := blockchanges.Follow(seq, subj, store.NewBlockCache(lister, time.Hour))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// What the gateway publishes after the change (a send), as the follower's
	// connection receives it.
	later, err := seq.SubscribeSync("later")
	require.NoError(t, err)
	require.NoError(t, seq.Flush())

	check := func(want bool) {
		t.Helper()
		blocked, err := f.Blocks(ctx, "alice", "bob")
		require.NoError(t, err)
		require.Equal(t, want, blocked)
	}
	check(false)
	check(false)
	require.EqualValues(t, 1, lister.reads.Load(), "kept until a change")

	for i, block := range []bool{true, false, true} {
		if block {
			_, err = st.Block(ctx, store.Block{Blocker: "alice", Blocked: "bob", CreatedAt: time.Now()})
		} else {
			_, err = st.Unblock(ctx, "alice", "bob")
		}
		require.NoError(t, err)
		require.NoError(t, blockchanges.Announce(gw, subj, "alice"))
		require.NoError(t, gw.Publish("later", nil))
		_, err = later.NextMsg(5 * time.Second)
		require.NoError(t, err)
		check(block)
		check(block)
		require.EqualValues(t, 2+i, lister.reads.Load(), "one read per change")
	}
	// Another user's change leaves alice's list cached.
	require.NoError(t, blockchanges.Announce(gw, subj, "carol"))
	require.NoError(t, gw.Publish("later", nil))
	_, err = later.NextMsg(5 * time.Second)
	require.NoError(t, err)
	check(true)
	require.EqualValues(t, 4, lister.reads.Load())
}
