package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
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

var errSSEClosed = errors.New("gateway: event stream closed")

// sseSink is the server→client half of an HTTP fallback connection.
type sseSink struct {
	timeout time.Duration // bounds one write

	mu        sync.Mutex // serializes writes; guards the fields below
	w         http.ResponseWriter
	rc        *http.ResponseController
	done      bool   // the GET handler is returning: w must not be touched again
	closeCode int    // set by closeWith: the close event to write last; 0: none
	closeWhy  string // its reason

	// reqMu serializes POSTed frames, as a WebSocket's single read loop does, so one
	// connection's frames are handled in order and never concurrently.
	reqMu sync.Mutex
}

// write sends each frame as one event and flushes them together. A frame is one
// line of JSON; any newline in it is split across data lines, which SSE joins back
// with "\n".
func (s *sseSink) write(frames [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errSSEClosed
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	var buf bytes.Buffer
	size := 0
	for _, frame := range frames {
		size += len(frame) + 8
	}
	buf.Grow(size)
	for _, frame := range frames {
		for _, line := range bytes.Split(frame, []byte("\n")) {
			buf.WriteString("data: ")
			buf.Write(bytes.TrimSuffix(line, []byte("\r")))
			buf.WriteByte('\n')
		}
		buf.WriteByte('\n')
	}
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// ping writes an SSE comment: it keeps proxies from timing the stream out and fails
// when the client has gone.
func (s *sseSink) ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errSSEClosed
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := io.WriteString(s.w, ": ping\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// setClose records the close event; it does no I/O (closeWith may be called from a
// delivery path that must not block). The stream's handler writes it as it ends.
func (s *sseSink) setClose(code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeCode == 0 {
		s.closeCode, s.closeWhy = code, reason
	}
}

// finish writes the close event, if any, and forbids further writes. The GET handler
// calls it before returning.
func (s *sseSink) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if s.closeCode != 0 {
		b, _ := json.Marshal(map[string]any{"code": s.closeCode, "reason": s.closeWhy})
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
		if _, err := io.WriteString(s.w, "event: close\ndata: "+string(b)+"\n\n"); err == nil {
			_ = s.rc.Flush()
		}
	}
	s.done = true
}

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
	sink := &sseSink{timeout: g.cfg.WriteTimeout, w: w, rc: rc}
	c := &conn{out: g.out, sse: sink, id: strconv.FormatUint(g.nextID.Add(1), 36), cancel: cancel,
		user: id.UserID, service: id.Service, expires: id.ExpiresAt}
	c.lastRead.Store(time.Now().UnixNano())
	if r.URL.Query().Get("resume") == "1" {
		c.holdForResume(g.cfg.AuthTimeout) // as on a WebSocket: a sync frame follows
	}
	detach, err := g.attach(c, lim) // ws.go
	if err != nil {
		sink.setClose(int(websocket.StatusInternalError), "unavailable: try again")
		sink.finish()
		return
	}
	defer detach()
	<-ctx.Done()
	c.closeWith(websocket.StatusAbnormalClosure, "", "") // the client went away, if nothing else closed it
	sink.finish()
}

// sseConn returns user's fallback connection connID, or nil.
func (g *Gateway) sseConn(user, connID string) *conn {
	g.hub.mu.RLock()
	defer g.hub.mu.RUnlock()
	if e := g.hub.users[user]; e != nil {
		for _, c := range e.conns {
			if c.id == connID && c.sse != nil {
				return c
			}
		}
	}
	return nil
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
	c := g.sseConn(id.UserID, connID)
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
	c.sse.reqMu.Lock()
	defer c.sse.reqMu.Unlock()
	if c.isClosed() {
		writeError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "event stream closed: reconnect"))
		return
	}
	c.lastRead.Store(time.Now().UnixNano())
	g.handleFrame(r.Context(), c, body)
	writeJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
}
