package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/pkg/client"
	hist "github.com/natter-chat/natter/pkg/history"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// restErr is the error body of a REST call.
type restErr struct {
	Error struct {
		Code protocol.Code `json:"code"`
	} `json:"error"`
}

// requireRefused asserts a REST answer is status with error code.
func requireRefused(t *testing.T, status int, body []byte, wantStatus int, wantCode protocol.Code) {
	t.Helper()
	require.Equal(t, wantStatus, status, string(body))
	var e restErr
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.Equal(t, wantCode, e.Error.Code, string(body))
}

// change is the answer to a membership or name change.
type change struct {
	ChatID    string        `json:"chatId"`
	Changed   bool          `json:"changed"`
	MessageID string        `json:"messageId"`
	Seq       uint64        `json:"seq"`
	Member    *store.Member `json:"member"`
	Name      *string       `json:"name"`
}

// call makes a REST call as user ("" for none) and decodes a 2xx answer into out.
func call(t *testing.T, n *testutil.Natter, method, path, user string, body, out any) (int, []byte) {
	t.Helper()
	tok := ""
	if user != "" {
		tok = n.Token(t, user)
	}
	status, raw := n.Do(t, method, path, tok, body)
	if out != nil && status/100 == 2 {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return status, raw
}

// members returns chat's members (as user sees them) as "user:role".
func members(t *testing.T, n *testutil.Natter, chat, user string) []string {
	t.Helper()
	var r struct {
		Members []store.Member `json:"members"`
	}
	status, body := call(t, n, "GET", "/api/v1/chats/"+chat+"/members", user, nil, &r)
	require.Equal(t, http.StatusOK, status, string(body))
	var out []string
	for _, m := range r.Members {
		out = append(out, m.UserID+":"+m.Role)
	}
	return out
}

// event returns the system event of a message frame, failing if it is none.
func event(t *testing.T, f *protocol.Frame) protocol.SystemEvent {
	t.Helper()
	require.Equal(t, protocol.TypeSystem, f.MessageType, "%+v", f)
	var ev protocol.SystemEvent
	require.NoError(t, client.DecodeMeta(f, &ev))
	return ev
}

// lastSeq is chat's last sequenced seq, read through the store and the log tail.
func lastSeq(t *testing.T, n *testutil.Natter, chat string) uint64 {
	t.Helper()
	hr := &hist.Reader{Store: n.Store, JS: n.JS, Subjects: n.Config.NATS.Subjects(), Consumer: subjects.PersisterConsumer}
	seq, err := hr.LastSeq(ctxT(t, 5*time.Second), chat)
	require.NoError(t, err)
	return seq
}

func TestGroupMembershipChanges(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "team", "bob")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	require.Equal(t, []string{"alice:admin", "bob:member"}, members(t, n, chat, "bob"))

	// Add carol: every member, carol included, sees the event with the same seq.
	var ch change
	status, body := call(t, n, "POST", "/api/v1/chats/"+chat+"/members", "alice", map[string]string{"userId": "carol"}, &ch)
	require.Equal(t, http.StatusCreated, status, string(body))
	require.True(t, ch.Changed)
	require.EqualValues(t, 1, ch.Seq, "the answer waits until the event is sequenced")
	require.Equal(t, "carol", ch.Member.UserID)
	require.Equal(t, store.RoleMember, ch.Member.Role)
	for _, c := range []*client.Conn{alice, bob, carol} {
		f := next(t, c, protocol.FrameMessage, 5*time.Second)
		require.EqualValues(t, 1, f.Seq)
		require.Equal(t, ch.MessageID, f.MessageID)
		require.Equal(t, protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "carol", Role: store.RoleMember, By: "alice"}, event(t, f))
	}
	require.Equal(t, []string{"alice:admin", "bob:member", "carol:member"}, members(t, n, chat, "carol"))
	_, err := carol.Send(ctxT(t, 5*time.Second), chat, "c-1", "hi all")
	require.NoError(t, err, "carol may send at once")
	collect(t, bob, 1, 5*time.Second)
	collect(t, alice, 1, 5*time.Second)
	collect(t, carol, 1, 5*time.Second)

	// Make bob an admin; asking for what already is changes nothing.
	status, body = call(t, n, "POST", "/api/v1/chats/"+chat+"/members", "alice", map[string]string{"userId": "bob", "role": "admin"}, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: "bob", Role: store.RoleAdmin, By: "alice"},
		event(t, next(t, carol, protocol.FrameMessage, 5*time.Second)))
	require.Equal(t, []string{"alice:admin", "bob:admin", "carol:member"}, members(t, n, chat, "alice"))
	status, body = call(t, n, "POST", "/api/v1/chats/"+chat+"/members", "bob", map[string]string{"userId": "bob", "role": "admin"}, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	require.False(t, ch.Changed)
	require.EqualValues(t, 3, lastSeq(t, n, chat), "no event for no change")

	// Rename (by the new admin).
	status, body = call(t, n, "PATCH", "/api/v1/chats/"+chat, "bob", map[string]string{"name": "  the team  "}, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "the team", *ch.Name)
	require.Equal(t, protocol.SystemEvent{Event: protocol.EventChatRenamed, Name: "the team", By: "bob"},
		event(t, next(t, carol, protocol.FrameMessage, 5*time.Second)))
	var got struct {
		store.Chat
		Members []store.Member `json:"members"`
	}
	status, body = call(t, n, "GET", "/api/v1/chats/"+chat, "carol", nil, &got)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "the team", got.Name)
	require.Len(t, got.Members, 3)

	// Carol leaves: she receives her departure, then nothing more.
	status, body = call(t, n, "POST", "/api/v1/chats/"+chat+"/leave", "carol", nil, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: "carol", By: "carol"},
		event(t, next(t, carol, protocol.FrameMessage, 5*time.Second)))
	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "a-1", "bye carol")
	require.NoError(t, err)
	quiet(t, carol, 300*time.Millisecond)

	// Removing oneself is leaving; bob (admin) removes alice (admin) with the body form.
	status, body = call(t, n, "DELETE", "/api/v1/chats/"+chat+"/members", "bob", map[string]string{"userId": "alice"}, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, []string{"bob:admin"}, members(t, n, chat, "bob"))
	// The last member may leave; the chat stays, empty.
	status, body = call(t, n, "DELETE", "/api/v1/chats/"+chat+"/members/bob", "bob", nil, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = call(t, n, "GET", "/api/v1/chats/"+chat+"/members", "bob", nil, nil)
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
}

