package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// The authorization matrix: every chat-scoped REST endpoint and frame type against
// every role, each cell asserted. Roles, for a group chat created per cell:
const (
	roleStranger = "stranger" // never a member
	roleRemoved  = "removed"  // was a member, removed by the admin
	roleMember   = "member"   // a plain member, author of the chat's first message
	roleAdmin    = "admin"    // the chat's creator and admin
	roleService  = "service"  // a service token (a bot/backend), not a member
)

var roles = []string{roleStranger, roleRemoved, roleMember, roleService, roleAdmin}

// roleUser is each role's user ID.
var roleUser = map[string]string{roleStranger: "str", roleRemoved: "rem", roleMember: "mem", roleAdmin: "ann", roleService: "bot"}

// cell is one expected outcome: an HTTP status (REST) and an error code ("" for
// success).
type cell struct {
	status int
	code   protocol.Code
}

var (
	ok        = cell{status: http.StatusOK}
	created   = cell{status: http.StatusCreated}
	notMember = cell{http.StatusForbidden, protocol.CodeNotMember}
	forbidden = cell{http.StatusForbidden, protocol.CodeForbidden}
)

func (n *authzFixture) token(t *testing.T, role string) string {
	if role == roleService {
		return n.ServiceToken(t, roleUser[role])
	}
	return n.Token(t, roleUser[role])
}

type authzFixture struct{ *testutil.Natter }

// newChat creates a group chat: ann (admin), mem, rem (then removed) and v1 (a
// member for removals); mem then sends message "seed".
func (n *authzFixture) newChat(t *testing.T) string {
	t.Helper()
	chat := n.CreateChat(t, "ann", "group", "authz", "mem", "rem", "v1")
	status, body := n.Do(t, "DELETE", "/api/v1/chats/"+chat+"/members/rem", n.Token(t, "ann"), nil)
	require.Less(t, status, 300, string(body))
	status, body = n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", n.Token(t, "mem"), map[string]any{"messageId": "seed", "content": "hello"})
	require.Less(t, status, 300, string(body))
	// Both changes may be answered 202 before they are sequenced: wait for them.
	require.Eventually(t, func() bool {
		st, _ := n.Do(t, "GET", "/api/v1/chats/"+chat, n.Token(t, "rem"), nil)
		return st == http.StatusForbidden && slices.ContainsFunc(history(t, n.Natter, "mem", chat, "").Messages,
			func(m protocol.Message) bool { return m.MessageID == "seed" })
	}, 5*time.Second, 20*time.Millisecond)
	return chat
}

