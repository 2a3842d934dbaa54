package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Retention and deletion (docs/privacy.md), over REST and both client transports.

// restPage is the body of GET /api/v1/chats/{id}/messages.
type restPage struct {
	Messages     []protocol.Message `json:"messages"`
	HasMore      bool               `json:"hasMore"`
	RetainedFrom uint64             `json:"retainedFrom"`
}

// restHistory reads chat's first page (forward from after) over REST as user.
func restHistory(t *testing.T, n *testutil.Natter, chat, user string) restPage {
	t.Helper()
	var p restPage
	status, body := call(t, n, "GET", "/api/v1/chats/"+chat+"/messages?after=0", user, nil, &p)
	require.Equal(t, http.StatusOK, status, string(body))
	return p
}

// peerHistory asks for chat's history over p (forward from after 0).
func peerHistory(t *testing.T, p peer, chat string) *protocol.Frame {
	t.Helper()
	after := uint64(0)
	id := "h-" + chat + "-" + time.Now().Format("150405.000000000")
	p.frame(t, &protocol.Frame{Type: protocol.FrameHistory, ID: id, ChatID: chat, After: &after})
	for {
		f := p.next(t, protocol.FrameHistoryResult, protocol.FrameError)
		if f.ID == id {
			require.Equal(t, protocol.FrameHistoryResult, f.Type, "%+v", f)
			return f
		}
	}
}

