package gateway

import (
	"net/http"
	"net/url"
	"path"
	"strings"
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
//     a WebSocket (the gateway's handleFrame); answers (ack, error, results) arrive on the event
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
