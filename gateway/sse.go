package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/gateway/transport"
	"github.com/natter-chat/natter/pkg/protocol"
)

// The HTTP fallback for networks that block WebSockets: the same frames, the same
// handling and the same guarantees, over two plain HTTP endpoints.
//
//   - GET /api/v1/events is a text/event-stream. Its first event is the connected
//     frame; every server→client frame that a WebSocket would carry follows as one
//     `data:` event, in the same order. The connection lives as long as this request.
//     When the server closes it on purpose, a last `event: close` carries
//     {"code": <WebSocket close code>, "reason": "<error code>: <text>"}. With
//     ?resume=1 live frames are held until the client's first sync frame is answered
//     (as with connect's resume on a WebSocket).
//   - POST /api/v1/frames?connId=<connId of the connected frame> carries one
//     client→server frame as its JSON body. It is handled exactly as the same frame on
//     a WebSocket (g.handleFrame); answers (ack, error, results) arrive on the event
//     stream. POSTs to one stream are handled one at a time, in arrival order.
//
// Both authenticate with "Authorization: Bearer <jwt>" or ?token= (EventSource cannot
// set headers). A POST must carry a token for the same user as the stream's.

// SSEPath and FramesPath are the HTTP fallback endpoints.
const (
	SSEPath    = "/api/v1/events"
	FramesPath = "/api/v1/frames"
)

// originAllowed applies the WebSocket origin rule to the HTTP fallback: no Origin
// header (a non-browser client) or the same host is allowed, and so are hosts
// matching AllowedOrigins.
func (g *Gateway) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range g.cfg.AllowedOrigins {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// handleEvents serves GET /api/v1/events: one fallback connection, for as long as
// the request lasts. It is admitted as a WebSocket is (attach, ws.go): a foreign
// origin gets 403, too many attempts from the address or too many connections for
// the user or the gateway 429 with Retry-After, a missing or bad token 401, each
// with a JSON error.
func (g *Gateway) handleEvents(w http.ResponseWriter, r *http.Request) {
	if !g.originAllowed(r) {
		writeError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "origin not allowed"))
		return
	}
	if err := g.limits.allowConnect(r); err != nil { // limits.go
		refuse(w, err.(*protocol.Error))
		return
	}
	id, err := g.deps.Auth.Verify(r.Context(), bearer(r))
	if err != nil {
		writeError(w, http.StatusUnauthorized, authError(err))
		return
	}
	lim, err := g.limits.acquire(id.UserID)
	if err != nil {
		refuse(w, err.(*protocol.Error))
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
		g.limits.release(id.UserID)
		return // the ResponseWriter cannot stream
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sink := transport.NewSSESink(w, rc, g.cfg.WriteTimeout)
	c := transport.NewSSE(g.out, sink, strconv.FormatUint(g.nextID.Add(1), 36), cancel, id.UserID, id.Service, id.ExpiresAt)
	if r.URL.Query().Get("resume") == "1" {
		c.HoldForResume(g.cfg.AuthTimeout) // as on a WebSocket: a sync frame follows
	}
	detach, err := g.attach(c, lim) // ws.go
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

// handleFrames serves POST /api/v1/frames: one client frame for the fallback
// connection named by ?connId=. It answers 202 once the frame has been handled (a
// send is then stored, or refused with an error frame on the stream). Refusals of the
// request itself are JSON errors: 401 bad token, 403 foreign origin, 404 no such
// connection for this user (reconnect), 413 body over gateway.max-frame-bytes.
func (g *Gateway) handleFrames(w http.ResponseWriter, r *http.Request) {
	if !g.originAllowed(r) {
		writeError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "origin not allowed"))
		return
	}
	id, err := g.deps.Auth.Verify(r.Context(), bearer(r))
	if err != nil {
		writeError(w, http.StatusUnauthorized, authError(err))
		return
	}
	connID := r.URL.Query().Get("connId")
	if connID == "" || len(connID) > 32 {
		writeError(w, http.StatusBadRequest, protocol.Errorf(protocol.CodeBadRequest, "connId from the connected event is required"))
		return
	}
	c := g.hub.SSEConn(id.UserID, connID)
	if c == nil {
		writeError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "no event stream %s for this user: reconnect", truncate(connID, 32)))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxFrameBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, protocol.Errorf(protocol.CodeTooLarge, "frame over %d bytes", g.cfg.MaxFrameBytes))
			return
		}
		writeError(w, http.StatusBadRequest, protocol.Errorf(protocol.CodeBadRequest, "read body: %v", err))
		return
	}
	c.SSE().ReqMu.Lock()
	defer c.SSE().ReqMu.Unlock()
	if c.Closed() {
		writeError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "event stream closed: reconnect"))
		return
	}
	c.LastRead.Store(time.Now().UnixNano())
	g.handleFrame(r.Context(), c, body)
	writeJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
}