func msgSeqs(ms []protocol.Message) []uint64 {
	out := []uint64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func TestDisappearingMessages(t *testing.T) {
	defer func(d time.Duration) { persister.SweepInterval = d }(persister.SweepInterval)
	persister.SweepInterval = 100 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := testutil.StartNatter(t, testutil.Config(t))
			chat := n.CreateChat(t, "alice", "group", "team", "bob")
			alice := n.Dial(t, "alice")
			bob, _ := tr.dial(t, n, "bob")
			_, err := alice.Send(ctxT(t, 5*time.Second), chat, "keep", "stays forever")
			require.NoError(t, err)
			bob.next(t, protocol.FrameMessage)

			// Only an admin may turn it on; the event is sequenced for everyone.
			status, body := call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "bob", map[string]int64{"messageTtl": 5}, nil)
			requireRefused(t, status, body, http.StatusForbidden, protocol.CodeForbidden)
			var ch change
			status, body = call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "alice", map[string]int64{"messageTtl": 5}, &ch)
			require.Equal(t, http.StatusOK, status, string(body))
			require.True(t, ch.Changed)
			require.EqualValues(t, 2, ch.Seq)
			f := bob.next(t, protocol.FrameMessage)
			require.EqualValues(t, 2, f.Seq)
			require.Equal(t, protocol.SystemEvent{Event: protocol.EventMessageTTLChanged, MessageTTL: 5, By: "alice"}, event(t, f))
			var got struct {
				MessageTTL int64 `json:"messageTtl"`
			}
			status, _ = call(t, n, "GET", "/api/v1/chats/"+chat, "bob", nil, &got)
			require.Equal(t, http.StatusOK, status)
			require.EqualValues(t, 5, got.MessageTTL)
			// The same again changes nothing.
			status, body = call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "alice", map[string]int64{"messageTtl": 5}, &ch)
			require.Equal(t, http.StatusOK, status, string(body))
			require.False(t, ch.Changed)

			// Messages after it carry their expiry, live and in history.
			ack, err := alice.Send(ctxT(t, 5*time.Second), chat, "gone", "zebra vanishes")
			require.NoError(t, err)
			require.NotNil(t, ack)
			f = bob.next(t, protocol.FrameMessage)
			require.EqualValues(t, 3, f.Seq)
			require.InDelta(t, f.Timestamp+5000, f.ExpiresAt, 1)
			h := peerHistory(t, bob, chat)
			require.Equal(t, []uint64{1, 2, 3}, msgSeqs(h.Messages))
			require.Equal(t, f.ExpiresAt, h.Messages[2].ExpiresAt)
			require.Zero(t, h.Messages[0].ExpiresAt, "what came before the change does not expire")

			// Once expired it is in no history, search or chat list, on any path.
			require.Eventually(t, func() bool {
				return len(restHistory(t, n, chat, "bob").Messages) == 2
			}, 15*time.Second, 200*time.Millisecond)
			require.Equal(t, []uint64{1, 2}, msgSeqs(peerHistory(t, bob, chat).Messages))
			// And the persister sweeps the row itself out of the SQLite file.
			require.Eventually(t, func() bool {
				_, err := n.Store.MessageSeq(ctxT(t, 5*time.Second), chat, "gone")
				return errors.Is(err, store.ErrNotFound)
			}, 10*time.Second, 100*time.Millisecond, "the expired row is swept")
			var found struct {
				Messages []protocol.Message `json:"messages"`
			}
			status, body = call(t, n, "GET", "/api/v1/search?q=zebra", "bob", nil, &found)
			require.Equal(t, http.StatusOK, status, string(body))
			require.Empty(t, found.Messages)
			var list struct {
				Chats []store.ChatSummary `json:"chats"`
			}
			status, body = call(t, n, "GET", "/api/v1/chats", "bob", nil, &list)
			require.Equal(t, http.StatusOK, status, string(body))
			require.Len(t, list.Chats, 1)
			if lm := list.Chats[0].LastMessage; lm != nil {
				require.NotEqual(t, "gone", lm.MessageID)
			}
			// An edit of an expired message is refused: it no longer exists.
			_, err = alice.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: protocol.FrameEdit, ChatID: chat,
				MessageID: "edit-gone", RefID: "gone", Content: "back?"})
			if err == nil { // acked by the gateway; the sequencer refuses it
				e := nextFrame(t, alice, 10*time.Second, "error for edit-gone", func(f *protocol.Frame) bool {
					return f.Type == protocol.FrameError && f.MessageID == "edit-gone"
				})
				require.Equal(t, protocol.CodeNotFound, e.Code)
			}

			// Off again: new messages do not expire.
			status, body = call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "alice", map[string]int64{"messageTtl": 0}, &ch)
			require.Equal(t, http.StatusOK, status, string(body))
			_, err = alice.Send(ctxT(t, 5*time.Second), chat, "after", "forever again")
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				p := restHistory(t, n, chat, "bob")
				last := p.Messages[len(p.Messages)-1]
				return last.MessageID == "after" && last.ExpiresAt == 0
			}, 10*time.Second, 100*time.Millisecond)
		})
	}
}

func TestServerRetentionStampsExpiry(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Sequencer.Retention = time.Hour
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "team", "bob")
	alice := n.Dial(t, "alice")
	_, err := alice.Send(ctxT(t, 5*time.Second), chat, "r1", "kept an hour")
	require.NoError(t, err)
	f := next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, f.Timestamp+time.Hour.Milliseconds(), f.ExpiresAt)
	// A chat's shorter TTL wins; a longer one is capped by the retention.
	status, body := call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "alice", map[string]int64{"messageTtl": 60}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	next(t, alice, protocol.FrameMessage, 5*time.Second)
	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "r2", "a minute")
	require.NoError(t, err)
	f = next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, f.Timestamp+60_000, f.ExpiresAt)
	status, body = call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "alice", map[string]int64{"messageTtl": 7 * 24 * 3600}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	next(t, alice, protocol.FrameMessage, 5*time.Second)
	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "r3", "still an hour")
	require.NoError(t, err)
	f = next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, f.Timestamp+time.Hour.Milliseconds(), f.ExpiresAt)
}

