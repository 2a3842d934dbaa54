package sequencer_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/sequencer"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// restartable is an in-process NATS server that the test restarts on the same
// store directory; connections made through it (it is their in-process provider)
// reconnect to whichever server runs, without a port to race for.
type restartable struct {
	t   *testing.T
	dir string
	cur atomic.Pointer[server.Server]
}

func newRestartable(t *testing.T) *restartable {
	r := &restartable{t: t, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { r.cur.Load().Shutdown() })
	return r
}

func (r *restartable) start() {
	ns, err := server.NewServer(&server.Options{DontListen: true, JetStream: true, StoreDir: r.dir, NoSigs: true})
	require.NoError(r.t, err)
	go ns.Start()
	require.True(r.t, ns.ReadyForConnections(10*time.Second), "nats server ready")
	r.cur.Store(ns)
}

// restart shuts the server down and starts a new one on the same store.
func (r *restartable) restart() {
	old := r.cur.Load()
	old.Shutdown()
	old.WaitForShutdown()
	r.start()
}

// InProcessConn connects to the running server (nats.InProcessConnProvider).
func (r *restartable) InProcessConn() (net.Conn, error) { return r.cur.Load().InProcessConn() }

func (r *restartable) connect(t *testing.T) *nats.Conn {
	nc, err := nats.Connect("", nats.InProcessServer(r), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	require.NoError(t, err)
	return nc
}

// TestMemoryIngressSurvivesNATSRestart: NATTER_IN is a memory stream, which a
// single server drops when it restarts (NATTER_LOG, on file, stays). The running
// sequencer creates NATTER_IN and its consumer again and goes on sequencing; the new
// stream numbers from 1, so a client's resend of m1 is stored under m1's own ingress
// seq, and must still be answered as a duplicate with m1's seq, never appended.
func TestMemoryIngressSurvivesNATSRestart(t *testing.T) {
	shortPurge(t)
	srv := newRestartable(t)
	e := setupOn(t, srv.connect(t), nil)
	ctx := context.Background()
	in, err := e.js.Stream(ctx, subjects.InStream)
	require.NoError(t, err)
	require.Equal(t, jetstream.MemoryStorage, in.CachedInfo().Config.Storage, "NATTER_IN is in memory by default")

	answer := e.answers(t)
	s, err := sequencer.New(e.cfg, sequencer.Deps{NC: e.nc, JS: e.js, Store: e.st, Subjects: e.subj,
		EnsureIngress: func(ctx context.Context) error { return natsutil.EnsureIngress(ctx, e.js, &e.ncfg) }}, zap.NewNop())
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	e.send(t, "c1", "m1", "alice", e.answerSubject(1))
	requireAck(t, answer(e.answerSubject(1)), "c1", "m1", 1, false)
	first, err := in.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, first.State.LastSeq)

	srv.restart()
	require.Eventually(t, func() bool {
		info, err := in.Info(ctx)
		return err == nil && info.Config.Storage == jetstream.MemoryStorage
	}, 20*time.Second, 20*time.Millisecond, "the sequencer creates NATTER_IN again")

	e.send(t, "c1", "m1", "alice", e.answerSubject(2)) // the resend, as ingress seq 1 again
	requireAck(t, answer(e.answerSubject(2)), "c1", "m1", 1, true)
	e.send(t, "c1", "m2", "bob", e.answerSubject(3))
	requireAck(t, answer(e.answerSubject(3)), "c1", "m2", 2, false)
	require.Equal(t, []string{"m1", "m2"}, e.logIDs(t, "c1"), "each message once, the log kept across the restart")
	info, err := in.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.LastSeq, "the new NATTER_IN numbered the resend 1 and m2 2")
}
