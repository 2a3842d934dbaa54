package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Ciphertext as a client sends it: opaque to the server. Its words are searched
// for below, so that an index of it would be caught.
func ciphertext(i int) string {
	return fmt.Sprintf(`{"v":1,"t":"msg","ct":"Zm9vYmFy%03d","secretword":"quokka%d"}`, i, i)
}

type chatBody struct {
	ID        string `json:"id"`
	Encrypted bool   `json:"encrypted"`
}

func createEncrypted(t *testing.T, n *testutil.Natter, user, kind string, members ...string) chatBody {
	t.Helper()
	var c chatBody
	status, body := call(t, n, "POST", "/api/v1/chats", user,
		map[string]any{"type": kind, "members": members, "name": "", "encrypted": true}, &c)
	require.Contains(t, []int{200, 201}, status, string(body))
	require.True(t, c.Encrypted, string(body))
	return c
}

func TestEncryptedChats(t *testing.T) {
	rcv := newReceiver(t)
	cfg := presenceConfig(t)
	rcv.configure(t, cfg)
	encryptedChats(t, cfg, rcv)
}

func TestCassandraEncryptedChats(t *testing.T) {
	rcv := newReceiver(t)
	cfg := cassandraConfig(t, cassandraHosts(t))
	c := presenceConfig(t)
	cfg.Presence, cfg.Gateway.Presence, cfg.Gateway.Typing = c.Presence, c.Gateway.Presence, c.Gateway.Typing
	rcv.configure(t, cfg)
	encryptedChats(t, cfg, rcv)
}