func TestChatTTLBadInput(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "team", "bob")
	direct := n.CreateChat(t, "alice", "direct", "", "bob")
	path := "/api/v1/chats/" + chat + "/ttl"
	for _, tc := range []struct {
		name   string
		user   string
		path   string
		body   any
		status int
		code   protocol.Code
	}{
		{"malformed", "alice", path, []byte(`{"messageTtl":`), 400, protocol.CodeBadRequest},
		{"missing", "alice", path, map[string]any{}, 400, protocol.CodeBadRequest},
		{"string", "alice", path, map[string]any{"messageTtl": "5"}, 400, protocol.CodeBadRequest},
		{"negative", "alice", path, map[string]any{"messageTtl": -1}, 400, protocol.CodeBadRequest},
		{"too short", "alice", path, map[string]any{"messageTtl": 1}, 400, protocol.CodeBadRequest},
		{"too long", "alice", path, map[string]any{"messageTtl": store.MaxMessageTTL + 1}, 400, protocol.CodeBadRequest},
		{"huge", "alice", path, []byte(`{"messageTtl":1e30}`), 400, protocol.CodeBadRequest},
		{"oversize", "alice", path, map[string]any{"messageTtl": 5, "pad": strings.Repeat("x", 2<<20)}, 413, protocol.CodeTooLarge},
		{"member", "bob", path, map[string]any{"messageTtl": 5}, 403, protocol.CodeForbidden},
		{"stranger", "mallory", path, map[string]any{"messageTtl": 5}, 403, protocol.CodeNotMember},
		{"bad chat id", "alice", "/api/v1/chats/a.b/ttl", map[string]any{"messageTtl": 5}, 400, protocol.CodeInvalidID},
		{"unknown chat", "alice", "/api/v1/chats/nope/ttl", map[string]any{"messageTtl": 5}, 403, protocol.CodeNotMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, n, "PUT", tc.path, tc.user, tc.body, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	status, body := n.Do(t, "PUT", path, "", map[string]int64{"messageTtl": 5})
	requireRefused(t, status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	// Nothing changed.
	var got struct {
		MessageTTL int64 `json:"messageTtl"`
	}
	call(t, n, "GET", "/api/v1/chats/"+chat, "alice", nil, &got)
	require.Zero(t, got.MessageTTL)
	require.Zero(t, lastSeq(t, n, chat))
	// Either member of a direct chat may set it.
	status, body = call(t, n, "PUT", "/api/v1/chats/"+direct+"/ttl", "bob", map[string]int64{"messageTtl": 86400}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
}

func TestClearHistoryForOneself(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := testutil.StartNatter(t, testutil.Config(t))
			chat := n.CreateChat(t, "alice", "group", "team", "bob")
			alice := n.Dial(t, "alice")
			for _, id := range []string{"m1", "m2", "m3"} {
				_, err := alice.Send(ctxT(t, 5*time.Second), chat, id, "text "+id)
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool { return lastSeq(t, n, chat) == 3 }, 5*time.Second, 50*time.Millisecond)
			var ans struct {
				Floor        uint64 `json:"floor"`
				RetainedFrom uint64 `json:"retainedFrom"`
			}
			status, body := call(t, n, "POST", "/api/v1/chats/"+chat+"/clear", "bob", map[string]uint64{"seq": 2}, &ans)
			require.Equal(t, http.StatusOK, status, string(body))
			require.EqualValues(t, 2, ans.Floor)
			require.EqualValues(t, 3, ans.RetainedFrom)

			bob, _ := tr.dial(t, n, "bob")
			h := peerHistory(t, bob, chat)
			require.Equal(t, []uint64{3}, msgSeqs(h.Messages))
			require.EqualValues(t, 3, h.RetainedFrom)
			p := restHistory(t, n, chat, "bob")
			require.Equal(t, []uint64{3}, msgSeqs(p.Messages))
			require.EqualValues(t, 3, p.RetainedFrom)
			require.Equal(t, []uint64{1, 2, 3}, msgSeqs(restHistory(t, n, chat, "alice").Messages), "only bob's view")
			// Sync from 0 starts after the floor and says so.
			bob.frame(t, &protocol.Frame{Type: protocol.FrameSync, ID: "s1", Chats: []protocol.ChatCursor{{ChatID: chat, Seq: 0}}})
			m := bob.next(t, protocol.FrameMessage)
			require.EqualValues(t, 3, m.Seq)
			synced := bob.next(t, protocol.FrameSynced)
			require.Equal(t, []protocol.ChatCursor{{ChatID: chat, Seq: 3, RetainedFrom: 3}}, synced.Chats)
			require.Eventually(t, func() bool { // the count is the store's: once seq 3 is stored
				var list struct {
					Chats []store.ChatSummary `json:"chats"`
				}
				call(t, n, "GET", "/api/v1/chats", "bob", nil, &list)
				return list.Chats[0].Unread == 1
			}, 10*time.Second, 50*time.Millisecond, "only seq 3 is unread")

			// No body: everything so far.
			status, body = call(t, n, "POST", "/api/v1/chats/"+chat+"/clear", "bob", nil, &ans)
			require.Equal(t, http.StatusOK, status, string(body))
			require.EqualValues(t, 3, ans.Floor)
			require.Empty(t, peerHistory(t, bob, chat).Messages)
		})
	}
}

