package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

func TestServicePostsOverREST(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	bob := n.Dial(t, "bob")
	svc := n.ServiceToken(t, "billing")
	path := "/api/v1/chats/" + chat + "/messages"

	// As a bot user, without being a member.
	status, body := n.Do(t, "POST", path, svc, map[string]any{"messageId": "inv-1", "senderId": "billing-bot", "content": "Invoice 42 is paid"})
	require.Equal(t, http.StatusAccepted, status, string(body))
	m := next(t, bob, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, "billing-bot", m.SenderID)
	require.Equal(t, "inv-1", m.MessageID)
	require.Equal(t, protocol.TypeText, m.MessageType)
	status, body = n.Do(t, "POST", path, svc, map[string]any{"messageId": "inv-1", "senderId": "billing-bot", "content": "Invoice 42 is paid"})
	require.Equal(t, http.StatusAccepted, status)
	require.Contains(t, string(body), `"duplicate":true`, "a retried post is stored once")
	// A system message.
	status, body = n.Do(t, "POST", path, svc, map[string]any{"senderId": "system", "messageType": "system",
		"content": "maintenance tonight", "meta": map[string]string{"event": "notice"}})
	require.Equal(t, http.StatusAccepted, status, string(body))
	m = next(t, bob, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, protocol.TypeSystem, m.MessageType)
	require.Equal(t, "system", m.SenderID)
	require.EqualValues(t, 2, m.Seq)
	// A member posts as themself.
	status, body = n.Do(t, "POST", path, n.Token(t, "alice"), map[string]any{"content": "from a script"})
	require.Equal(t, http.StatusAccepted, status, string(body))
	m = next(t, bob, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, "alice", m.SenderID)

	seq := lastSeq(t, n, chat)
	for _, tc := range []struct {
		name   string
		token  string
		path   string
		body   any
		status int
		code   protocol.Code
	}{
		{"no token", "", path, map[string]any{"content": "x"}, 401, protocol.CodeUnauthorized},
		{"non-member", n.Token(t, "mallory"), path, map[string]any{"content": "x"}, 403, protocol.CodeNotMember},
		{"user sets senderId", n.Token(t, "alice"), path, map[string]any{"content": "x", "senderId": "bob"}, 403, protocol.CodeForbidden},
		{"user sends system", n.Token(t, "alice"), path, map[string]any{"content": "x", "messageType": "system"}, 400, protocol.CodeBadRequest},
		{"service: unknown chat", svc, "/api/v1/chats/nosuchchat/messages", map[string]any{"content": "x", "senderId": "bot"}, 404, protocol.CodeNotFound},
		{"service: invalid chat", svc, "/api/v1/chats/a.b/messages", map[string]any{"content": "x"}, 400, protocol.CodeInvalidID},
		{"service: invalid sender", svc, path, map[string]any{"content": "x", "senderId": "bot bot"}, 400, protocol.CodeInvalidID},
		{"service: malformed body", svc, path, `{"content":`, 400, protocol.CodeBadRequest},
		{"service: unknown field", svc, path, `{"content":"x","sender":"bot"}`, 400, protocol.CodeBadRequest},
		{"service: oversize body", svc, path, `{"content":"` + strings.Repeat("x", 70<<10) + `"}`, 413, protocol.CodeTooLarge},
		{"service: content over the limit", svc, path, map[string]any{"content": strings.Repeat("x", protocol.MaxContentBytes+1)}, 413, protocol.CodeTooLarge},
		{"service: edit type", svc, path, map[string]any{"content": "x", "messageType": "edit"}, 400, protocol.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.Do(t, "POST", tc.path, tc.token, tc.body)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	quiet(t, bob, 200*time.Millisecond)
	require.Equal(t, seq, lastSeq(t, n, chat), "nothing refused was sequenced")
}

// TestBackendPublishesThroughGoPackage: a backend service, connected as the
// backend NATS user Natter generated, publishes onto natter.svc.<chat> with
// pkg/publish; members receive its messages in order with theirs. It cannot change
// the chat: a member_added it publishes is refused.
func TestBackendPublishesThroughGoPackage(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")

	nc := n.ConnectNATS(t, natsutil.UserBackend, nil)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	pub, err := publish.New(js, n.Config.NATS.Prefix, "ops-bot")
	require.NoError(t, err)
	ctx := ctxT(t, 20*time.Second)

	_, err = alice.Send(ctx, chat, "a1", "deploying now")
	require.NoError(t, err)
	notice, err := pub.System(ctx, chat, "system", "deploy started", protocol.SystemEvent{Event: "deploy_started", By: "ops-bot"})
	require.NoError(t, err)
	_, err = bob.Send(ctx, chat, "b1", "ok")
	require.NoError(t, err)
	text, err := pub.Text(ctx, chat, "ops-bot", "deploy finished")
	require.NoError(t, err)
	_, err = pub.Delete(ctx, chat, "ops-bot", "b1") // moderation: services delete anything
	require.NoError(t, err)
	// A chat change from a service is refused: by the package, and, published raw
	// on the service subject, by the sequencer; carol stays out.
	_, err = pub.System(ctx, chat, "ops-bot", "", protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "carol", By: "alice"})
	require.ErrorIs(t, err, publish.ErrInvalid)
	meta, err := json.Marshal(protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: "carol", By: "alice"})
	require.NoError(t, err)
	_, err = pub.Publish(ctx, &protocol.Message{ChatID: chat, SenderID: "alice", MessageType: protocol.TypeSystem, Meta: meta})
	var refusal *protocol.Error
	require.ErrorAs(t, err, &refusal, "the sequencer's refusal is the answer")
	require.Equal(t, protocol.CodeForbidden, refusal.Code)
	_, err = carol.Send(ctx, chat, "c1", "am I in?")
	require.Error(t, err, "carol was not added")

	want := []string{"a1", notice.MessageID, "b1", text.MessageID, ""}
	var views [][]*protocol.Frame
	for _, c := range []*client.Conn{alice, bob} {
		views = append(views, collect(t, c, len(want), 10*time.Second))
	}
	for _, v := range views {
		for i, f := range v {
			require.EqualValues(t, i+1, f.Seq)
			require.Equal(t, views[0][i].MessageID, f.MessageID, "every member sees one order")
			if want[i] != "" {
				require.Equal(t, want[i], f.MessageID)
			}
		}
	}
	sys := views[1][1]
	require.Equal(t, protocol.TypeSystem, sys.MessageType)
	require.Equal(t, "deploy started", sys.Content)
	var ev protocol.SystemEvent
	require.NoError(t, json.Unmarshal(sys.Meta, &ev))
	require.Equal(t, "deploy_started", ev.Event)
	require.Equal(t, protocol.TypeDelete, views[1][4].MessageType)
	require.Equal(t, "b1", views[1][4].RefID)
	require.Equal(t, []string{"alice:admin", "bob:member"}, members(t, n, chat, "alice"))
	quiet(t, carol, 200*time.Millisecond)

	// Invalid messages never leave the package.
	_, err = pub.Text(ctx, "bad.chat", "ops-bot", "x")
	require.ErrorIs(t, err, publish.ErrInvalid)
	_, err = pub.Publish(ctx, &protocol.Message{ChatID: chat, SenderID: "ops-bot", MessageType: protocol.TypeEdit, RefID: "a1"})
	require.ErrorIs(t, err, publish.ErrInvalid)
	quiet(t, alice, 200*time.Millisecond)
}
