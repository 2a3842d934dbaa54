package largechat

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// TestMain fails the package if a test leaves the bucket follower running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// testHub is the gateway's hub as Chats sees it: the users connected here, one
// dispatch shard, and what was delivered to whom.
type testHub struct {
	ch    chan *nats.Msg
	mu    sync.Mutex
	users map[string]bool
	got   map[string]int // uid -> messages delivered
}

func (h *testHub) UserIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for u := range h.users {
		out = append(out, u)
	}
	return out
}

func (h *testHub) Connected(uid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.users[uid]
}

func (h *testHub) Shard(string) chan *nats.Msg { return h.ch }

func (h *testHub) DeliverToUsers(uids []string, _ []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range uids {
		h.got[u]++
	}
}

func (h *testHub) delivered(uid string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[uid]
}

// storeMembers checks membership in the store itself (no cache to forget).
type storeMembers struct{ st *store.SQLiteStore }

func (m storeMembers) IsMember(ctx context.Context, chat, user string) error {
	_, err := m.st.GetMember(ctx, chat, user)
	return err
}

func (storeMembers) Forget(string, string) {}

// frameEvents parses a system message frame's event.
type frameEvents struct{}

func (frameEvents) Parse(data []byte) (string, *protocol.SystemEvent) {
	m, err := protocol.DecodeMessageFrame(data)
	if err != nil || m.MessageType != protocol.TypeSystem {
		return "", nil
	}
	var ev protocol.SystemEvent
	if json.Unmarshal(m.Meta, &ev) != nil {
		return "", nil
	}
	return m.ChatID, &ev
}

// TestLargeChatSubscriptionFollowsMembersHere: a chat marked large is joined by
// its members connected here (not by others), gets one subscription whose
// messages reach exactly them, is joined by a member who connects later, is left
// by a member removed (after the removal itself reached them) and by one who
// disconnects, and the subscription ends with the last of them; a chat no longer
// in the bucket is not large.
func TestLargeChatSubscriptionFollowsMembersHere(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsutil.LargeChatsBucket})
	require.NoError(t, err)
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "natter.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, _, err = st.CreateChat(ctx, store.Chat{ID: "big", Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: now}, []store.Member{
		{ChatID: "big", UserID: "alice", Role: store.RoleAdmin, JoinedAt: now},
		{ChatID: "big", UserID: "bob", Role: store.RoleMember, JoinedAt: now}})
	require.NoError(t, err)

	hub := &testHub{ch: make(chan *nats.Msg, 64), users: map[string]bool{"alice": true, "carol": true}, got: map[string]int{}}
	s := subjects.Subjects{Prefix: "natter", Partitions: 1}
	l := New(Deps{Hub: hub, Members: storeMembers{st}, NC: nc, KV: js, Subjects: s, Events: frameEvents{}}, zap.NewNop())
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	require.NoError(t, l.Watch(wctx, &wg))
	wg.Add(1)
	go func() { // the hub's dispatcher for the shard
		defer wg.Done()
		for {
			select {
			case <-wctx.Done():
				return
			case m := <-hub.ch:
				l.Deliver(m)
			}
		}
	}()

	require.NoError(t, l.Mark(ctx, "big", 2))
	require.Eventually(t, func() bool { return slices.Equal(l.members("big"), []string{"alice"}) }, 5*time.Second, 5*time.Millisecond)
	n, ok := l.MemberCount("big")
	require.True(t, ok)
	require.Equal(t, 2, n)

	send := func(m *protocol.Message) {
		t.Helper()
		m.ChatID, m.SenderID, m.Timestamp = "big", "alice", 1
		require.NoError(t, nc.Publish(s.Log("big"), protocol.EncodeMessageFrame(m)))
	}
	send(&protocol.Message{Seq: 1, MessageID: "m1", MessageType: protocol.TypeText, Content: "hi"})
	require.Eventually(t, func() bool { return hub.delivered("alice") == 1 }, 5*time.Second, 5*time.Millisecond)

	hub.mu.Lock()
	hub.users["bob"] = true
	hub.mu.Unlock()
	l.UserConnected("bob")
	send(&protocol.Message{Seq: 2, MessageID: "m2", MessageType: protocol.TypeText, Content: "bob is here"})
	require.Eventually(t, func() bool { return hub.delivered("alice") == 2 && hub.delivered("bob") == 1 }, 5*time.Second, 5*time.Millisecond)

	meta, _ := json.Marshal(protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: "bob", By: "alice"})
	send(&protocol.Message{Seq: 3, MessageID: "m3", MessageType: protocol.TypeSystem, Meta: meta})
	send(&protocol.Message{Seq: 4, MessageID: "m4", MessageType: protocol.TypeText, Content: "after"})
	require.Eventually(t, func() bool { return hub.delivered("alice") == 4 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 2, hub.delivered("bob"), "bob gets his removal, nothing after it")
	require.Zero(t, hub.delivered("carol"), "carol is no member")

	l.mu.RLock()
	sub := l.subs["big"].sub
	l.mu.RUnlock()
	l.UserGone("alice")
	require.False(t, sub.IsValid(), "the last member here leaving ends the subscription")

	require.NoError(t, kv.Delete(ctx, "big"))
	require.Eventually(t, func() bool { _, ok := l.MemberCount("big"); return !ok }, 5*time.Second, 5*time.Millisecond)
}