func TestClearHistoryBadInput(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "team", "bob")
	path := "/api/v1/chats/" + chat + "/clear"
	for _, tc := range []struct {
		name   string
		user   string
		path   string
		body   any
		status int
		code   protocol.Code
	}{
		{"malformed", "bob", path, []byte(`{"seq":`), 400, protocol.CodeBadRequest},
		{"string", "bob", path, map[string]any{"seq": "2"}, 400, protocol.CodeBadRequest},
		{"negative", "bob", path, map[string]any{"seq": -2}, 400, protocol.CodeBadRequest},
		{"oversize", "bob", path, map[string]any{"seq": 1, "pad": strings.Repeat("x", 2<<20)}, 413, protocol.CodeTooLarge},
		{"stranger", "mallory", path, map[string]any{"seq": 1}, 403, protocol.CodeNotMember},
		{"bad chat id", "bob", "/api/v1/chats/a*b/clear", nil, 400, protocol.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, n, "POST", tc.path, tc.user, tc.body, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	status, body := n.Do(t, "POST", path, "", nil)
	requireRefused(t, status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	f, err := n.Store.HistoryFloor(ctxT(t, 5*time.Second), chat, "bob")
	require.NoError(t, err)
	require.Zero(t, f, "nothing changed")
}

func TestDeleteChat(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := testutil.StartNatter(t, testutil.Config(t))
			chat := n.CreateChat(t, "alice", "group", "team", "bob")
			direct := n.CreateChat(t, "alice", "direct", "", "bob")
			alice := n.Dial(t, "alice")
			_, err := alice.Send(ctxT(t, 5*time.Second), chat, "s1", "secret plans")
			require.NoError(t, err)
			bob, _ := tr.dial(t, n, "bob")

			status, body := call(t, n, "DELETE", "/api/v1/chats/"+chat, "bob", nil, nil)
			requireRefused(t, status, body, http.StatusForbidden, protocol.CodeForbidden)
			status, body = call(t, n, "DELETE", "/api/v1/chats/"+chat, "mallory", nil, nil)
			requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
			status, body = call(t, n, "DELETE", "/api/v1/chats/"+direct, "alice", nil, nil)
			requireRefused(t, status, body, http.StatusConflict, protocol.CodeConflict)
			status, body = n.Do(t, "DELETE", "/api/v1/chats/"+chat, "", nil)
			requireRefused(t, status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
			status, body = call(t, n, "DELETE", "/api/v1/chats/a.b", "alice", nil, nil)
			requireRefused(t, status, body, http.StatusBadRequest, protocol.CodeInvalidID)

			var ch change
			status, body = call(t, n, "DELETE", "/api/v1/chats/"+chat, "alice", nil, &ch)
			require.Equal(t, http.StatusOK, status, string(body))
			require.EqualValues(t, 2, ch.Seq)
			f := bob.next(t, protocol.FrameMessage)
			for f.Seq != 2 {
				f = bob.next(t, protocol.FrameMessage)
			}
			require.Equal(t, protocol.SystemEvent{Event: protocol.EventChatDeleted, By: "alice"}, event(t, f))

			// Gone for everyone, on every path; the ID is never used again.
			for _, u := range []string{"alice", "bob"} {
				status, body = call(t, n, "GET", "/api/v1/chats/"+chat+"/messages", u, nil, nil)
				requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
			}
			bob.frame(t, &protocol.Frame{Type: protocol.FrameHistory, ID: "h", ChatID: chat})
			e := bob.next(t, protocol.FrameError)
			require.Equal(t, protocol.CodeNotMember, e.Code)
			_, err = alice.Send(ctxT(t, 5*time.Second), chat, "s2", "still here?")
			require.Error(t, err)
			var list struct {
				Chats []store.ChatSummary `json:"chats"`
			}
			call(t, n, "GET", "/api/v1/chats", "bob", nil, &list)
			for _, c := range list.Chats {
				require.NotEqual(t, chat, c.ID)
			}
			require.Eventually(t, func() bool {
				ms, err := readAll(n.Store, chat)
				return err == nil && len(ms) == 0
			}, 10*time.Second, 100*time.Millisecond, "the persister erases what it stored after the deletion")
			_, _, err = n.Store.CreateChat(ctxT(t, 5*time.Second), store.Chat{ID: chat, Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: time.Now()}, nil)
			require.ErrorIs(t, err, store.ErrChatDeleted, "the ID is never used again")
		})
	}
}

