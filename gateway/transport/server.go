package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Limiter is the connection limits as the endpoints apply them (gateway/limits.go).
// Its refusals are *protocol.Error with code rate_limited.
type Limiter interface {
	// AllowConnect charges a connection attempt to the request's remote IP.
	AllowConnect(r *http.Request) error
	// GatewayFull reports, without reserving, whether the gateway is at its
	// connection cap.
	GatewayFull() bool
	// Acquire reserves a connection slot for user and returns the connection's
	// rates, never nil on success (nil stands for a connection not yet
	// authenticated); every successful Acquire is paired with Release.
	Acquire(user string) (FrameLimit, error)
	Release(user string)
}

// Config is what the endpoints need of the gateway's configuration.
type Config struct {
	// WriteTimeout bounds a blocked write; AuthTimeout the wait for a connect frame
	// and for the first sync of a resuming client.
	WriteTimeout, AuthTimeout time.Duration
	// PingInterval is the heartbeat the connected frame announces.
	PingInterval time.Duration
	// MaxFrameBytes bounds one client frame.
	MaxFrameBytes int64
	// AllowedOrigins are the host patterns a WebSocket may come from besides its own.
	AllowedOrigins []string
}

// Deps are what the endpoints need from the gateway.
type Deps struct {
	Hub *Hub
	Out *Out
	// Verify checks a token; AuthError turns its error into what the client is told.
	Verify    func(ctx context.Context, token string) (auth.Identity, error)
	AuthError func(err error) *protocol.Error
	// Bearer is the request's token (header or query); OriginAllowed the origin rule
	// of the SSE endpoints.
	Bearer        func(r *http.Request) string
	OriginAllowed func(r *http.Request) bool
	Limits        Limiter
	// Frames handles every client frame, WebSocket or SSE.
	Frames FrameHandler
	// Denied reports a user whose account was erased (the deny list).
	Denied func(user string) bool
	// Joined and Left tell presence a device arrived and left.
	Joined, Left func(c *Conn)
	Log          *zap.Logger
}

// Server serves the WebSocket endpoint and the two endpoints of the SSE fallback:
// it admits connections under the limits, authenticates them, attaches them to the
// hub and hands their frames to Deps.Frames.
type Server struct {
	cfg    Config
	deps   Deps
	nextID atomic.Uint64
}

// NewServer returns the endpoints.
func NewServer(cfg Config, deps Deps) *Server { return &Server{cfg: cfg, deps: deps} }

// HandleWS upgrades to a WebSocket. A token in the header or query is checked before
// the upgrade (a bad one gets HTTP 401); without one the first frame must be connect.
//
// The connection is served by a goroutine of its own (serveWS) and the handler
// returns: as long as a handler runs, net/http keeps its request, response and
// buffers alive, about 4 KB per idle connection.
func (s *Server) HandleWS(w http.ResponseWriter, r *http.Request) {
	var id auth.Identity
	if err := s.deps.Limits.AllowConnect(r); err != nil {
		httpx.Refuse(w, err.(*protocol.Error))
		return
	}
	var lim FrameLimit
	token := s.deps.Bearer(r)
	if token != "" {
		var err error
		if id, err = s.deps.Verify(r.Context(), token); err != nil {
			httpx.WriteError(w, http.StatusUnauthorized, s.deps.AuthError(err))
			return
		}
		if lim, err = s.deps.Limits.Acquire(id.UserID); err != nil {
			httpx.Refuse(w, err.(*protocol.Error))
			return
		}
	} else if s.deps.Limits.GatewayFull() {
		httpx.Refuse(w, httpx.RateLimited("this gateway is at its connection limit: retry later"))
		return
	}
	resume := r.URL.Query().Get("resume") == "1"
	up := NewUpgradeWriter(w, s.cfg.WriteTimeout) // socket.go
	// No compression: the connection's writer frames messages itself (socket.go writeMessages).
	ws, err := websocket.Accept(up, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		if lim != nil {
			s.deps.Limits.Release(id.UserID)
		}
		return // Accept wrote the HTTP error (e.g. 403 for a foreign origin)
	}
	go s.serveWS(ws, up, id, lim, resume)
}

