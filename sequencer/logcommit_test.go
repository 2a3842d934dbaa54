package sequencer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/stretchr/testify/require"
)

// logStream creates an R1 file stream with atomic batches, as NATTER_LOG is.
func logStream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	srv := natstest.Server(t)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "LOGTEST", Subjects: []string{"log.>"},
		Storage: jetstream.FileStorage, AllowAtomicPublish: true})
	require.NoError(t, err)
	return js, st
}

// TestLogCommitterCombinesBatches: partitions' batches waiting together are
// appended as one atomic batch, and each partition learns the log seq of its own
// last message; a batch whose fence fails is refused alone, and the batches
// combined with it are appended all the same.
func TestLogCommitterCombinesBatches(t *testing.T) {
	js, st := logStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := newLogCommitter(js)

	const parts = 8
	type result struct {
		msgs []*nats.Msg
		last uint64
		err  error
	}
	results := make([]result, parts)
	var ready, done sync.WaitGroup
	for p := range parts {
		var msgs []*nats.Msg
		for i := range p + 1 {
			m := nats.NewMsg(fmt.Sprintf("log.p%d", p))
			m.Data = []byte(fmt.Sprintf("p%d-%d", p, i))
			msgs = append(msgs, m)
		}
		if p == 3 { // a stale fence: the chat's subject is expected to hold a message
			msgs[0].Header.Set(jetstream.ExpectedLastSubjSeqHeader, "7")
		}
		results[p].msgs = msgs
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			results[p].last, results[p].err = c.append(context.Background(), msgs)
		}()
	}
	ready.Wait()
	time.Sleep(100 * time.Millisecond) // the partitions wait in append: the committer is not running yet
	var run sync.WaitGroup
	run.Go(func() { c.run(ctx) })
	done.Wait()

	for p, r := range results {
		if p == 3 {
			require.Error(t, r.err, "the fenced batch is refused")
			continue
		}
		require.NoError(t, r.err, "partition %d", p)
		// The seq returned is its own last message, and its batch is contiguous.
		for i, m := range r.msgs {
			got, err := st.GetMsg(context.Background(), r.last-uint64(len(r.msgs)-1-i))
			require.NoError(t, err)
			require.Equal(t, string(m.Data), string(got.Data), "partition %d message %d", p, i)
		}
	}
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	var want uint64
	for p := range parts {
		if p != 3 {
			want += uint64(p + 1)
		}
	}
	require.Equal(t, want, info.State.Msgs, "every batch but the fenced one is in the log, once")
	// One combined attempt (which the fence failed), then each batch alone.
	require.Greater(t, c.combined.Load(), c.committed.Load(), "batches waiting together were combined")
	require.Equal(t, c.committed.Load()+c.combined.Load(), c.attempts.Load(), "a refused combined batch is retried batch by batch")

	// The fence satisfied, the same batch goes through.
	results[3].msgs[0].Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	last, err := c.append(context.Background(), results[3].msgs)
	require.NoError(t, err)
	require.Equal(t, want+4, last)

	cancel()
	run.Wait()
	_, err = c.append(context.Background(), results[3].msgs)
	require.Error(t, err, "a stopped committer refuses, it does not hang")
}

// TestLogCommitterFailsAllWhenTheLogIsUnreachable: when a combined batch fails for
// a reason that is not its content (here the connection is gone), every batch gets
// the error at once instead of one timeout after another, and falls back on its own.
func TestLogCommitterFailsAllWhenTheLogIsUnreachable(t *testing.T) {
	srv := natstest.Server(t)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "LOGTEST", Subjects: []string{"log.>"},
		Storage: jetstream.FileStorage, AllowAtomicPublish: true})
	require.NoError(t, err)
	c := newLogCommitter(js)

	const parts = 4
	errs := make([]error, parts)
	var ready, done sync.WaitGroup
	for p := range parts {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			m := nats.NewMsg(fmt.Sprintf("log.p%d", p))
			m.Data = []byte("x")
			ready.Done()
			_, errs[p] = c.append(context.Background(), []*nats.Msg{m})
		}()
	}
	ready.Wait()
	time.Sleep(100 * time.Millisecond) // the partitions wait in append: the committer is not running yet
	nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var run sync.WaitGroup
	run.Go(func() { c.run(ctx) })
	done.Wait()
	cancel()
	run.Wait()
	for p, err := range errs {
		require.Error(t, err, "partition %d", p)
	}
	require.Equal(t, c.committed.Load(), c.attempts.Load(), "no batch-by-batch retries of an unreachable log")
	require.Greater(t, c.combined.Load(), c.committed.Load(), "the batches were combined")
}
