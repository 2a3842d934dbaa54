package kvwatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// TestMain fails the package if a test leaves a follower running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// entries records what Follow applied, in order.
type entries struct {
	mu  sync.Mutex
	got []string // "key=value", or "key-" for a deletion
}

func (e *entries) apply(kv jetstream.KeyValueEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if kv.Operation() == jetstream.KeyValuePut {
		e.got = append(e.got, kv.Key()+"="+string(kv.Value()))
	} else {
		e.got = append(e.got, kv.Key()+"-")
	}
}

func (e *entries) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := natstest.Server(t)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// TestFollowAppliesCurrentValuesThenChanges: Follow returns only once the
// bucket's current values are applied, then applies every change in order, and
// its goroutine ends with ctx.
func TestFollowAppliesCurrentValuesThenChanges(t *testing.T) {
	js := jetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "kvwatch-test", History: 1})
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "c"} {
		_, err := kv.Put(ctx, k, []byte("1"))
		require.NoError(t, err)
	}

	var got entries
	var wg sync.WaitGroup
	fctx, stop := context.WithCancel(ctx)
	require.NoError(t, Follow(fctx, &wg, js, zap.NewNop(), "kvwatch-test", got.apply))
	require.Equal(t, []string{"a=1", "b=1", "c=1"}, got.list(), "the current values are applied before Follow returns")

	_, err = kv.Put(ctx, "b", []byte("2"))
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, "a"))
	_, err = kv.Put(ctx, "d", []byte("1"))
	require.NoError(t, err)
	want := []string{"a=1", "b=1", "c=1", "b=2", "a-", "d=1"}
	require.Eventually(t, func() bool { return len(got.list()) >= len(want) }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, want, got.list(), "changes are applied in order")

	stop()
	wg.Wait() // the follower ends with its context
	_, err = kv.Put(ctx, "e", []byte("1"))
	require.NoError(t, err)
	require.Equal(t, want, got.list(), "nothing is applied after ctx ended")
}

// TestFollowWaitsForABucketStillForming: on a cluster still forming the bucket
// may not exist yet when a gateway starts; Follow retries and follows it once it
// appears, rather than failing the start.
func TestFollowWaitsForABucketStillForming(t *testing.T) {
	js := jetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var got entries
	var wg sync.WaitGroup
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Follow(fctx, &wg, js, zap.NewNop(), "kvwatch-late", got.apply) }()

	time.Sleep(300 * time.Millisecond) // Follow is retrying: the bucket does not exist yet
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "kvwatch-late", History: 1})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "x", []byte("1"))
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("Follow did not return once the bucket existed")
	}
	require.Eventually(t, func() bool { return len(got.list()) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"x=1"}, got.list())
	stop()
	wg.Wait()
}

// TestFollowGivesUpWhenCanceled: a start canceled while the bucket is missing
// returns the error instead of hanging, and leaves no goroutine behind.
func TestFollowGivesUpWhenCanceled(t *testing.T) {
	js := jetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	err := Follow(ctx, &wg, js, zap.NewNop(), "kvwatch-never", func(jetstream.KeyValueEntry) {
		t.Error("nothing to apply")
	})
	require.Error(t, err)
	wg.Wait()
}