// serveWS serves an upgraded connection until it ends. id and lim are zero and nil
// when the first frame must authenticate; resume is the request's ?resume=1. It
// releases lim when done (through attach). A panic ends the connection, not the process, as it did
// when net/http's handler goroutine served it.
func (s *Server) serveWS(ws *websocket.Conn, up *UpgradeWriter, id auth.Identity, lim FrameLimit, resume bool) {
	defer func() {
		if p := recover(); p != nil {
			s.deps.Log.Error("panic serving a WebSocket", zap.Any("panic", p), zap.Stack("stack"))
			_ = ws.CloseNow()
		}
	}()
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	ctx, cancel := context.WithCancel(s.deps.Hub.Ctx())
	defer cancel()
	c := NewWS(s.deps.Out, ws, up, strconv.FormatUint(s.nextID.Add(1), 36), cancel)

	if lim == nil {
		var err error
		var connectResume bool
		if id, connectResume, err = s.awaitConnect(ctx, ws); err != nil {
			pe := s.deps.AuthError(err)
			var perr *protocol.Error
			if errors.As(err, &perr) {
				pe = perr
			}
			status := websocket.StatusCode(protocol.CloseUnauthorized)
			if pe.Code == protocol.CodeTokenExpired {
				status = protocol.CloseTokenExpired
			}
			_ = ws.Close(status, CloseReason(pe.Code, pe.Message))
			return
		}
		resume = resume || connectResume
		// Authenticated by a connect frame: reserve the slot now.
		if lim, err = s.deps.Limits.Acquire(id.UserID); err != nil {
			_ = ws.Close(protocol.CloseRateLimited, CloseReason(protocol.CodeRateLimited, err.(*protocol.Error).Message))
			return
		}
	}
	c.Authenticate(id.UserID, id.Service, id.ExpiresAt)
	if resume {
		c.HoldForResume(s.cfg.AuthTimeout)
	}
	detach, err := s.attach(c, lim)
	if err != nil {
		_ = ws.Close(websocket.StatusInternalError, "unavailable: try again")
		return
	}
	defer detach()
	c.ReadLoop(ctx, s.deps.Frames)
}

// attach registers an authenticated connection, WebSocket or SSE: its abuse limits,
// its user's subscription and its presence, then greets it with connected. Both
// transports reach it the same way: AllowConnect (per-IP connect rate) before the
// token is checked, Acquire (per-user and per-gateway caps) after, then attach, so
// they share every limit, and every frame of either goes through Deps.Frames and
// lim's frame rates. attach takes over lim, the slot Acquire reserved: a failed
// attach releases it, and so does detach, which also undoes the rest, the device
// leaving presence after it left the hub.
func (s *Server) attach(c *Conn, lim FrameLimit) (detach func(), err error) {
	c.Lim = lim
	// Live frames that arrive once the subscription exists are held until the
	// connected frame is queued: connected is always the first frame.
	c.BeginSync()
	if err := s.deps.Hub.Add(c); err != nil {
		c.EndSync(nil)
		s.deps.Limits.Release(c.UserID())
		s.deps.Log.Warn("subscribe for user failed", zap.String("user_id", c.UserID()), zap.Error(err))
		return nil, err
	}
	if s.deps.Denied(c.UserID()) {
		// Erased between the token check and now (the deny list): the erasure's
		// close of the user's connections may have run before this one was in the hub.
		s.deps.Hub.Remove(c)
		c.EndSync(nil)
		s.deps.Limits.Release(c.UserID())
		return nil, s.deps.AuthError(auth.ErrRevoked)
	}
	s.deps.Joined(c)
	c.Send(&protocol.Frame{Type: protocol.FrameConnected, UserID: c.UserID(), ConnID: c.ID(),
		ServerTime: time.Now().UnixMilli(), HeartbeatMs: s.cfg.PingInterval.Milliseconds()})
	c.EndSync(nil)
	return func() {
		s.deps.Hub.Remove(c)
		s.deps.Left(c)
		s.deps.Limits.Release(c.UserID())
	}, nil
}

