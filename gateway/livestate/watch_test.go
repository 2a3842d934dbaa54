package livestate

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// testConn is a connection of this gateway as Presence sees it: it records the
// frames it is given.
type testConn struct {
	user string
	mu   sync.Mutex
	got  [][]byte
	shut bool
}

func (c *testConn) UserID() string         { return c.user }
func (c *testConn) Service() bool          { return false }
func (c *testConn) Send(f *protocol.Frame) { c.Enqueue(protocol.EncodeFrame(f)) }
func (c *testConn) Enqueue(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, frame)
}
func (c *testConn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shut
}
func (c *testConn) frames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// testLocal is this gateway's connected users with their device counts.
type testLocal struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *testLocal) UserIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for u := range l.counts {
		out = append(out, u)
	}
	return out
}

func (l *testLocal) DeviceCounts(fn func(devices func(uid string) int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(func(uid string) int { return l.counts[uid] })
}

func (l *testLocal) set(uid string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[uid] = n
}

// startPresence returns a running Presence on an in-process NATS server and a
// SQLite store, and a connection to publish presence updates with.
func startPresence(t *testing.T, maxSubs int) (*Presence, *nats.Conn, *store.SQLiteStore, *testLocal) {
	t.Helper()
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "natter.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	local := &testLocal{counts: map[string]int{}}
	p := NewPresence(PresenceConfig{Heartbeat: time.Hour, MaxSubs: maxSubs}, PresenceDeps{
		NC: nc, Blocks: store.NewBlockCache(st, time.Millisecond), Local: local,
		Subjects: subjects.Subjects{Prefix: "natter", Partitions: 1},
	}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p.Run(ctx, &wg)
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return p, nc, st, local
}

func (p *Presence) subscriptions() (users, conns int) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return len(p.watched), len(p.byConn)
}

// TestWatchesShareOneSubscription: every connection watching a user shares one
// NATS subscription, which ends with the last watcher; a block made here ends the
// blocked user's watch at once, and updates reach only the watchers.
func TestWatchesShareOneSubscription(t *testing.T) {
	p, nc, st, _ := startPresence(t, 2)
	alice, carol, dave := &testConn{user: "alice"}, &testConn{user: "carol"}, &testConn{user: "dave"}
	require.NoError(t, p.watch(alice, []string{"bob"}))
	require.NoError(t, p.watch(carol, []string{"bob", "bob"}))
	users, conns := p.subscriptions()
	require.Equal(t, 1, users)
	require.Equal(t, 2, conns)

	update := func() {
		t.Helper()
		require.NoError(t, nc.Publish("natter.presence.bob", []byte(`{"type":"presence_update","userId":"bob"}`)))
		require.NoError(t, nc.Flush())
	}
	update()
	require.Eventually(t, func() bool { return alice.frames() == 1 && carol.frames() == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Zero(t, dave.frames())

	var pe *protocol.Error
	require.True(t, errors.As(p.watch(carol, []string{"erin", "frank"}), &pe))
	require.Equal(t, protocol.CodeTooLarge, pe.Code, "carol already watches bob: a third user is over MaxSubs")

	_, err := st.Block(context.Background(), store.Block{Blocker: "bob", Blocked: "alice", CreatedAt: time.Now().UTC()})
	require.NoError(t, err)
	p.DropBlocked("bob", "alice")
	users, conns = p.subscriptions()
	require.Equal(t, 1, users, "carol still watches bob")
	require.Equal(t, 1, conns)
	update()
	require.Eventually(t, func() bool { return carol.frames() == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, alice.frames())

	p.wmu.Lock()
	sub := p.watched["bob"].sub
	p.wmu.Unlock()
	p.Left(carol)
	users, conns = p.subscriptions()
	require.Zero(t, users)
	require.Zero(t, conns)
	require.False(t, sub.IsValid(), "the last watcher's leaving ends the subscription")
}

// TestTakeDirtyStampsIncreasingSeqs: each report carries the device counts of the
// moment it was taken, with seqs that only grow, so the presence role can drop a
// report that arrives after a newer one.
func TestTakeDirtyStampsIncreasingSeqs(t *testing.T) {
	p := NewPresence(PresenceConfig{Heartbeat: time.Hour, MaxSubs: 1}, PresenceDeps{Local: &testLocal{counts: map[string]int{}}}, zap.NewNop())
	local := p.d.Local.(*testLocal)
	local.set("alice", 2)
	p.markDirty("alice")
	p.markDirty("bob")
	first := p.takeDirty()
	require.Len(t, first, 2)
	require.Equal(t, 2, first["alice"].N)
	require.Zero(t, first["bob"].N, "a user with no connection here reports zero devices")
	require.Nil(t, p.takeDirty(), "nothing changed since")

	local.set("alice", 1)
	p.markDirty("alice")
	second := p.takeDirty()
	require.Equal(t, presencekv.Devices{N: 1, Seq: max(first["alice"].Seq, first["bob"].Seq) + 1}, second["alice"])
}