func TestRemovedMemberStopsReceivingAtOnce(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	ack, err := bob.Send(ctxT(t, 5*time.Second), chat, "b-1", "my message")
	require.NoError(t, err)
	for _, c := range []*client.Conn{alice, bob, carol} {
		collect(t, c, 1, 5*time.Second)
	}
	// bob reads history once, so any cache of his membership is warm.
	_, err = bob.HistoryBefore(ctxT(t, 5*time.Second), chat, 0, 10)
	require.NoError(t, err)

	var ch change
	status, body := call(t, n, "DELETE", "/api/v1/chats/"+chat+"/members/bob", "alice", nil, &ch)
	require.Equal(t, http.StatusOK, status, string(body))
	require.EqualValues(t, 2, ch.Seq)
	f := next(t, bob, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, 2, f.Seq, "bob receives his removal, in order")
	require.Equal(t, protocol.EventMemberRemoved, event(t, f).Event)

	// The conversation goes on without him, live and in history.
	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "a-after", "after bob left")
	require.NoError(t, err)
	for _, c := range []*client.Conn{alice, carol} {
		got := collect(t, c, 2, 5*time.Second)
		require.Equal(t, []uint64{2, 3}, []uint64{got[0].Seq, got[1].Seq})
	}
	quiet(t, bob, 300*time.Millisecond)

	_, err = bob.HistoryBefore(ctxT(t, 5*time.Second), chat, 0, 10)
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "history frame")
	_, err = bob.Sync(ctxT(t, 5*time.Second), []protocol.ChatCursor{{ChatID: chat, Seq: 1}})
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "sync frame")
	status, body = n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages?after=0", n.Token(t, "bob"), nil)
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
	_, err = bob.Send(ctxT(t, 5*time.Second), chat, "b-2", "can I still?")
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "send")
	_, err = bob.Edit(ctxT(t, 5*time.Second), chat, ack.MessageID, "edited after removal")
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "edit")
	synced, err := bob.Sync(ctxT(t, 5*time.Second), nil)
	require.NoError(t, err)
	for _, c := range synced.Chats {
		require.NotEqual(t, chat, c.ChatID, "the chat is not among bob's chats")
	}
	var list struct {
		Chats []store.ChatSummary `json:"chats"`
	}
	_, _ = call(t, n, "GET", "/api/v1/chats", "bob", nil, &list)
	require.Empty(t, list.Chats)
	quiet(t, carol, 200*time.Millisecond)
	require.EqualValues(t, 3, lastSeq(t, n, chat), "none of bob's attempts was sequenced")
	page := history(t, n, "carol", chat, "?after=0")
	require.Equal(t, []uint64{1, 2, 3}, seqsOf(page.Messages))
	require.Equal(t, protocol.TypeSystem, page.Messages[1].MessageType)
}

