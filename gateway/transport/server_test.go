package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// countLimits is a Limiter without rates that counts the slots held.
type countLimits struct{ held atomic.Int32 }

func (l *countLimits) AllowConnect(*http.Request) error { return nil }
func (l *countLimits) GatewayFull() bool                { return false }
func (l *countLimits) Release(string)                   { l.held.Add(-1) }
func (l *countLimits) Acquire(string) (FrameLimit, error) {
	l.held.Add(1)
	return noRates{}, nil
}

// noRates allows every frame.
type noRates struct{}

func (noRates) AllowFrame(string) error { return nil }

// echoFrames answers every frame with a pong carrying its ID.
type echoFrames struct{}

func (echoFrames) HandleFrame(_ context.Context, c *Conn, data []byte) {
	f, err := protocol.DecodeFrame(data)
	if err != nil {
		c.Send(protocol.ErrorFrame(err, "", "", ""))
		return
	}
	c.Send(&protocol.Frame{Type: protocol.FramePong, ID: f.ID})
}

// testServer serves a Server over a real hub on an in-process NATS server. Tokens
// are the user ID; "denied" is a user on the deny list.
func testServer(t *testing.T) (*httptest.Server, *Hub, *countLimits) {
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	hub := NewHub(nc, "natter.user.", 2, zap.NewNop())
	var wg sync.WaitGroup
	hub.Run(&wg)
	lim := &countLimits{}
	var joined sync.Map
	srv := NewServer(Config{WriteTimeout: 5 * time.Second, AuthTimeout: 5 * time.Second, PingInterval: time.Minute, MaxFrameBytes: 1 << 16},
		Deps{Hub: hub, Out: NewOut(100, 0, 5*time.Second, new(atomic.Int64), nil),
			Verify: func(_ context.Context, token string) (auth.Identity, error) {
				if token == "" {
					return auth.Identity{}, auth.ErrNoToken
				}
				return auth.Identity{UserID: token}, nil
			},
			AuthError:     func(error) *protocol.Error { return protocol.Errorf(protocol.CodeUnauthorized, "invalid token") },
			Bearer:        func(r *http.Request) string { return r.URL.Query().Get("token") },
			OriginAllowed: func(*http.Request) bool { return true },
			Limits:        lim, Frames: echoFrames{},
			Denied: func(user string) bool { return user == "denied" },
			Joined: func(c *Conn) { joined.Store(c, true) }, Left: func(c *Conn) { joined.Delete(c) },
			Log: zap.NewNop()})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", srv.HandleWS)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		hub.Each(func(c *Conn) { c.CloseWith(websocket.StatusGoingAway, protocol.CodeShuttingDown, "test over") })
		hub.AwaitClosed(5 * time.Second)
		hub.Stop()
		wg.Wait()
	})
	return hs, hub, lim
}

func dialWS(t *testing.T, hs *httptest.Server, query string) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws"+query, nil)
	require.NoError(t, err)
	return ws
}

func readFrame(t *testing.T, ws *websocket.Conn) *protocol.Frame {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := ws.Read(ctx)
	require.NoError(t, err)
	f, err := protocol.DecodeFrame(data)
	require.NoError(t, err)
	return f
}

// TestServerConnectFrameAttachesAndHandsFramesOver: a WebSocket that authenticates
// with a connect frame is greeted with connected, is in the hub, and its frames
// reach the FrameHandler; closing it releases its slot and leaves the hub.
func TestServerConnectFrameAttachesAndHandsFramesOver(t *testing.T) {
	hs, hub, lim := testServer(t)
	ws := dialWS(t, hs, "")
	ctx := context.Background()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"type":"connect","token":"alice"}`)))
	f := readFrame(t, ws)
	require.Equal(t, protocol.FrameConnected, f.Type)
	require.Equal(t, "alice", f.UserID)
	require.NotEmpty(t, f.ConnID)
	require.True(t, hub.Connected("alice"))
	require.EqualValues(t, 1, lim.held.Load())

	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"p1"}`)))
	f = readFrame(t, ws)
	require.Equal(t, protocol.FramePong, f.Type)
	require.Equal(t, "p1", f.ID)

	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, []byte{1, 2}))
	f = readFrame(t, ws)
	require.Equal(t, protocol.FrameError, f.Type)
	require.Equal(t, protocol.CodeBadRequest, f.Code)

	require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return !hub.Connected("alice") && lim.held.Load() == 0 },
		5*time.Second, 10*time.Millisecond)
}

// TestServerRefusesADeniedUser: a user on the deny list is not attached: the
// connection closes with 1011 and its slot is released.
func TestServerRefusesADeniedUser(t *testing.T) {
	hs, hub, lim := testServer(t)
	ws := dialWS(t, hs, "?token=denied")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ws.Read(ctx)
	var ce websocket.CloseError
	require.True(t, errors.As(err, &ce), "closed with a status: %v", err)
	require.Equal(t, websocket.StatusInternalError, ce.Code)
	require.Equal(t, "unavailable: try again", ce.Reason)
	require.False(t, hub.Connected("denied"))
	require.EqualValues(t, 0, lim.held.Load())
}

// TestServerClosesWithoutAConnectFrame: a first frame other than connect closes
// the connection with 4001 and an unauthorized reason.
func TestServerClosesWithoutAConnectFrame(t *testing.T) {
	hs, _, lim := testServer(t)
	ws := dialWS(t, hs, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"p1"}`)))
	_, _, err := ws.Read(ctx)
	var ce websocket.CloseError
	require.True(t, errors.As(err, &ce), "closed with a status: %v", err)
	require.EqualValues(t, protocol.CloseUnauthorized, ce.Code)
	require.Equal(t, "unauthorized: first frame must be connect with a token", ce.Reason)
	require.EqualValues(t, 0, lim.held.Load())
}
