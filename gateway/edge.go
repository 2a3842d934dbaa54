package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// The edge guard: what every HTTP request meets before a route does.
//
//   - In dev mode (tokens signed with a generated secret, anyone on the machine may
//     mint one) only loopback Host names are served. A page on a foreign site whose
//     DNS name is re-pointed at 127.0.0.1 (DNS rebinding) reaches a developer's
//     server with its own name in Host: it gets 421 bad_host and nothing else.
//   - Requests that read a body get a read deadline (gateway.body-timeout, uploads
//     gateway.upload-timeout), so a body trickled a byte at a time cannot hold a
//     connection and its handler. Streaming routes (the WebSocket upgrade, the SSE
//     stream) get none: a deadline set before a hijack would outlive it.
//
// The HTTP server around it (Run) bounds headers (ReadHeaderTimeout,
// MaxHeaderBytes), idle keep-alive connections (IdleTimeout) and the connections
// one remote IP may hold open (gateway.limits.conns-per-ip, gateway/transport/listener.go).

// LoopbackHost reports whether host (a name or an IP, without port) can only mean
// this machine: "localhost", a name under ".localhost", or a loopback IP. An empty
// host (all interfaces) is not loopback.
func LoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // IPv6 zone
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHostPort is LoopbackHost for "host", "host:port" or "[v6]:port".
func loopbackHostPort(hp string) bool {
	if h, _, err := net.SplitHostPort(hp); err == nil {
		return LoopbackHost(h)
	}
	return LoopbackHost(hp)
}

// loopbackRemote reports whether the request's TCP peer is on this machine.
func loopbackRemote(r *http.Request) bool {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// edgeGuard wraps the routes with the checks above.
func (g *Gateway) edgeGuard(next http.Handler) http.Handler {
	dev := g.deps.Auth.IsDev()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dev && !loopbackHostPort(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, protocol.Errorf(protocol.CodeBadHost,
				"this is a development server: it answers only to localhost, 127.0.0.1 or [::1] in the Host header"))
			return
		}
		if d := g.bodyDeadline(r); d > 0 {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, h: w.Header()}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the body's read deadline once the body is read: past it, the
// server's own read of the connection (which notices a client going away) would
// time out and cancel a handler still at work. A body that fails to arrive in time
// closes the connection after the answer, so the rest of it is never waited for.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	h    http.Header
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if err == io.EOF {
			_ = b.rc.SetReadDeadline(time.Time{})
		} else {
			b.h.Set("Connection", "close")
		}
	}
	return n, err
}

// bodyDeadline is how long the request's body may take to arrive: 0 for the
// streaming routes and for requests that declare no body.
func (g *Gateway) bodyDeadline(r *http.Request) time.Duration {
	switch {
	case r.URL.Path == "/ws", r.URL.Path == SSEPath && r.Method == http.MethodGet:
		return 0
	case r.ContentLength == 0 && len(r.TransferEncoding) == 0:
		return 0
	case r.URL.Path == "/api/v1/media" && r.Method == http.MethodPost:
		return g.cfg.UploadTimeout
	}
	return g.cfg.BodyTimeout
}
