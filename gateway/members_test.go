package gateway

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/gateway/largechat"
	"github.com/natter-chat/natter/gateway/transport"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// readCounter is a real SQLite store that counts membership reads and may run a
// hook in the middle of one (after the store answered).
type readCounter struct {
	store.Store
	reads  atomic.Int64
	during func()
}

func (r *readCounter) GetMember(ctx context.Context, chat, user string) (store.Member, error) {
	r.reads.Add(1)
	mb, err := r.Store.GetMember(ctx, chat, user)
	if r.during != nil {
		r.during()
	}
	return mb, err
}

// memberFixture is a gateway with only its member cache and membership watches,
// over a SQLite store holding group g with alice and bob.
func memberFixture(t *testing.T) (*Gateway, *readCounter) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC()
	_, _, err = st.CreateChat(ctx, store.Chat{ID: "g", Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: now}, []store.Member{
		{ChatID: "g", UserID: "alice", Role: store.RoleAdmin, JoinedAt: now},
		{ChatID: "g", UserID: "bob", Role: store.RoleMember, JoinedAt: now}})
	require.NoError(t, err)
	rc := &readCounter{Store: st}
	h := transport.NewHub(nil, "natter.user.", 2, zap.NewNop())
	// ttl 0: only watched users' answers are cached, so every count below is theirs.
	g := &Gateway{hub: h, members: newMemberCache(rc, 16, 0)}
	g.large = largechat.New(largechat.Deps{Hub: h, Members: g.members, Events: &g.sysEvents, Subjects: subjects.New("", 1)}, zap.NewNop())
	return g, rc
}

func eventFrame(t *testing.T, chat string, ev protocol.SystemEvent) []byte {
	meta, err := json.Marshal(ev)
	require.NoError(t, err)
	return protocol.EncodeMessageFrame(&protocol.Message{ChatID: chat, Seq: 9, MessageID: "ev1", SenderID: ev.By,
		MessageType: protocol.TypeSystem, Meta: meta, Timestamp: 1})
}

// TestMemberCacheKeepsWatchedUntilEvent: a connected user's positive answer is read
// once and kept past the short TTL; each event that ends or changes their
// membership, seen on their deliveries, makes the next check read the store, and
// a removed member is refused with not_member.
func TestMemberCacheKeepsWatchedUntilEvent(t *testing.T) {
	ctx := context.Background()
	for _, ev := range []protocol.SystemEvent{
		{Event: protocol.EventMemberRemoved, UserID: "bob", By: "alice"},
		{Event: protocol.EventMemberLeft, UserID: "bob", By: "bob"},
		{Event: protocol.EventMembersRemoved, UserIDs: []string{"carol", "bob"}, By: "alice"},
		{Event: protocol.EventRoleChanged, UserID: "bob", Role: store.RoleAdmin, By: "alice"},
		{Event: protocol.EventChatDeleted, By: "alice"},
	} {
		t.Run(ev.Event, func(t *testing.T) {
			g, rc := memberFixture(t)
			g.members.watch("bob")
			for range 5 {
				require.NoError(t, g.members.checkSend(ctx, "g", "bob"))
			}
			require.EqualValues(t, 1, rc.reads.Load(), "one read for five checks")

			// Another user's event changes nothing for bob.
			g.userDelivery("bob", eventFrame(t, "g", protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: "dave", By: "alice"}))
			require.NoError(t, g.members.checkSend(ctx, "g", "bob"))
			require.EqualValues(t, 1, rc.reads.Load())

			// The change is in the store (the sequencer writes it before the event
			// is in the log), then the event reaches bob's deliveries here.
			require.NoError(t, rc.RemoveMembers(ctx, "g", []string{"bob"}))
			g.userDelivery("bob", eventFrame(t, "g", ev))
			err := g.members.checkSend(ctx, "g", "bob")
			require.EqualValues(t, 2, rc.reads.Load(), "the event made the next check read the store")
			var pe *protocol.Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, protocol.CodeNotMember, pe.Code)
		})
	}
}