func TestEraseAccount(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n := testutil.StartNatterLog(t, testutil.Config(t), zap.New(core))
	group := n.CreateChat(t, "alice", "group", "team", "bob", "carol")
	direct := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	_, err := alice.Send(ctxT(t, 5*time.Second), group, "a1", "alice secret")
	require.NoError(t, err)
	_, err = alice.Send(ctxT(t, 5*time.Second), direct, "a2", "alice private")
	require.NoError(t, err)
	_, err = bob.Send(ctxT(t, 5*time.Second), group, "b1", "bob public")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ms, err := readAll(n.Store, group)
		return err == nil && len(ms) == 2
	}, 10*time.Second, 50*time.Millisecond)
	sse, _ := dialSSE(t, n, "alice")
	admin := n.ScopedServiceToken(t, "ops", protocol.ScopeAccountsAdmin)

	// Refused to all but an accounts:admin service, and for bad IDs.
	for _, tc := range []struct {
		name, token, path string
		status            int
		code              protocol.Code
	}{
		{"no token", "", "/api/v1/admin/users/alice", 401, protocol.CodeUnauthorized},
		{"user token", n.Token(t, "bob"), "/api/v1/admin/users/alice", 403, protocol.CodeForbidden},
		{"self", n.Token(t, "alice"), "/api/v1/admin/users/alice", 403, protocol.CodeForbidden},
		{"scope on a user token", n.TokenWithScope(t, "bob", protocol.ScopeAccountsAdmin), "/api/v1/admin/users/alice", 403, protocol.CodeForbidden},
		{"service without scope", n.ServiceToken(t, "ops"), "/api/v1/admin/users/alice", 403, protocol.CodeForbidden},
		{"chats:admin is not enough", n.ScopedServiceToken(t, "ops", protocol.ScopeChatsAdmin), "/api/v1/admin/users/alice", 403, protocol.CodeForbidden},
		{"bad id", admin, "/api/v1/admin/users/a.b", 400, protocol.CodeInvalidID},
		{"long id", admin, "/api/v1/admin/users/" + strings.Repeat("x", 65), 400, protocol.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.Do(t, "DELETE", tc.path, tc.token, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	require.Len(t, members(t, n, group, "bob"), 3, "nothing changed")

	var ans struct {
		UserID     string `json:"userId"`
		Messages   int    `json:"messages"`
		Chats      int    `json:"chats"`
		GroupsLeft int    `json:"groupsLeft"`
	}
	status, body := n.Do(t, "DELETE", "/api/v1/admin/users/alice", admin, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &ans))
	require.Equal(t, "alice", ans.UserID)
	require.Equal(t, 1, ans.GroupsLeft, "the group, by a sequenced removal")
	require.Equal(t, 1, ans.Chats, "the direct chat, by the store")
	require.GreaterOrEqual(t, ans.Messages, 2)

	// Her live connections are closed, on both transports, and her tokens refused.
	select {
	case <-alice.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("alice's WebSocket is still open")
	}
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-sse.(*ssePeer).frames:
			return !ok
		default:
			return false
		}
	}, 10*time.Second, 20*time.Millisecond, "alice's event stream is still open")
	status, body = call(t, n, "GET", "/api/v1/chats", "alice", nil, nil)
	requireRefused(t, status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	_, refused := dialWS(t, n, "alice")
	require.Equal(t, http.StatusUnauthorized, refused)
	_, refused = dialSSE(t, n, "alice")
	require.Equal(t, http.StatusUnauthorized, refused)

	// Bob sees her removal, and her messages as tombstones with their seqs. She was
	// the group's only admin: bob, its first other member, was made admin first.
	require.Equal(t, []string{"bob:admin", "carol:member"}, members(t, n, group, "bob"))
	p := restHistory(t, n, group, "bob")
	var sawTombstone bool
	for _, m := range p.Messages {
		if m.MessageID == "a1" {
			sawTombstone = true
			require.True(t, m.Deleted)
			require.Empty(t, m.Content)
			require.Equal(t, "alice", m.SenderID)
		}
		if m.MessageID == "b1" {
			require.Equal(t, "bob public", m.Content)
		}
	}
	require.True(t, sawTombstone)
	d := restHistory(t, n, direct, "bob")
	require.Len(t, d.Messages, 1)
	require.True(t, d.Messages[0].Deleted)

	// One audit line.
	require.Len(t, logs.FilterMessage("account erased").FilterField(zap.String("audit", "account_erased")).All(), 1)
	line := logs.FilterMessage("account erased").All()[0]
	require.Equal(t, "alice", line.ContextMap()["user_id"])
	require.Equal(t, "ops", line.ContextMap()["by"])

	// Again: harmless.
	status, body = n.Do(t, "DELETE", "/api/v1/admin/users/alice", admin, nil)
	require.Equal(t, http.StatusOK, status, string(body))
}

// TestPushNeverPreviewsDisappearingMessages: an offline member is notified of a
// disappearing message, without its text (a push provider and the device would keep
// it beyond the message's life).
func TestPushNeverPreviewsDisappearingMessages(t *testing.T) {
	rcv := newReceiver(t)
	cfg := presenceConfig(t)
	rcv.configure(t, cfg)
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "Team", "bob")
	status, body := call(t, n, "PUT", "/api/v1/chats/"+chat+"/ttl", "alice", map[string]int64{"messageTtl": 3600}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	sendBurst(t, n, "alice", chat, "d", 1)
	require.Eventually(t, func() bool { return len(rcv.notifications()) > 0 }, 10*time.Second, 20*time.Millisecond)
	note := rcv.notifications()[0]
	require.Equal(t, "bob", note.UserID)
	require.Equal(t, "d1", note.LastMessage.MessageID)
	require.Empty(t, note.LastMessage.Content, "no preview of a disappearing message")
}
