package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// badTokens returns tokens that must all be refused, by name.
func badTokens(t *testing.T, n *testutil.Natter) map[string]string {
	t.Helper()
	expired, err := auth.Sign([]byte(strings.Repeat("k", 32)), "alice", -time.Hour, false)
	require.NoError(t, err)
	wrongKey, err := auth.Sign([]byte(strings.Repeat("x", 32)), "alice", time.Hour, false)
	require.NoError(t, err)
	good := n.Token(t, "alice")
	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding
	none := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"sub":"alice","exp":`+jsonNum(time.Now().Add(time.Hour).Unix())+`}`)) + "."
	tampered := parts[0] + "." + enc.EncodeToString([]byte(`{"sub":"mallory","exp":`+jsonNum(time.Now().Add(time.Hour).Unix())+`}`)) + "." + parts[2]
	hsWithRS := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	hs384, err := hsWithRS.SignedString([]byte(strings.Repeat("k", 32)))
	require.NoError(t, err)
	return map[string]string{
		"malformed":          "not-a-jwt",
		"expired":            expired,
		"wrongly signed":     wrongKey,
		"alg none":           none,
		"tampered payload":   tampered,
		"unlisted alg":       hs384,
		"expired, right key": n.TokenTTL(t, "alice", -time.Hour),
		"bad subject":        n.TokenTTL(t, "alice", time.Hour, "a.b"),
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestBadTokensAreRefused(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	for name, tok := range badTokens(t, n) {
		t.Run(name, func(t *testing.T) {
			// REST: 401 with a JSON error.
			status, body := n.Do(t, "GET", "/api/v1/chats", tok, nil)
			require.Equal(t, http.StatusUnauthorized, status, string(body))
			require.Contains(t, string(body), `"code":"`)
			// WebSocket with the token in the header: refused before the upgrade.
			_, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), tok, nil)
			require.Error(t, err)
			require.Contains(t, err.Error(), "401")
			// WebSocket with the token in a connect frame: closed with a reason.
			_, err = client.Dial(ctxT(t, 5*time.Second), n.WSURL(), tok, &client.Options{TokenInFrame: true})
			require.Error(t, err)
			code := websocket.CloseStatus(err)
			require.Contains(t, []websocket.StatusCode{protocol.CloseUnauthorized, protocol.CloseTokenExpired}, code, "close code for %v", err)
		})
	}
	t.Run("missing", func(t *testing.T) {
		status, body := n.Do(t, "GET", "/api/v1/chats", "", nil)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Contains(t, string(body), `"code":"unauthorized"`)
		// A WebSocket with no token whose first frame is not connect is closed.
		ws, _, err := websocket.Dial(ctxT(t, 5*time.Second), n.WSURL(), nil)
		require.NoError(t, err)
		defer ws.CloseNow()
		require.NoError(t, ws.Write(ctxT(t, time.Second), websocket.MessageText, []byte(`{"type":"ping"}`)))
		_, _, err = ws.Read(ctxT(t, 5*time.Second))
		require.Equal(t, websocket.StatusCode(protocol.CloseUnauthorized), websocket.CloseStatus(err), "%v", err)
	})
	t.Run("token in connect frame works", func(t *testing.T) {
		c, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, "alice"), &client.Options{TokenInFrame: true})
		require.NoError(t, err)
		defer c.Close()
		require.Equal(t, "alice", c.Connected.UserID)
	})
	t.Run("token in query works", func(t *testing.T) {
		c, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL()+"?token="+n.Token(t, "alice"), "", nil)
		require.NoError(t, err)
		defer c.Close()
		require.Equal(t, "alice", c.Connected.UserID)
	})
}

func errCode(t *testing.T, err error) protocol.Code {
	t.Helper()
	var pe *protocol.Error
	require.True(t, errors.As(err, &pe), "want a protocol error, got %v", err)
	return pe.Code
}

func TestNonMemberCannotSendOrRead(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, mallory := n.Dial(t, "alice"), n.Dial(t, "mallory")
	_, err := mallory.Send(ctxT(t, 5*time.Second), chat, "evil-1", "let me in")
	require.Equal(t, protocol.CodeNotMember, errCode(t, err))
	_, err = mallory.HistoryBefore(ctxT(t, 5*time.Second), chat, 0, 10)
	require.Equal(t, protocol.CodeNotMember, errCode(t, err))
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages", n.Token(t, "mallory"), nil)
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, string(body), `"not_member"`)
	status, _ = n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", n.Token(t, "mallory"), map[string]any{"content": "x"})
	require.Equal(t, http.StatusForbidden, status)
	// Nothing was stored or delivered: alice's next message is seq 1.
	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "real-1", "hello")
	require.NoError(t, err)
	m := next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, 1, m.Seq)
	require.Equal(t, "real-1", m.MessageID)
	quiet(t, mallory, 200*time.Millisecond)
}

