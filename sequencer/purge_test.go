package sequencer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/sequencer"
	"github.com/stretchr/testify/require"
)

// shortPurge makes the janitor purge every 50 ms for the test.
func shortPurge(t *testing.T) {
	old := sequencer.PurgeInterval
	sequencer.PurgeInterval = 50 * time.Millisecond
	t.Cleanup(func() { sequencer.PurgeInterval = old })
}

// ingressState returns NATTER_IN's retention and state.
func (e *env) ingressState(t *testing.T) (jetstream.RetentionPolicy, jetstream.StreamState) {
	t.Helper()
	in, err := e.js.Stream(context.Background(), subjects.InStream)
	require.NoError(t, err)
	info, err := in.Info(context.Background())
	require.NoError(t, err)
	return info.Config.Retention, info.State
}

// TestAckedIngressIsPurged: NATTER_IN has Limits retention, so acks remove nothing;
// after a burst the janitor empties it once everything is acked.
func TestAckedIngressIsPurged(t *testing.T) {
	shortPurge(t)
	e := setup(t)
	chats := e.createChats(t, "p", 4)
	var want []string
	for i := 1; i <= 50; i++ {
		id := fmt.Sprintf("m%02d", i)
		want = append(want, id)
		for _, c := range chats {
			e.publishIngress(t, c, id)
		}
	}
	retention, state := e.ingressState(t)
	require.Equal(t, jetstream.LimitsPolicy, retention, "a new NATTER_IN has Limits retention")
	require.EqualValues(t, 200, state.Msgs)
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 200 }, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs == 0 && state.FirstSeq == 201
	}, 10*time.Second, 20*time.Millisecond, "acked ingress is purged")
	for _, c := range chats {
		require.Equal(t, want, e.logIDs(t, c))
	}
}

// TestUnackedIngressIsNeverPurged: while the partition's holder has messages in
// hand without acking them, the janitor of another instance purges what is acked
// and nothing else; when the holder dies, the takeover catch-up still finds the
// rest and sequences it in order, and nothing above the ack floor is purged.
func TestUnackedIngressIsNeverPurged(t *testing.T) {
	shortPurge(t)
	e := setup(t)
	// The holder stays pinned while it is silent for less than this.
	e.cfg.PinnedTTL = 5 * time.Second
	ctx := context.Background()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, subjects.InStream, sequencer.ConsumerConfig(e.cfg, e.subj, 0))
	require.NoError(t, err)
	for i := 1; i <= 10; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	// The holder takes the partition, acks its first two messages (as if it had
	// sequenced them) and holds three more without acking them.
	batch, err := cons.Fetch(5, jetstream.FetchPriorityGroup(sequencer.PriorityGroup), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	i := 0
	for msg := range batch.Messages() {
		if i++; i <= 2 {
			require.NoError(t, msg.DoubleAck(ctx))
		}
	}
	require.NoError(t, batch.Error())
	require.Equal(t, 5, i)
	s := e.run(t)
	require.Eventually(t, func() bool {
		_, state := e.ingressState(t)
		return state.FirstSeq == 3
	}, 5*time.Second, 20*time.Millisecond, "the two acked messages are purged")
	require.Never(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs != 8 || state.FirstSeq != 3
	}, time.Second, 20*time.Millisecond, "nothing unacked is purged")
	n, _, _ := s.Stats()
	require.Zero(t, n, "the holder is still pinned")

	// The holder has died (it pulls no more); the sequencer takes over.
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 8 }, 20*time.Second, 20*time.Millisecond)
	var want []string
	for i := 3; i <= 10; i++ {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	require.Equal(t, want, e.logIDs(t, "c1"), "the held messages keep their place")
	// The dead holder's three are acked only when redelivered, after AckWait: until
	// then the ack floor stays below them, and so does the purge.
	require.Never(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs != 8
	}, 500*time.Millisecond, 20*time.Millisecond)
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.AckFloor.Stream)
}

