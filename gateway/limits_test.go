package gateway

import (
	"net/http/httptest"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

func TestLimiterUserStateLivesWithConnections(t *testing.T) {
	l := newLimiter(LimitsConfig{UserMsgRate: 0.0001, UserMsgBurst: 2, ConnsPerUser: 2})
	a, err := l.acquire("alice")
	require.NoError(t, err)
	b, err := l.acquire("alice")
	require.NoError(t, err)
	require.Same(t, a.user, b.user, "one state per user, shared by its connections")
	_, err = l.acquire("alice")
	require.Equal(t, protocol.CodeRateLimited, err.(*protocol.Error).Code)

	require.NoError(t, a.allowFrame(protocol.FrameSend))
	require.NoError(t, b.allowFrame(protocol.FrameSend))
	require.Error(t, a.allowFrame(protocol.FrameTyping), "the shared bucket is empty")
	require.NoError(t, a.allowFrame(protocol.FramePing), "reads and pings are not limited")

	l.release("alice")
	require.Len(t, l.users, 1)
	l.release("alice")
	require.Empty(t, l.users, "evicted with the last connection")
	require.Zero(t, l.conns)
	var none *connLimit
	require.NoError(t, none.allowFrame(protocol.FrameSend), "no limits on a connection without a handle")
}

func TestLimiterSweepsRefilledIPs(t *testing.T) {
	l := newLimiter(LimitsConfig{ConnectRate: 1e9, ConnectBurst: 1})
	l.sweep = 4
	for i := range 10 {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.RemoteAddr = "10.0.0." + string(rune('0'+i)) + ":1234"
		require.NoError(t, l.allowConnect(r))
	}
	require.Less(t, len(l.ips), 10, "refilled buckets are dropped once the table grows")
}