// encryptedChats drives an end-to-end encrypted chat through WebSocket, REST and a
// backend service: only ciphertext types are taken, ordering, edits, deletes,
// history paging and unread counts work, search never finds the ciphertext, and the
// push notification carries no content.
func encryptedChats(t *testing.T, cfg *app.Config, rcv *receiver) {
	n := testutil.StartNatter(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	group := createEncrypted(t, n, "alice", "group", "bob", "carol")
	direct := createEncrypted(t, n, "alice", "direct", "bob")
	plain := n.CreateChat(t, "alice", "direct", "", "bob")
	require.NotEqual(t, plain, direct.ID, "the encrypted direct chat is another chat")
	require.Equal(t, direct.ID, createEncrypted(t, n, "bob", "direct", "alice").ID, "and the same one for both")
	var got chatBody
	status, body := call(t, n, "GET", "/api/v1/chats/"+group.ID, "carol", nil, &got)
	require.Equal(t, http.StatusOK, status, string(body))
	require.True(t, got.Encrypted)

	alice, carol := n.Dial(t, "alice"), n.Dial(t, "carol")
	sendAs := func(typ, id, content string) (*protocol.Frame, error) {
		return alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameSend, ChatID: group.ID, MessageID: id, Content: content, MessageType: typ})
	}
	for i := 1; i <= 5; i++ {
		_, err := sendAs(protocol.TypeEncrypted, fmt.Sprint("e", i), ciphertext(i))
		require.NoError(t, err)
	}
	// Plaintext types and reactions are refused, and so is ciphertext in a plain chat.
	for _, typ := range []string{"", protocol.TypeText, protocol.TypeImage, "poll"} {
		_, err := sendAs(typ, "bad-"+typ, "hello in the clear")
		require.ErrorContains(t, err, string(protocol.CodeBadRequest), typ)
	}
	_, err := alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameReact, ChatID: group.ID, MessageID: "r1", RefID: "e1", Emoji: "👍"})
	require.ErrorContains(t, err, string(protocol.CodeBadRequest))
	_, err = alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameSend, ChatID: plain, MessageID: "p1", Content: "x", MessageType: protocol.TypeEncrypted})
	require.ErrorContains(t, err, string(protocol.CodeBadRequest))
	// Edits and deletes are encrypted operations.
	_, err = alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameEdit, ChatID: group.ID, MessageID: "ed1", RefID: "e2", Content: ciphertext(20)})
	require.NoError(t, err)
	_, err = alice.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameDelete, ChatID: group.ID, MessageID: "del1", RefID: "e3"})
	require.NoError(t, err)

	// REST: a user's and a service's plaintext post are refused; ciphertext is taken.
	status, body = call(t, n, "POST", "/api/v1/chats/"+group.ID+"/messages", "bob", map[string]any{"content": "plain"}, nil)
	requireRefused(t, status, body, 400, protocol.CodeBadRequest)
	svc := n.ServiceToken(t, "billing")
	status, body = n.Do(t, "POST", "/api/v1/chats/"+group.ID+"/messages", svc, map[string]any{"content": "plain", "senderId": "bob"})
	requireRefused(t, status, body, 400, protocol.CodeBadRequest)
	status, body = call(t, n, "POST", "/api/v1/chats/"+group.ID+"/messages", "bob",
		map[string]any{"messageId": "b1", "content": ciphertext(6), "messageType": "encrypted"}, nil)
	require.Equal(t, http.StatusAccepted, status, string(body))

	// A backend service publishing on NATS, past the gateway: the sequencer refuses
	// plaintext (its answer says so; ops-text never appears) and takes ciphertext.
	nc := n.ConnectNATS(t, natsutil.UserBackend, nil)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	pub, err := publish.New(js, n.Config.NATS.Prefix, "ops-bot")
	require.NoError(t, err)
	_, err = pub.Publish(ctx, &protocol.Message{ChatID: group.ID, MessageID: "ops-text", SenderID: "ops-bot", MessageType: protocol.TypeText, Content: "leak"})
	require.ErrorContains(t, err, string(protocol.CodeBadRequest))
	_, err = pub.Publish(ctx, &protocol.Message{ChatID: group.ID, MessageID: "ops-ct", SenderID: "ops-bot", MessageType: protocol.TypeEncrypted, Content: ciphertext(7)})
	require.NoError(t, err)

	// carol sees everything accepted, in order, with no gap.
	want := []string{"e1", "e2", "e3", "e4", "e5", "ed1", "del1", "b1", "ops-ct"}
	frames := collect(t, carol, len(want), 20*time.Second)
	for i, f := range frames {
		require.Equal(t, want[i], f.MessageID)
		require.EqualValues(t, i+1, f.Seq)
	}
	require.Equal(t, protocol.TypeEncrypted, frames[0].MessageType)
	require.Equal(t, ciphertext(1), frames[0].Content, "the ciphertext is relayed as sent")

	// History paging and current state, as in any chat.
	var page struct {
		Messages []protocol.Message `json:"messages"`
		HasMore  bool               `json:"hasMore"`
	}
	require.Eventually(t, func() bool {
		status, _ := call(t, n, "GET", "/api/v1/chats/"+group.ID+"/messages?before=4&limit=2", "carol", nil, &page)
		return status == 200 && len(page.Messages) == 2
	}, 15*time.Second, 50*time.Millisecond)
	require.Equal(t, []uint64{3, 2}, []uint64{page.Messages[0].Seq, page.Messages[1].Seq})
	require.True(t, page.HasMore)
	require.True(t, page.Messages[0].Deleted)
	require.True(t, page.Messages[1].Edited)
	require.Equal(t, ciphertext(20), page.Messages[1].Content)

	// Search never finds the ciphertext, for any member, in any chat.
	_, err = alice.Send(ctx, plain, "pl1", "quokka1 in the clear")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, keys := searchAs(t, n, "bob", url.Values{"q": {"quokka1"}})
		return len(keys) == 1
	}, 15*time.Second, 50*time.Millisecond, "the plain chat's message is found")
	for _, user := range []string{"alice", "bob", "carol"} {
		for _, q := range []url.Values{{"q": {"quokka2"}}, {"q": {"secretword"}}, {"q": {"quokka20"}}, {"q": {"quokka1"}, "chatId": {group.ID}}} {
			r, _ := searchAs(t, n, user, q)
			for _, m := range r.Messages {
				require.NotEqual(t, group.ID, m.ChatID, "%s found ciphertext with %v", user, q)
			}
		}
	}

	// A key distribution (encrypted_keys) is taken like ciphertext and delivered in
	// order, but it is nothing a person reads: not unread (bob's count below stays
	// at ops-ct alone), not pushed, and no edit, delete or reply may target it. A
	// plain chat refuses it.
	_, err = sendAs(protocol.TypeEncryptedKeys, "k1", ciphertext(30))
	require.NoError(t, err)
	f := collect(t, carol, 1, 10*time.Second)[0]
	require.Equal(t, "k1", f.MessageID)
	require.Equal(t, protocol.TypeEncryptedKeys, f.MessageType)
	require.Equal(t, ciphertext(30), f.Content)
	for _, bad := range []*protocol.Frame{
		{Type: protocol.FrameEdit, ChatID: group.ID, MessageID: "k1-ed", RefID: "k1", Content: ciphertext(31)},
		{Type: protocol.FrameDelete, ChatID: group.ID, MessageID: "k1-del", RefID: "k1"},
		{Type: protocol.FrameSend, ChatID: group.ID, MessageID: "k1-re", ReplyTo: "k1", Content: ciphertext(32), MessageType: protocol.TypeEncrypted},
		{Type: protocol.FrameSend, ChatID: plain, MessageID: "k1-plain", Content: "x", MessageType: protocol.TypeEncryptedKeys},
	} {
		_, err = alice.SendFrame(ctx, bad)
		require.ErrorContains(t, err, string(protocol.CodeBadRequest), bad.MessageID)
	}
	require.Eventually(t, func() bool {
		ms, err := readAll(n.Store, group.ID)
		return err == nil && len(ms) > 0 && ms[len(ms)-1].MessageID == "k1"
	}, 10*time.Second, 20*time.Millisecond, "the distribution is stored")

	// Unread counts work; the push notification carries no content.
	var list struct {
		Chats []struct {
			ID          string `json:"id"`
			Encrypted   bool   `json:"encrypted"`
			Unread      int    `json:"unread"`
			LastSeq     uint64 `json:"lastSeq"`
			LastMessage struct {
				MessageID string `json:"messageId"`
			} `json:"lastMessage"`
		} `json:"chats"`
	}
	status, body = call(t, n, "GET", "/api/v1/chats", "bob", nil, &list)
	require.Equal(t, http.StatusOK, status, string(body))
	found := false
	for _, c := range list.Chats {
		if c.ID == group.ID {
			found = true
			require.True(t, c.Encrypted)
			require.Equal(t, 1, c.Unread, "ops-ct: bob's own b1 moved his read watermark past the others; k1 is not counted")
			require.Equal(t, "ops-ct", c.LastMessage.MessageID, "the distribution k1 is not the chat's last message")
			require.EqualValues(t, f.Seq, c.LastSeq, "but it is its last seq")
		}
	}
	require.True(t, found)
	require.Eventually(t, func() bool {
		for _, nt := range rcv.notifications() {
			if nt.UserID == "bob" && nt.ChatID == group.ID {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "bob (offline) is notified")
	for _, nt := range rcv.notifications() {
		if nt.ChatID == group.ID || nt.ChatID == direct.ID {
			require.True(t, nt.Encrypted)
			require.Empty(t, nt.LastMessage.Content, "no content in a push of an encrypted chat")
			raw, err := json.Marshal(nt)
			require.NoError(t, err)
			require.NotContains(t, string(raw), "quokka")
			require.NotContains(t, string(raw), "Zm9vYmFy")
		}
	}
}

// Encrypted attachments: an upload naming an encrypted chat is stored opaque, for
// the chat's members, and served as a download; hostile uploads are refused.
func TestEncryptedMedia(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	group := createEncrypted(t, n, "alice", "group", "bob")
	plain := n.CreateChat(t, "alice", "group", "p", "bob")
	n.CreateChat(t, "dave", "group", "d", "erin")

	up := func(user, query, filename string, data []byte) (int, []byte) {
		ct, body := multipartBody(t, "file", filename, data)
		resp := rawRequest(t, n, "POST", "/api/v1/media"+query, user, ct, body, nil)
		return resp.StatusCode, readAllBody(t, resp)
	}
	// Bytes that sniff as HTML: refused as plain media, taken as ciphertext.
	data := []byte("<html><script>alert(1)</script></html>" + strings.Repeat("\x00\x01", 300))
	status, body := up("alice", "", "x.html", data)
	require.Equal(t, http.StatusUnsupportedMediaType, status, string(body))
	status, body = up("alice", "?chatId="+group.ID, "blob", data)
	require.Equal(t, http.StatusCreated, status, string(body))
	var info struct {
		uploaded
		ChatID string `json:"chatId"`
	}
	require.NoError(t, json.Unmarshal(body, &info))
	require.Equal(t, "application/octet-stream", info.ContentType)
	require.Equal(t, group.ID, info.ChatID)
	require.EqualValues(t, len(data), info.Size)

	for _, user := range []string{"alice", "bob"} {
		resp, got := download(t, n, user, info.ID, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(got))
		require.Equal(t, data, got)
		require.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment"), resp.Header.Get("Content-Disposition"))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	}
	resp, got := download(t, n, "dave", info.ID, nil)
	requireRefused(t, resp.StatusCode, got, 403, protocol.CodeForbidden)

	// A removed member loses access.
	status, body = call(t, n, "DELETE", "/api/v1/chats/"+group.ID+"/members/bob", "alice", nil, nil)
	require.Contains(t, []int{200, 202}, status, string(body))
	require.Eventually(t, func() bool {
		resp, _ := download(t, n, "bob", info.ID, nil)
		return resp.StatusCode == http.StatusForbidden
	}, 10*time.Second, 50*time.Millisecond)

	png := pngBytes(t, 2048)
	for _, tc := range []struct {
		name, user, query string
		status            int
		code              protocol.Code
	}{
		{"a plain chat", "alice", "?chatId=" + plain, 400, protocol.CodeBadRequest},
		{"a chat of strangers", "alice", "?chatId=" + n.CreateChat(t, "dave", "group", "x", "erin"), 403, protocol.CodeNotMember},
		{"no such chat", "alice", "?chatId=nochat", 403, protocol.CodeNotMember},
		{"a bad chat ID", "alice", "?chatId=a.b", 400, protocol.CodeInvalidID},
		{"an empty chat ID", "alice", "?chatId=", 400, protocol.CodeInvalidID},
		{"a former member", "bob", "?chatId=" + group.ID, 403, protocol.CodeNotMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := up(tc.user, tc.query, "f.png", png)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	svc := n.ServiceToken(t, "billing")
	ct, mb := multipartBody(t, "file", "f", png)
	req, err := http.NewRequest("POST", n.HTTPURL()+"/api/v1/media?chatId="+group.ID, strings.NewReader(string(mb)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+svc)
	req.Header.Set("Content-Type", ct)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer r.Body.Close()
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	// Size limits are unchanged.
	big := make([]byte, n.Config.Gateway.Media.MaxBytes+1)
	status, body = up("alice", "?chatId="+group.ID, "big", big)
	requireRefused(t, status, body, 413, protocol.CodeTooLarge)
}