// TestWorkQueueIngressKeepsRetention: a NATTER_IN created with WorkQueue retention
// (as streams were before ingress kept Limits retention) cannot change it; EnsureStreams keeps it, and the sequencer (its
// janitor included) works on it.
func TestWorkQueueIngressKeepsRetention(t *testing.T) {
	shortPurge(t)
	e := setupWith(t, func(js jetstream.JetStream, c *natsutil.Config) {
		old := natsutil.InStreamConfig(c)
		old.Retention = jetstream.WorkQueuePolicy
		_, err := js.CreateStream(context.Background(), old)
		require.NoError(t, err)
	})
	// Every role calls EnsureStreams at start.
	require.NoError(t, natsutil.EnsureStreams(context.Background(), e.js, &e.ncfg))
	retention, _ := e.ingressState(t)
	require.Equal(t, jetstream.WorkQueuePolicy, retention)
	for i := 1; i <= 20; i++ {
		e.publishIngress(t, "c1", fmt.Sprintf("m%02d", i))
	}
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 20 }, 20*time.Second, 20*time.Millisecond)
	require.Len(t, e.logIDs(t, "c1"), 20)
	require.Eventually(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs == 0
	}, 10*time.Second, 20*time.Millisecond)
	// More janitor rounds on the empty work queue change nothing.
	time.Sleep(3 * sequencer.PurgeInterval)
	retention, state := e.ingressState(t)
	require.Equal(t, jetstream.WorkQueuePolicy, retention)
	require.EqualValues(t, 20, state.LastSeq)
}

// twoPartitionChats sets up e with two partitions and returns a chat of each.
func twoPartitionChats(t *testing.T) (e *env, chats [2]string) {
	e = setupWith(t, func(_ jetstream.JetStream, c *natsutil.Config) { c.Partitions = 2 })
	found := 0
	for _, c := range e.createChats(t, "q", 16) {
		if p := e.subj.Partition(c); chats[p] == "" {
			chats[p] = c
			found++
		}
	}
	require.Equal(t, 2, found, "16 chats fall in both partitions")
	return e, chats
}

// purgeEvery sets PurgeFilteredEvery for the test (before any sequencer runs).
func purgeEvery(t *testing.T, n int) {
	old := sequencer.PurgeFilteredEvery
	sequencer.PurgeFilteredEvery = n
	t.Cleanup(func() { sequencer.PurgeFilteredEvery = old })
}

// TestIdlePartitionDoesNotHoldPurges: the janitor purges the whole stream up to the
// lowest ack floor of the partitions with work in hand; a partition that never had
// a message (ack floor 0, nothing pending) does not hold it back. The per-partition
// purges are off here, so only the whole-stream purge can empty NATTER_IN.
func TestIdlePartitionDoesNotHoldPurges(t *testing.T) {
	shortPurge(t)
	purgeEvery(t, 1<<30)
	e, chats := twoPartitionChats(t)
	for i := 1; i <= 20; i++ {
		e.publishIngress(t, chats[1], fmt.Sprintf("m%02d", i))
	}
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 20 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs == 0 && state.FirstSeq == 21
	}, 10*time.Second, 20*time.Millisecond, "acked ingress is purged past the idle partition")
}

// TestStuckPartitionDoesNotHoldOthersIngress: a partition whose holder keeps a
// message unacked holds the whole-stream purge at its ack floor; every
// PurgeFilteredEvery rounds the other partition's acked messages are purged on
// their own, and the held message never is.
func TestStuckPartitionDoesNotHoldOthersIngress(t *testing.T) {
	shortPurge(t)
	purgeEvery(t, 3)
	e, chats := twoPartitionChats(t)
	e.cfg.PinnedTTL = 30 * time.Second // the holder stays pinned for the test
	ctx := context.Background()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, subjects.InStream, sequencer.ConsumerConfig(e.cfg, e.subj, 0))
	require.NoError(t, err)
	e.publishIngress(t, chats[0], "held")
	batch, err := cons.Fetch(1, jetstream.FetchPriorityGroup(sequencer.PriorityGroup), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	for range batch.Messages() { // in hand, never acked
	}
	require.NoError(t, batch.Error())
	for i := 1; i <= 20; i++ {
		e.publishIngress(t, chats[1], fmt.Sprintf("m%02d", i))
	}
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 20 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs == 1 && state.FirstSeq == 1
	}, 10*time.Second, 20*time.Millisecond, "the other partition's acked messages are purged, the held one is not")
	require.Never(t, func() bool {
		_, state := e.ingressState(t)
		return state.Msgs != 1
	}, 500*time.Millisecond, 20*time.Millisecond, "the held message stays")
}