func TestChatChangeRefusals(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "dave")
	direct := n.CreateChat(t, "alice", "direct", "", "bob")
	status, body := call(t, n, "DELETE", "/api/v1/chats/"+chat+"/members/dave", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	// The removal is in the store when the call returns; its event reaches the log
	// a moment later (the sequencer writes the store first).
	require.Eventually(t, func() bool { return lastSeq(t, n, chat) == 1 }, 5*time.Second, 10*time.Millisecond)
	before := members(t, n, chat, "alice")
	seq := lastSeq(t, n, chat)
	big := `{"userId":"carol","role":"` + strings.Repeat("x", 70<<10) + `"}`
	m := "/api/v1/chats/" + chat + "/members"
	for _, tc := range []struct {
		name, user, method, path string
		body                     any
		status                   int
		code                     protocol.Code
	}{
		{"no token: list", "", "GET", m, nil, 401, protocol.CodeUnauthorized},
		{"no token: add", "", "POST", m, map[string]string{"userId": "carol"}, 401, protocol.CodeUnauthorized},
		{"non-member: get chat", "mallory", "GET", "/api/v1/chats/" + chat, nil, 403, protocol.CodeNotMember},
		{"non-member: list", "mallory", "GET", m, nil, 403, protocol.CodeNotMember},
		{"non-member: add", "mallory", "POST", m, map[string]string{"userId": "mallory"}, 403, protocol.CodeNotMember},
		{"non-member: remove", "mallory", "DELETE", m + "/bob", nil, 403, protocol.CodeNotMember},
		{"non-member: rename", "mallory", "PATCH", "/api/v1/chats/" + chat, map[string]string{"name": "x"}, 403, protocol.CodeNotMember},
		{"non-member: leave", "mallory", "POST", "/api/v1/chats/" + chat + "/leave", nil, 403, protocol.CodeNotMember},
		{"non-admin: add", "bob", "POST", m, map[string]string{"userId": "carol"}, 403, protocol.CodeForbidden},
		{"non-admin: remove", "bob", "DELETE", m + "/alice", nil, 403, protocol.CodeForbidden},
		{"non-admin: promote self", "bob", "POST", m, map[string]string{"userId": "bob", "role": "admin"}, 403, protocol.CodeForbidden},
		{"non-admin: rename", "bob", "PATCH", "/api/v1/chats/" + chat, map[string]string{"name": "x"}, 403, protocol.CodeForbidden},
		{"removed member: list", "dave", "GET", m, nil, 403, protocol.CodeNotMember},
		{"removed member: add self back", "dave", "POST", m, map[string]string{"userId": "dave"}, 403, protocol.CodeNotMember},
		{"removed member: leave", "dave", "POST", "/api/v1/chats/" + chat + "/leave", nil, 403, protocol.CodeNotMember},
		{"unknown chat", "alice", "GET", "/api/v1/chats/nosuchchat/members", nil, 403, protocol.CodeNotMember},
		{"unknown chat: add", "alice", "POST", "/api/v1/chats/nosuchchat/members", map[string]string{"userId": "bob"}, 403, protocol.CodeNotMember},
		{"invalid chat id", "alice", "GET", "/api/v1/chats/a%2Eb/members", nil, 400, protocol.CodeInvalidID},
		{"unknown member", "alice", "DELETE", m + "/nobody", nil, 404, protocol.CodeNotFound},
		{"invalid member id", "alice", "DELETE", m + "/a%2Eb", nil, 400, protocol.CodeInvalidID},
		{"malformed body", "alice", "POST", m, `{"userId":`, 400, protocol.CodeBadRequest},
		{"unknown field", "alice", "POST", m, `{"userId":"carol","admin":true}`, 400, protocol.CodeBadRequest},
		{"trailing data", "alice", "POST", m, `{"userId":"carol"} {}`, 400, protocol.CodeBadRequest},
		{"bad role", "alice", "POST", m, map[string]string{"userId": "carol", "role": "owner"}, 400, protocol.CodeBadRequest},
		{"invalid user id", "alice", "POST", m, map[string]string{"userId": "carol.x"}, 400, protocol.CodeInvalidID},
		{"missing user id", "alice", "POST", m, map[string]string{}, 400, protocol.CodeInvalidID},
		{"oversize body", "alice", "POST", m, big, 413, protocol.CodeTooLarge},
		{"remove: malformed body", "alice", "DELETE", m, `[`, 400, protocol.CodeBadRequest},
		{"rename: no name", "alice", "PATCH", "/api/v1/chats/" + chat, map[string]string{}, 400, protocol.CodeBadRequest},
		{"rename: control character", "alice", "PATCH", "/api/v1/chats/" + chat, map[string]string{"name": "a\u202eb"}, 400, protocol.CodeBadRequest},
		{"rename: too long", "alice", "PATCH", "/api/v1/chats/" + chat, map[string]string{"name": strings.Repeat("n", gateway.MaxChatName+1)}, 413, protocol.CodeTooLarge},
		{"direct: add", "alice", "POST", "/api/v1/chats/" + direct + "/members", map[string]string{"userId": "carol"}, 409, protocol.CodeConflict},
		{"direct: remove", "alice", "DELETE", "/api/v1/chats/" + direct + "/members/bob", nil, 409, protocol.CodeConflict},
		{"direct: rename", "alice", "PATCH", "/api/v1/chats/" + direct, map[string]string{"name": "x"}, 409, protocol.CodeConflict},
		{"direct: leave", "bob", "POST", "/api/v1/chats/" + direct + "/leave", nil, 409, protocol.CodeConflict},
		{"last admin leaves", "alice", "POST", "/api/v1/chats/" + chat + "/leave", nil, 409, protocol.CodeConflict},
		{"last admin demotes self", "alice", "POST", m, map[string]string{"userId": "alice", "role": "member"}, 409, protocol.CodeConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, n, tc.method, tc.path, tc.user, tc.body, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	require.Equal(t, before, members(t, n, chat, "alice"), "no refused call changed the members")
	require.Equal(t, seq, lastSeq(t, n, chat), "no refused call sequenced an event")
	c, err := n.Store.GetChat(ctxT(t, time.Second), chat)
	require.NoError(t, err)
	require.Equal(t, "g", c.Name)
	require.Equal(t, []string{"alice:member", "bob:member"}, members(t, n, direct, "bob"))
}

func TestChatListPagesByCursor(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	var chats []string
	for i := 0; i < 5; i++ {
		chats = append(chats, n.CreateChat(t, "alice", "group", fmt.Sprintf("g%d", i), "bob"))
	}
	bob := n.Dial(t, "bob")
	for i, c := range chats { // activity: chats[4] newest
		_, err := bob.Send(ctxT(t, 5*time.Second), c, fmt.Sprintf("m%d", i), fmt.Sprintf("hello %d", i))
		require.NoError(t, err)
		collect(t, bob, 1, 5*time.Second)
	}
	type listPage struct {
		Chats   []store.ChatSummary `json:"chats"`
		HasMore bool                `json:"hasMore"`
		Cursor  string              `json:"cursor"`
	}
	ids := func(p listPage) []string {
		var out []string
		for _, c := range p.Chats {
			out = append(out, c.ID)
		}
		return out
	}
	require.Eventually(t, func() bool { // the list is read from the store
		for _, c := range chats {
			if last, _ := n.Store.LastSeq(ctxT(t, time.Second), c); last != 1 {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond)
	var all, p1 listPage
	status, body := call(t, n, "GET", "/api/v1/chats?limit=5", "alice", nil, &all)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, all.Chats, 5)
	require.True(t, all.HasMore, "a full page says there may be more")
	for _, c := range all.Chats {
		require.EqualValues(t, 1, c.Unread)
		require.Equal(t, "bob", c.LastMessage.SenderID)
		require.False(t, c.LastActivity.IsZero())
	}
	status, body = call(t, n, "GET", "/api/v1/chats?limit=2", "alice", nil, &p1)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, ids(all)[:2], ids(p1))
	require.True(t, p1.HasMore)
	require.NotEmpty(t, p1.Cursor)

	// Between pages the oldest chat becomes active and alice leaves the newest: the
	// cursor neither repeats nor skips a chat.
	_, err := bob.Send(ctxT(t, 5*time.Second), all.Chats[4].ID, "late", "late")
	require.NoError(t, err)
	first := all.Chats[0].ID
	status, body = call(t, n, "POST", "/api/v1/chats/"+first+"/members", "alice", map[string]string{"userId": "bob", "role": "admin"}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = call(t, n, "POST", "/api/v1/chats/"+first+"/leave", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Eventually(t, func() bool {
		last, _ := n.Store.LastSeq(ctxT(t, time.Second), all.Chats[4].ID)
		return last == 2
	}, 5*time.Second, 20*time.Millisecond)
	var p2 listPage
	_, _ = call(t, n, "GET", "/api/v1/chats?limit=2&cursor="+p1.Cursor, "alice", nil, &p2)
	require.Equal(t, ids(all)[2:4], ids(p2))

	for _, q := range []string{"?cursor=x", "?cursor=12.a.b", "?cursor=-1.abc", "?cursor=" + p1.Cursor + "&offset=2", "?limit=0", "?limit=501"} {
		status, body := call(t, n, "GET", "/api/v1/chats"+q, "alice", nil, nil)
		requireRefused(t, status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	}
}
