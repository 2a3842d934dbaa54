package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/gateway/transport"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// bearer returns the token from "Authorization: Bearer", else the token query
// parameter.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

// authError maps a verification error to a protocol error.
func authError(err error) *protocol.Error {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return protocol.Errorf(protocol.CodeTokenExpired, "token expired: get a new one")
	case errors.Is(err, auth.ErrNoToken):
		return protocol.Errorf(protocol.CodeUnauthorized, "no token: send Authorization: Bearer <jwt>, ?token=, or a connect frame")
	case errors.Is(err, auth.ErrDevKeyMismatch):
		// Dev mode only (loopback): the hint names the server's data directory.
		return protocol.Errorf(protocol.CodeUnauthorized, "invalid token: %s", strings.TrimPrefix(err.Error(), "auth: invalid token: "))
	case errors.Is(err, auth.ErrRevoked):
		return protocol.Errorf(protocol.CodeUnauthorized, "account erased: its tokens are refused")
	case errors.Is(err, auth.ErrTokenTooLarge):
		return protocol.Errorf(protocol.CodeUnauthorized, "token over %d bytes: not a token this server issues or accepts", auth.MaxTokenBytes)
	default:
		return protocol.Errorf(protocol.CodeUnauthorized, "invalid token")
	}
}

// handleWS upgrades to a WebSocket. A token in the header or query is checked before
// the upgrade (a bad one gets HTTP 401); without one the first frame must be connect.
//
// The connection is served by a goroutine of its own (serveWS) and the handler
// returns: as long as a handler runs, net/http keeps its request, response and
// buffers alive, about 4 KB per idle connection.
func (g *Gateway) handleWS(w http.ResponseWriter, r *http.Request) {
	var id auth.Identity
	if err := g.limits.allowConnect(r); err != nil { // limits.go
		refuse(w, err.(*protocol.Error))
		return
	}
	var lim *connLimit
	token := bearer(r)
	if token != "" {
		var err error
		if id, err = g.deps.Auth.Verify(r.Context(), token); err != nil {
			writeError(w, http.StatusUnauthorized, authError(err))
			return
		}
		if lim, err = g.limits.acquire(id.UserID); err != nil { // limits.go
			refuse(w, err.(*protocol.Error))
			return
		}
	} else if g.limits.gatewayFull() {
		refuse(w, rateLimited("this gateway is at its connection limit: retry later"))
		return
	}
	resume := r.URL.Query().Get("resume") == "1"
	up := transport.NewUpgradeWriter(w, g.cfg.WriteTimeout) // transport/socket.go
	// No compression: the connection's writer frames messages itself (transport/socket.go writeMessages).
	ws, err := websocket.Accept(up, r, &websocket.AcceptOptions{OriginPatterns: g.cfg.AllowedOrigins})
	if err != nil {
		if lim != nil {
			g.limits.release(id.UserID)
		}
		return // Accept wrote the HTTP error (e.g. 403 for a foreign origin)
	}
	go g.serveWS(ws, up, id, lim, resume)
}