func TestAuthzMatrixREST(t *testing.T) {
	n := &authzFixture{testutil.StartNatter(t, testutil.Config(t))}
	type endpoint struct {
		method, path string // {chat} is replaced
		body         any
		want         map[string]cell
	}
	all := func(c cell) map[string]cell {
		return map[string]cell{roleStranger: c, roleRemoved: c, roleMember: c, roleService: c, roleAdmin: c}
	}
	membersOnly := func(success cell) map[string]cell {
		return map[string]cell{roleStranger: notMember, roleRemoved: notMember, roleMember: success, roleService: notMember, roleAdmin: success}
	}
	adminOnly := func(success cell) map[string]cell {
		return map[string]cell{roleStranger: notMember, roleRemoved: notMember, roleMember: forbidden, roleService: notMember, roleAdmin: success}
	}
	endpoints := []endpoint{
		{"GET", "/api/v1/chats", nil, all(ok)},
		{"POST", "/api/v1/chats", map[string]any{"type": "group", "name": "new", "members": []string{"v1"}}, all(created)},
		{"GET", "/api/v1/chats/{chat}", nil, membersOnly(ok)},
		{"PATCH", "/api/v1/chats/{chat}", map[string]any{"name": "renamed"}, adminOnly(ok)},
		{"GET", "/api/v1/chats/{chat}/members", nil, membersOnly(ok)},
		{"GET", "/api/v1/chats/{chat}/receipts", nil, membersOnly(ok)},
		{"POST", "/api/v1/chats/{chat}/members", map[string]any{"userId": "newbie"}, adminOnly(created)},
		{"DELETE", "/api/v1/chats/{chat}/members/v1", nil, adminOnly(ok)},
		{"DELETE", "/api/v1/chats/{chat}/members", map[string]any{"userId": "v1"}, adminOnly(ok)},
		{"POST", "/api/v1/chats/{chat}/leave", nil, map[string]cell{roleStranger: notMember, roleRemoved: notMember,
			roleMember: ok, roleService: notMember, roleAdmin: {http.StatusConflict, protocol.CodeConflict}}}, // the only admin may not leave
		{"GET", "/api/v1/chats/{chat}/messages", nil, membersOnly(ok)},
		{"POST", "/api/v1/chats/{chat}/messages", map[string]any{"content": "hi"}, map[string]cell{
			roleStranger: notMember, roleRemoved: notMember, roleMember: created, roleService: created, roleAdmin: created}},
		{"GET", "/api/v1/chats/{chat}/mute", nil, membersOnly(ok)},
		{"PUT", "/api/v1/chats/{chat}/mute", map[string]any{"muted": true}, membersOnly(ok)},
		{"GET", "/api/v1/users/ann/presence", nil, map[string]cell{
			roleStranger: forbidden, roleRemoved: forbidden, roleMember: ok, roleService: ok, roleAdmin: ok}},
		{"PUT", "/api/v1/users/mem/presence", map[string]any{"status": "away"}, map[string]cell{
			roleStranger: forbidden, roleRemoved: forbidden, roleMember: ok, roleService: ok, roleAdmin: forbidden}},
		{"GET", "/api/v1/search?q=hello&chatId={chat}", nil, membersOnly(ok)},
	}
	for _, ep := range endpoints {
		for _, role := range roles {
			t.Run(ep.method+" "+ep.path+" as "+role, func(t *testing.T) {
				chat := n.newChat(t)
				path := strings.ReplaceAll(ep.path, "{chat}", chat)
				status, body := n.Do(t, ep.method, path, n.token(t, role), ep.body)
				want := ep.want[role]
				var e struct {
					Error struct {
						Code protocol.Code `json:"code"`
					} `json:"error"`
				}
				_ = json.Unmarshal(body, &e)
				if want.code == "" {
					require.True(t, status == want.status || (status >= 200 && status < 300 && want.status < 300),
						"want %d, got %d: %s", want.status, status, body)
					return
				}
				require.Equal(t, want.status, status, string(body))
				require.Equal(t, want.code, e.Error.Code, string(body))
			})
		}
	}
	t.Run("no token", func(t *testing.T) {
		for _, ep := range endpoints {
			status, body := n.Do(t, ep.method, strings.ReplaceAll(ep.path, "{chat}", "c1"), "", ep.body)
			require.Equal(t, http.StatusUnauthorized, status, "%s %s: %s", ep.method, ep.path, body)
		}
	})
}

// frameOutcome writes f on c and returns the code of the error it drew, "" if none:
// a ping after it is answered only after f was handled, and f's error (if any) was
// sent before the pong.
func frameOutcome(t *testing.T, c *client.Conn, f *protocol.Frame) protocol.Code {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	require.NoError(t, c.WriteRaw(ctx, protocol.EncodeFrame(f)))
	require.NoError(t, c.Ping(ctx))
	for {
		select {
		case g := <-c.Frames():
			if g.Type == protocol.FrameError && (g.ID == f.ID || g.MessageID == f.MessageID) {
				return g.Code
			}
		default:
			return ""
		}
	}
}