// awaitConnect reads the first frame, which must be connect with a valid token.
// It also returns the frame's resume flag.
func (s *Server) awaitConnect(ctx context.Context, ws *websocket.Conn) (auth.Identity, bool, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	defer cancel()
	_, data, err := ws.Read(actx)
	if err != nil {
		return auth.Identity{}, false, protocol.Errorf(protocol.CodeUnauthorized, "no connect frame within %s", s.cfg.AuthTimeout)
	}
	f, err := protocol.DecodeFrame(data)
	if err != nil {
		return auth.Identity{}, false, err
	}
	if f.Type != protocol.FrameConnect {
		return auth.Identity{}, false, protocol.Errorf(protocol.CodeUnauthorized, "first frame must be connect with a token")
	}
	id, err := s.deps.Verify(actx, f.Token)
	return id, f.Resume, err
}

// HandleEvents serves GET /api/v1/events: one fallback connection, for as long as
// the request lasts. It is admitted as a WebSocket is (attach): a foreign origin
// gets 403, too many attempts from the address or too many connections for the
// user or the gateway 429 with Retry-After, a missing or bad token 401, each with
// a JSON error.
func (s *Server) HandleEvents(w http.ResponseWriter, r *http.Request) {
	if !s.deps.OriginAllowed(r) {
		httpx.WriteError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "origin not allowed"))
		return
	}
	if err := s.deps.Limits.AllowConnect(r); err != nil {
		httpx.Refuse(w, err.(*protocol.Error))
		return
	}
	id, err := s.deps.Verify(r.Context(), s.deps.Bearer(r))
	if err != nil {
		httpx.WriteError(w, http.StatusUnauthorized, s.deps.AuthError(err))
		return
	}
	lim, err := s.deps.Limits.Acquire(id.UserID)
	if err != nil {
		httpx.Refuse(w, err.(*protocol.Error))
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // tell nginx-like proxies not to buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		s.deps.Limits.Release(id.UserID)
		return // the ResponseWriter cannot stream
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sink := NewSSESink(w, rc, s.cfg.WriteTimeout)
	c := NewSSE(s.deps.Out, sink, strconv.FormatUint(s.nextID.Add(1), 36), cancel, id.UserID, id.Service, id.ExpiresAt)
	if r.URL.Query().Get("resume") == "1" {
		c.HoldForResume(s.cfg.AuthTimeout) // as on a WebSocket: a sync frame follows
	}
	detach, err := s.attach(c, lim)
	if err != nil {
		sink.SetClose(int(websocket.StatusInternalError), "unavailable: try again")
		sink.Finish()
		return
	}
	defer detach()
	<-ctx.Done()
	c.CloseWith(websocket.StatusAbnormalClosure, "", "") // the client went away, if nothing else closed it
	sink.Finish()
}

// HandleFrames serves POST /api/v1/frames: one client frame for the fallback
// connection named by ?connId=. It answers 202 once the frame has been handled (a
// send is then stored, or refused with an error frame on the stream). Refusals of the
// request itself are JSON errors: 401 bad token, 403 foreign origin, 404 no such
// connection for this user (reconnect), 413 body over gateway.max-frame-bytes.
func (s *Server) HandleFrames(w http.ResponseWriter, r *http.Request) {
	if !s.deps.OriginAllowed(r) {
		httpx.WriteError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "origin not allowed"))
		return
	}
	id, err := s.deps.Verify(r.Context(), s.deps.Bearer(r))
	if err != nil {
		httpx.WriteError(w, http.StatusUnauthorized, s.deps.AuthError(err))
		return
	}
	connID := r.URL.Query().Get("connId")
	if connID == "" || len(connID) > 32 {
		httpx.WriteError(w, http.StatusBadRequest, protocol.Errorf(protocol.CodeBadRequest, "connId from the connected event is required"))
		return
	}
	c := s.deps.Hub.SSEConn(id.UserID, connID)
	if c == nil {
		httpx.WriteError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "no event stream %s for this user: reconnect", connID))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxFrameBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpx.WriteError(w, http.StatusRequestEntityTooLarge, protocol.Errorf(protocol.CodeTooLarge, "frame over %d bytes", s.cfg.MaxFrameBytes))
			return
		}
		httpx.WriteError(w, http.StatusBadRequest, protocol.Errorf(protocol.CodeBadRequest, "read body: %v", err))
		return
	}
	c.SSE().ReqMu.Lock()
	defer c.SSE().ReqMu.Unlock()
	if c.Closed() {
		httpx.WriteError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "event stream closed: reconnect"))
		return
	}
	c.LastRead.Store(time.Now().UnixNano())
	s.deps.Frames.HandleFrame(r.Context(), c, body)
	httpx.WriteJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
}