func TestBadFramesGetErrorsAndConnectionStays(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := n.Dial(t, "alice")
	ctx := ctxT(t, 20*time.Second)
	long := strings.Repeat("a", 65)
	cases := []struct {
		name  string
		frame string
		code  protocol.Code
	}{
		{"malformed JSON", `{"type":"send",`, protocol.CodeBadRequest},
		{"not an object", `[1,2,3]`, protocol.CodeBadRequest},
		{"trailing garbage", `{"type":"ping"} {}`, protocol.CodeBadRequest},
		{"no type", `{"chatId":"x"}`, protocol.CodeBadRequest},
		{"unknown type", `{"type":"launch_missiles"}`, protocol.CodeUnknownType},
		{"chat id with dot", `{"type":"send","chatId":"a.b","messageId":"m1","content":"x"}`, protocol.CodeInvalidID},
		{"chat id with star", `{"type":"send","chatId":"a*","messageId":"m1","content":"x"}`, protocol.CodeInvalidID},
		{"chat id with gt", `{"type":"send","chatId":">","messageId":"m1","content":"x"}`, protocol.CodeInvalidID},
		{"chat id with space", `{"type":"send","chatId":"a b","messageId":"m1","content":"x"}`, protocol.CodeInvalidID},
		{"chat id too long", `{"type":"send","chatId":"` + long + `","messageId":"m1","content":"x"}`, protocol.CodeInvalidID},
		{"message id with dot", `{"type":"send","chatId":"` + chat + `","messageId":"m.1","content":"x"}`, protocol.CodeInvalidID},
		{"message id with gt", `{"type":"send","chatId":"` + chat + `","messageId":"m>","content":"x"}`, protocol.CodeInvalidID},
		{"message id too long", `{"type":"send","chatId":"` + chat + `","messageId":"` + long + `","content":"x"}`, protocol.CodeInvalidID},
		{"empty message id", `{"type":"send","chatId":"` + chat + `","messageId":"","content":"x"}`, protocol.CodeInvalidID},
		{"empty content", `{"type":"send","chatId":"` + chat + `","messageId":"m1"}`, protocol.CodeBadRequest},
		{"content too large", `{"type":"send","chatId":"` + chat + `","messageId":"m1","content":"` + strings.Repeat("x", protocol.MaxContentBytes+1) + `"}`, protocol.CodeTooLarge},
		{"system type from a client", `{"type":"send","chatId":"` + chat + `","messageId":"m1","content":"x","messageType":"system"}`, protocol.CodeBadRequest},
		{"meta not an object", `{"type":"send","chatId":"` + chat + `","messageId":"m1","content":"x","meta":[1]}`, protocol.CodeBadRequest},
		{"history bad chat", `{"type":"history","chatId":"../etc"}`, protocol.CodeInvalidID},
		{"sync bad chat", `{"type":"sync","chats":[{"chatId":"a.>","seq":1}]}`, protocol.CodeInvalidID},
		{"second connect with a bad token", `{"type":"connect","token":"x"}`, protocol.CodeUnauthorized},
		{"wrong field type", `{"type":"send","chatId":1}`, protocol.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, alice.WriteRaw(ctx, []byte(tc.frame)))
			f := next(t, alice, protocol.FrameError, 5*time.Second)
			require.Equal(t, tc.code, f.Code, f.Message)
			require.NotEmpty(t, f.Message)
			require.NoError(t, alice.Ping(ctx), "the connection stays open")
		})
	}
	// Nothing was stored or delivered by any of them.
	_, err := alice.Send(ctx, chat, "good", "finally")
	require.NoError(t, err)
	m := next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, 1, m.Seq)
}

func TestOversizeFrameClosesWith1009(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.MaxFrameBytes = 4096
	n := testutil.StartNatter(t, cfg)
	alice := n.Dial(t, "alice")
	big := `{"type":"ping","id":"` + strings.Repeat("x", 5000) + `"}`
	_ = alice.WriteRaw(context.Background(), []byte(big))
	select {
	case <-alice.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
	require.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(alice.Err()), "%v", alice.Err())
}

func TestOversizeRESTBody(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	body := `{"type":"group","name":"` + strings.Repeat("x", 70<<10) + `"}`
	status, resp := n.Do(t, "POST", "/api/v1/chats", n.Token(t, "alice"), body)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, string(resp))
	require.Contains(t, string(resp), `"too_large"`)
	for name, b := range map[string]string{
		"malformed":     `{"type":`,
		"unknown field": `{"type":"group","admin":true}`,
		"bad type":      `{"type":"channel"}`,
		"bad member":    `{"type":"group","members":["a.b"]}`,
		"direct alone":  `{"type":"direct","members":[]}`,
		"direct three":  `{"type":"direct","members":["b","c"]}`,
	} {
		status, resp := n.Do(t, "POST", "/api/v1/chats", n.Token(t, "alice"), b)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", name, resp)
	}
	status, resp = n.Do(t, "GET", "/api/v1/chats", n.Token(t, "alice"), nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(resp), `"chats":[]`, "no refused call created a chat")
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	for name, q := range map[string]string{"bad limit": "?limit=-1", "huge limit": "?limit=100000", "bad cursor": "?before=abc",
		"both cursors": "?before=5&after=2", "cursor overflow": "?before=99999999999999999999999"} {
		status, resp := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages"+q, n.Token(t, "alice"), nil)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", name, resp)
	}
}
