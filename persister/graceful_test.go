package persister_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// slowStore is a real SQLite store whose writes take a while and tell when they
// begin: it lets a test stop the persister in the middle of one.
type slowStore struct {
	store.Store
	started chan struct{}
	delay   time.Duration
}

func (s *slowStore) AppendMessages(ctx context.Context, msgs []protocol.Message) error {
	select {
	case s.started <- struct{}{}:
	default:
	}
	time.Sleep(s.delay)
	return s.Store.AppendMessages(ctx, msgs)
}

// TestStopFinishesTheBatchInHand stops the persister while it writes a batch: the
// batch is still written and acked before Run returns, not abandoned to be
// redelivered after the ack wait.
func TestStopFinishesTheBatchInHand(t *testing.T) {
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	ncfg := natsutil.DefaultConfig()
	require.NoError(t, natsutil.EnsureStreams(ctx, js, &ncfg))
	subj := ncfg.Subjects()

	sq, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "p.db"))
	require.NoError(t, err)
	t.Cleanup(func() { sq.Close() })
	st := &slowStore{Store: sq, started: make(chan struct{}, 1), delay: 300 * time.Millisecond}

	cfg := persister.Config{Batch: 100, MaxWait: 50 * time.Millisecond, MaxBackoff: time.Second, AckWait: time.Minute}
	p, err := persister.New(cfg, persister.Deps{JS: js, Store: st, Subjects: subj}, zap.NewNop())
	require.NoError(t, err)
	const n = 5
	for i := 1; i <= n; i++ {
		m := protocol.Message{ChatID: "c1", Seq: uint64(i), MessageID: "m" + strconv.Itoa(i), SenderID: "u",
			Content: "x", MessageType: protocol.TypeText, Timestamp: time.Now().UnixMilli()}
		_, err := js.Publish(ctx, subj.Log("c1"), protocol.EncodeMessageFrame(&m))
		require.NoError(t, err)
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	select {
	case <-st.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the persister never wrote")
	}
	stop() // mid-write
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(persister.ShutdownGrace + 5*time.Second):
		t.Fatal("Run did not return")
	}

	last, err := sq.LastSeq(ctx, "c1")
	require.NoError(t, err)
	require.EqualValues(t, n, last, "the batch in hand was written")
	cons, err := js.Consumer(ctx, subjects.LogStream, subjects.PersisterConsumer)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream == n
	}, 5*time.Second, 20*time.Millisecond, "and acked")
}