func TestAuthzMatrixFrames(t *testing.T) {
	n := &authzFixture{testutil.StartNatter(t, testutil.Config(t))}
	conns := map[string]*client.Conn{}
	for _, role := range roles {
		c, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.token(t, role), nil)
		require.NoError(t, err, role)
		t.Cleanup(func() { c.CloseNow() })
		conns[role] = c
	}
	membersOnly := map[string]protocol.Code{roleStranger: protocol.CodeNotMember, roleRemoved: protocol.CodeNotMember,
		roleService: protocol.CodeNotMember, roleMember: "", roleAdmin: ""}
	type frame struct {
		name string
		make func(chat, id string) *protocol.Frame
		want map[string]protocol.Code
	}
	frames := []frame{
		{"send", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameSend, ID: id, ChatID: chat, MessageID: id, Content: "x"}
		}, membersOnly},
		{"history", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameHistory, ID: id, ChatID: chat}
		}, membersOnly},
		{"sync", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameSync, ID: id, Chats: []protocol.ChatCursor{{ChatID: chat, Seq: 0}}}
		}, membersOnly},
		{"delivered", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameDelivered, ID: id, ChatID: chat, Seq: 1}
		}, membersOnly},
		{"read", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameRead, ID: id, ChatID: chat, Seq: 1}
		}, membersOnly},
		{"typing", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameTyping, ID: id, ChatID: chat, State: "start"}
		}, membersOnly},
		{"presence_sub", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FramePresenceSub, ID: id, UserIDs: []string{"v1"}}
		}, map[string]protocol.Code{roleStranger: protocol.CodeForbidden, roleRemoved: protocol.CodeForbidden,
			roleService: "", roleMember: "", roleAdmin: ""}},
		{"edit", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameEdit, ID: id, ChatID: chat, MessageID: id, RefID: "seed", Content: "edited"}
		}, map[string]protocol.Code{roleStranger: protocol.CodeNotMember, roleRemoved: protocol.CodeNotMember,
			roleService: protocol.CodeNotMember, roleMember: "", roleAdmin: protocol.CodeForbidden}},
		{"delete", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameDelete, ID: id, ChatID: chat, MessageID: id, RefID: "seed"}
		}, membersOnly},
		{"react", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameReact, ID: id, ChatID: chat, MessageID: id, RefID: "seed", Emoji: "👍"}
		}, membersOnly},
		{"connect", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameConnect, ID: id, Token: "x"}
		}, map[string]protocol.Code{roleStranger: protocol.CodeUnauthorized, roleRemoved: protocol.CodeUnauthorized,
			roleService: protocol.CodeUnauthorized, roleMember: protocol.CodeUnauthorized, roleAdmin: protocol.CodeUnauthorized}},
		{"connect renewing with another user's token", func(chat, id string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.FrameConnect, ID: id, Token: n.Token(t, "v1")}
		}, map[string]protocol.Code{roleStranger: protocol.CodeForbidden, roleRemoved: protocol.CodeForbidden,
			roleService: protocol.CodeForbidden, roleMember: protocol.CodeForbidden, roleAdmin: protocol.CodeForbidden}},
	}
	for i, fr := range frames {
		for j, role := range roles {
			t.Run(fr.name+" as "+role, func(t *testing.T) {
				chat := n.newChat(t)
				id := fmt.Sprintf("f%d-%d", i, j)
				got := frameOutcome(t, conns[role], fr.make(chat, id))
				require.Equal(t, fr.want[role], got)
			})
		}
	}
}

func TestAuthzMatrixMedia(t *testing.T) {
	n := &authzFixture{testutil.StartNatter(t, testutil.Config(t))}
	do := func(t *testing.T, method, path, role, ctype string, body []byte) (int, protocol.Code) {
		req, err := http.NewRequest(method, n.HTTPURL()+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+n.token(t, role))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e struct {
			Error struct {
				Code protocol.Code `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code
	}
	// mem uploads a file and has not shared it in any chat yet.
	ct, body := multipartBody(t, "file", "a.png", pngBytes(t, 256))
	status, b := upload(t, n.Natter, "mem", "a.png", pngBytes(t, 256))
	require.Equal(t, http.StatusCreated, status, string(b))
	var up struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(b, &up))
	for _, role := range roles {
		t.Run("upload as "+role, func(t *testing.T) {
			status, code := do(t, "POST", "/api/v1/media", role, ct, body)
			require.Equal(t, http.StatusCreated, status, code)
		})
		t.Run("get unshared as "+role, func(t *testing.T) {
			status, code := do(t, "GET", "/api/v1/media/"+up.ID, role, "", nil)
			if role == roleMember { // the uploader
				require.Equal(t, http.StatusOK, status, code)
				return
			}
			require.Equal(t, http.StatusForbidden, status)
			require.Equal(t, protocol.CodeForbidden, code)
		})
	}
}
