package e2e

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// A connection whose token is about to expire is told so (token_expiring) and can
// renew it in place with a connect frame for the same user.
func TestTokenRefreshOnOpenConnection(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.PingInterval = 200 * time.Millisecond // heartbeat ticks every 50 ms
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	c, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.TokenTTL(t, "alice", 30*time.Second), nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })

	warn := next(t, c, protocol.FrameError, 5*time.Second)
	require.Equal(t, protocol.CodeTokenExpiring, warn.Code, warn.Message)

	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		name  string
		token string
		code  protocol.Code
	}{
		{"garbage", "x", protocol.CodeUnauthorized},
		{"expired", n.TokenTTL(t, "alice", -time.Hour), protocol.CodeTokenExpired},
		{"another user", n.Token(t, "bob"), protocol.CodeForbidden},
		{"a service token for the same name", n.ServiceToken(t, "alice"), protocol.CodeForbidden},
	} {
		require.NoError(t, c.Frame(ctx, &protocol.Frame{Type: protocol.FrameConnect, ID: "bad", Token: tc.token}))
		e := next(t, c, protocol.FrameError, 5*time.Second)
		require.Equal(t, tc.code, e.Code, "%s: %s", tc.name, e.Message)
		require.NoError(t, c.Ping(ctx), "%s: the connection stays", tc.name)
	}

	require.NoError(t, c.Frame(ctx, &protocol.Frame{Type: protocol.FrameConnect, ID: "renew", Token: n.Token(t, "alice")}))
	ok := next(t, c, protocol.FrameConnected, 5*time.Second)
	require.Equal(t, "renew", ok.ID)
	require.Equal(t, "alice", ok.UserID)
	_, err = c.Send(ctx, chat, "after-renew", "still here")
	require.NoError(t, err)
	// The renewed token is valid for an hour: no further warning arrives.
	require.NoError(t, c.Ping(ctx))
	for {
		select {
		case f := <-c.Frames():
			require.NotEqual(t, protocol.CodeTokenExpiring, f.Code, "warned again after renewal")
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
}
