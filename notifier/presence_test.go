package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/coalesce"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// jetStream starts an in-process NATS server with JetStream and connects to it.
// (pkg/testutil cannot be imported here: it imports this package through pkg/app.)
func jetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	require.NoError(t, err)
	go ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func putUser(t *testing.T, kv jetstream.KeyValue, uid string, devices int) {
	t.Helper()
	u := presencekv.User{Gateways: map[string]presencekv.GatewayDevices{"gw1": {N: devices}}}
	b, err := json.Marshal(u)
	require.NoError(t, err)
	_, err = kv.Put(context.Background(), presencekv.UserKey(uid), b)
	require.NoError(t, err)
}

func startView(t *testing.T) (*presenceView, jetstream.KeyValue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	js := jetStream(t)
	kv, err := presencekv.Ensure(ctx, js, 1)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, presencekv.StreamName)
	require.NoError(t, err)
	v := newPresenceView(ctx, kv, stream, zap.NewNop())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() { defer close(done); v.run(ctx) }()
	return v, kv
}

// The view loads the bucket's current state, and after sync shows every write made
// before sync was called: a user who went offline just before a message arrived is
// seen offline (so notified), every time.
func TestPresenceViewSeesWritesBeforeSync(t *testing.T) {
	v, kv := startView(t)
	putUser(t, kv, "carol", 2)                                                       // before the view loaded
	_, err := kv.Put(context.Background(), presencekv.LeaseKey("gw1"), []byte("{}")) // other keys are ignored
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := v.anyOnline(nil, ""); return ok }, 10*time.Second, 5*time.Millisecond)

	ctx := context.Background()
	for i := range 50 {
		putUser(t, kv, "bob", 1)
		require.NoError(t, v.sync(ctx))
		on, ok := v.anyOnline([]string{"alice", "bob"}, "alice")
		require.True(t, ok)
		require.True(t, on, "round %d: bob connected", i)
		putUser(t, kv, "bob", 0)
		require.NoError(t, v.sync(ctx))
		off, ok := v.offline([]string{"alice", "bob", "carol", "dave"}, "dave")
		require.True(t, ok)
		require.Equal(t, []string{"alice", "bob"}, off, "round %d: bob just went offline", i)
	}
	// A deleted entry is a user never seen: offline.
	require.NoError(t, kv.Delete(ctx, presencekv.UserKey("carol")))
	require.NoError(t, v.sync(ctx))
	off, _ := v.offline([]string{"carol"}, "")
	require.Equal(t, []string{"carol"}, off)
}

// fresh answers what a Get of the bucket made at the call would: a user who
// connected or disconnected just before is seen so, every time. Before the view has
// loaded it cannot say, and the caller reads the bucket.
func TestPresenceViewFreshAnswersLikeAGet(t *testing.T) {
	ctx := context.Background()
	v, kv := startView(t)
	require.Eventually(t, func() bool { _, ok := v.anyOnline(nil, ""); return ok }, 10*time.Second, 5*time.Millisecond)
	for i := range 50 {
		putUser(t, kv, "bob", 1)
		on, ok := v.fresh(ctx, "bob")
		require.True(t, ok)
		require.True(t, on, "round %d: bob just connected", i)
		putUser(t, kv, "bob", 0)
		on, ok = v.fresh(ctx, "bob")
		require.True(t, ok)
		require.False(t, on, "round %d: bob just went offline", i)
	}
	on, ok := v.fresh(ctx, "nobody")
	require.True(t, ok)
	require.False(t, on, "a user never seen has no device")

	v.setNotReady()
	_, ok = v.fresh(ctx, "bob")
	require.False(t, ok, "a view not loaded cannot say")
}

// Concurrent barriers share probes, and every caller gets a probe made after it
// called: one that saw a write made just before.
func TestProbeRoundsAnswerAfterTheCall(t *testing.T) {
	var writes, probes atomic.Uint64
	r := coalesce.New(func() (probeResult, error) {
		probes.Add(1)
		seq := writes.Load()
		time.Sleep(2 * time.Millisecond)
		return probeResult{seq, true}, nil
	})
	const n = 200
	errc := make(chan error, n)
	for i := range n {
		go func() {
			time.Sleep(time.Duration(i%20) * time.Millisecond)
			wrote := writes.Add(1)
			got, err := r.Do(context.Background())
			if err == nil && got.seq < wrote {
				err = fmt.Errorf("caller %d wrote %d, probe answered %d", i, wrote, got.seq)
			}
			errc <- err
		}()
	}
	for range n {
		require.NoError(t, <-errc)
	}
	require.Less(t, probes.Load(), uint64(n), "rounds are shared")
}

// A load of a chat's members that read the store before a membership change was
// seen does not put the old list back in the cache.
func TestMemberCacheInvalidation(t *testing.T) {
	c := newMemberCache()
	_, gen, ok := c.get("c1")
	require.False(t, ok)
	c.add("c1", []string{"alice"}, gen)
	ms, _, ok := c.get("c1")
	require.True(t, ok)
	require.Equal(t, []string{"alice"}, ms)

	ev, _ := json.Marshal(protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "bob"})
	frame := protocol.EncodeMessageFrame(&protocol.Message{ChatID: "c1", Seq: 5, MessageID: "m5", SenderID: "alice",
		MessageType: protocol.TypeSystem, Meta: ev})
	c.observe(frame)
	_, _, ok = c.get("c1")
	require.False(t, ok, "member_added drops the entry")

	// A load of c1 that started before the event (gen) must not be cached; one that
	// started after is.
	c.add("c1", []string{"alice"}, gen)
	_, gen2, ok := c.get("c1")
	require.False(t, ok)
	c.add("c1", []string{"alice", "bob"}, gen2)
	ms, _, _ = c.get("c1")
	require.Equal(t, []string{"alice", "bob"}, ms)

	// Ordinary messages, even ones quoting the marker, change nothing.
	c.observe(protocol.EncodeMessageFrame(&protocol.Message{ChatID: "c1", Seq: 6, MessageID: "m6", SenderID: "alice",
		MessageType: protocol.TypeText, Content: `"messageType":"system"`}))
	_, _, ok = c.get("c1")
	require.True(t, ok)
}