// serveWS serves an upgraded connection until it ends. id and lim are zero and nil
// when the first frame must authenticate; resume is the request's ?resume=1. It
// releases lim when done (through attach). A panic ends the connection, not the process, as it did
// when net/http's handler goroutine served it.
func (g *Gateway) serveWS(ws *websocket.Conn, up *transport.UpgradeWriter, id auth.Identity, lim *connLimit, resume bool) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("panic serving a WebSocket", zap.Any("panic", p), zap.Stack("stack"))
			_ = ws.CloseNow()
		}
	}()
	ws.SetReadLimit(g.cfg.MaxFrameBytes)
	ctx, cancel := context.WithCancel(g.hub.Ctx())
	defer cancel()
	c := transport.NewWS(g.out, ws, up, strconv.FormatUint(g.nextID.Add(1), 36), cancel)

	if lim == nil {
		var err error
		var connectResume bool
		if id, connectResume, err = g.awaitConnect(ctx, ws); err != nil {
			pe := authError(err)
			var perr *protocol.Error
			if errors.As(err, &perr) {
				pe = perr
			}
			status := websocket.StatusCode(protocol.CloseUnauthorized)
			if pe.Code == protocol.CodeTokenExpired {
				status = protocol.CloseTokenExpired
			}
			_ = ws.Close(status, transport.CloseReason(pe.Code, pe.Message))
			return
		}
		resume = resume || connectResume
		// Authenticated by a connect frame: reserve the slot now (limits.go).
		if lim, err = g.limits.acquire(id.UserID); err != nil {
			_ = ws.Close(protocol.CloseRateLimited, transport.CloseReason(protocol.CodeRateLimited, err.(*protocol.Error).Message))
			return
		}
	}
	c.Authenticate(id.UserID, id.Service, id.ExpiresAt)
	if resume {
		c.HoldForResume(g.cfg.AuthTimeout)
	}
	detach, err := g.attach(c, lim)
	if err != nil {
		_ = ws.Close(websocket.StatusInternalError, "unavailable: try again")
		return
	}
	defer detach()
	c.ReadLoop(ctx, transport.FrameHandlerFunc(g.handleFrame)) // frames.go
}

// attach registers an authenticated connection, WebSocket or SSE: its abuse limits,
// its user's subscription and its presence, then greets it with connected. Both
// transports reach it the same way: allowConnect (per-IP connect rate) before the
// token is checked, acquire (per-user and per-gateway caps) after, then attach, so
// they share every limit, and every frame of either goes through handleFrame and
// lim's frame rates. attach takes over lim, the slot acquire reserved: a failed
// attach releases it, and so does detach, which also undoes the rest, the device
// leaving presence after it left the hub.
func (g *Gateway) attach(c *conn, lim *connLimit) (detach func(), err error) {
	if lim != nil {
		c.Lim = lim
	}
	// Live frames that arrive once the subscription exists are held until the
	// connected frame is queued: connected is always the first frame.
	c.BeginSync()
	if err := g.hub.Add(c); err != nil {
		c.EndSync(nil)
		g.limits.release(c.UserID())
		g.log.Warn("subscribe for user failed", zap.String("user_id", c.UserID()), zap.Error(err))
		return nil, err
	}
	if g.deny.denied(c.UserID()) {
		// Erased between the token check and now (denylist.go): the erasure's close
		// of the user's connections may have run before this one was in the hub.
		g.hub.Remove(c)
		c.EndSync(nil)
		g.limits.release(c.UserID())
		return nil, authError(auth.ErrRevoked)
	}
	g.presence.Joined(c)
	c.Send(&protocol.Frame{Type: protocol.FrameConnected, UserID: c.UserID(), ConnID: c.ID(),
		ServerTime: time.Now().UnixMilli(), HeartbeatMs: g.cfg.PingInterval.Milliseconds()})
	c.EndSync(nil)
	return func() {
		g.hub.Remove(c)
		g.presence.Left(c)
		g.limits.release(c.UserID())
	}, nil
}

// awaitConnect reads the first frame, which must be connect with a valid token.
// It also returns the frame's resume flag.
func (g *Gateway) awaitConnect(ctx context.Context, ws *websocket.Conn) (auth.Identity, bool, error) {
	actx, cancel := context.WithTimeout(ctx, g.cfg.AuthTimeout)
	defer cancel()
	_, data, err := ws.Read(actx)
	if err != nil {
		return auth.Identity{}, false, protocol.Errorf(protocol.CodeUnauthorized, "no connect frame within %s", g.cfg.AuthTimeout)
	}
	f, err := protocol.DecodeFrame(data)
	if err != nil {
		return auth.Identity{}, false, err
	}
	if f.Type != protocol.FrameConnect {
		return auth.Identity{}, false, protocol.Errorf(protocol.CodeUnauthorized, "first frame must be connect with a token")
	}
	id, err := g.deps.Auth.Verify(actx, f.Token)
	return id, f.Resume, err
}
