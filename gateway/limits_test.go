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

	require.NoError(t, a.AllowFrame(protocol.FrameSend))
	require.NoError(t, b.AllowFrame(protocol.FrameSend))
	require.Error(t, a.AllowFrame(protocol.FrameTyping), "the shared bucket is empty")
	require.NoError(t, a.AllowFrame(protocol.FramePing), "read frames have buckets of their own (unlimited here)")

	l.release("alice")
	require.Len(t, l.users, 1)
	l.release("alice")
	require.Empty(t, l.users, "evicted with the last connection")
	require.Zero(t, l.conns)
	var none *connLimit
	require.NoError(t, none.AllowFrame(protocol.FrameSend), "no limits on a connection without a handle")
}

func TestLimiterReadFramesHaveTheirOwnBuckets(t *testing.T) {
	l := newLimiter(LimitsConfig{ConnMsgRate: 0.0001, ConnMsgBurst: 1, ConnReadRate: 0.0001, ConnReadBurst: 2,
		UserReadRate: 0.0001, UserReadBurst: 3})
	a, err := l.acquire("alice")
	require.NoError(t, err)
	b, err := l.acquire("alice")
	require.NoError(t, err)
	require.NoError(t, a.AllowFrame(protocol.FrameSend))
	require.Error(t, a.AllowFrame(protocol.FrameSend), "the write bucket is empty")
	for _, typ := range []string{protocol.FrameHistory, protocol.FrameSync} {
		require.NoError(t, a.AllowFrame(typ), "%s: reads are charged to the read bucket", typ)
	}
	for _, typ := range []string{protocol.FrameHistory, protocol.FrameSync, protocol.FrameDelivered, protocol.FrameRead,
		protocol.FramePresenceSub, protocol.FramePing, protocol.FrameConnect, "bogus"} {
		require.Error(t, a.AllowFrame(typ), "%s: the connection's read bucket is empty", typ)
	}
	require.NoError(t, b.AllowFrame(protocol.FramePing), "b's own bucket, and the user's last token")
	err = b.AllowFrame(protocol.FramePing)
	require.Error(t, err, "the user's read bucket is shared")
	require.Equal(t, protocol.CodeRateLimited, err.(*protocol.Error).Code)
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