// TestMemberCacheLargeChatRemoval: a removal seen on a large chat's log subject
// (largechat.Deliver) invalidates the removed member's answer.
func TestMemberCacheLargeChatRemoval(t *testing.T) {
	ctx := context.Background()
	g, rc := memberFixture(t)
	g.members.watch("bob")
	require.NoError(t, g.members.checkSend(ctx, "g", "bob"))
	require.NoError(t, rc.RemoveMembers(ctx, "g", []string{"bob"}))
	g.large.Deliver(&nats.Msg{Subject: "natter.log.g", Data: eventFrame(t, "g", protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: "bob", By: "alice"})})
	require.Error(t, g.members.checkSend(ctx, "g", "bob"))
	require.EqualValues(t, 2, rc.reads.Load())
}

// TestMemberCacheUnwatched: answers about users not connected here follow the
// short TTL (nothing tells this gateway of their changes); an answer cached while
// a user was connected is not trusted once they have left, nor after they
// reconnect (a removal while they were away went unseen).
func TestMemberCacheUnwatched(t *testing.T) {
	ctx := context.Background()
	g, rc := memberFixture(t)
	require.NoError(t, g.members.IsMember(ctx, "g", "bob"))
	require.NoError(t, g.members.IsMember(ctx, "g", "bob"))
	require.EqualValues(t, 2, rc.reads.Load(), "not watched, TTL 0: every check reads")

	g.members.watch("bob")
	require.NoError(t, g.members.IsMember(ctx, "g", "bob"))
	require.NoError(t, g.members.IsMember(ctx, "g", "bob"))
	require.EqualValues(t, 3, rc.reads.Load())
	g.members.unwatch("bob")
	g.members.watch("bob")
	require.NoError(t, rc.RemoveMembers(ctx, "g", []string{"bob"}))
	require.Error(t, g.members.IsMember(ctx, "g", "bob"), "the answer from before the reconnect is not trusted")
	require.EqualValues(t, 4, rc.reads.Load())
}

// TestMemberCacheMaxAge: a watched answer is trusted for watchedMaxAge at most.
func TestMemberCacheMaxAge(t *testing.T) {
	ctx := context.Background()
	g, rc := memberFixture(t)
	g.members.maxAge = 20 * time.Millisecond
	g.members.watch("bob")
	require.NoError(t, g.members.IsMember(ctx, "g", "bob"))
	require.Eventually(t, func() bool {
		_ = g.members.IsMember(ctx, "g", "bob")
		return rc.reads.Load() == 2
	}, 5*time.Second, 5*time.Millisecond)
}

// TestMemberCacheForgetDuringRead: an answer the store gave before a change that
// was forgotten while the read was in flight is not cached.
func TestMemberCacheForgetDuringRead(t *testing.T) {
	ctx := context.Background()
	g, rc := memberFixture(t)
	g.members.watch("bob")
	rc.during = func() { g.members.forget("g", "bob") }
	require.NoError(t, g.members.IsMember(ctx, "g", "bob"), "the store still said member")
	rc.during = nil
	require.NoError(t, rc.RemoveMembers(ctx, "g", []string{"bob"}))
	require.Error(t, g.members.IsMember(ctx, "g", "bob"))
	require.EqualValues(t, 2, rc.reads.Load())
}

// BenchmarkMemberCacheHit is the membership check of a send from a connected
// member whose answer is cached (the common case). Run with
// go test ./gateway -run '^$' -bench MemberCacheHit -benchmem
func BenchmarkMemberCacheHit(b *testing.B) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "db"))
	require.NoError(b, err)
	defer st.Close()
	now := time.Now().UTC()
	_, _, err = st.CreateChat(ctx, store.Chat{ID: "dm-alice-bob", Kind: store.KindDirect, CreatedBy: "alice", CreatedAt: now}, []store.Member{
		{ChatID: "dm-alice-bob", UserID: "alice", Role: store.RoleMember, JoinedAt: now},
		{ChatID: "dm-alice-bob", UserID: "bob", Role: store.RoleMember, JoinedAt: now}})
	require.NoError(b, err)
	m := newMemberCache(st, 100_000, 5*time.Second)
	m.watch("alice")
	require.NoError(b, m.checkSend(ctx, "dm-alice-bob", "alice"))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.checkSend(ctx, "dm-alice-bob", "alice"); err != nil {
			b.Fatal(err)
		}
	}
}
