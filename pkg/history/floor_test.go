package history_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
)

// TestPersistedFloorAtLeast: a floor read earlier that reaches the asked minimum
// answers without waiting for a read, however old; it is read again in the
// background, so newer floors and a deleted persister consumer show up; a floor
// below the minimum is read while the caller waits.
func TestPersistedFloorAtLeast(t *testing.T) {
	e := newTailEnv(t)
	ctx := context.Background()
	for seq := uint64(1); seq <= 10; seq++ {
		e.publish(t, text("a", seq))
	}
	cons, err := e.js.CreateOrUpdateConsumer(ctx, subjects.LogStream, jetstream.ConsumerConfig{
		Durable: subjects.PersisterConsumer, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	ackTo := func(n int) { // acks the next n messages, as the persister would once stored
		t.Helper()
		b, err := cons.Fetch(n, jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range b.Messages() {
			require.NoError(t, m.DoubleAck(ctx))
			got++
		}
		require.Equal(t, n, got)
	}
	ackTo(4)
	f, err := e.r.PersistedFloorAtLeast(ctx, 1)
	require.NoError(t, err)
	require.EqualValues(t, 4, f, "the first read waits")

	ackTo(3) // the floor is 7 now
	time.Sleep(150 * time.Millisecond)
	f, err = e.r.PersistedFloorAtLeast(ctx, 4)
	require.NoError(t, err)
	require.EqualValues(t, 4, f, "a floor read before that reaches the minimum answers at once, however old")
	require.Eventually(t, func() bool {
		f, err := e.r.PersistedFloorAtLeast(ctx, 4)
		return err == nil && f == 7
	}, 5*time.Second, 20*time.Millisecond, "read again in the background")

	ackTo(2) // 9
	time.Sleep(150 * time.Millisecond)
	f, err = e.r.PersistedFloorAtLeast(ctx, 9)
	require.NoError(t, err)
	require.EqualValues(t, 9, f, "a floor below the minimum is read while the caller waits")
	f, err = e.r.PersistedFloor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 9, f)

	require.NoError(t, e.js.DeleteConsumer(ctx, subjects.LogStream, subjects.PersisterConsumer))
	require.Eventually(t, func() bool {
		f, err := e.r.PersistedFloorAtLeast(ctx, 1)
		return err == nil && f == 0
	}, 5*time.Second, 20*time.Millisecond, "a deleted persister consumer means nothing is known stored")
}
