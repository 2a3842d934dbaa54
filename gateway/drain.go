package gateway

import (
	"net/http"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Graceful drain. When the gateway's context ends (SIGTERM), it
//
//  1. stops accepting: new WebSocket and event-stream connections get HTTP 503 with
//     code shutting_down, and Draining reports true (the process's /readyz turns
//     unready, so load balancers stop sending traffic);
//  2. sends every connection a reconnect frame {"type":"reconnect","afterMs":N}, the
//     N spread evenly over Config.DrainWindow, so clients do not all reconnect at once;
//  3. keeps serving each connection (sends are still accepted and acked, deliveries
//     still arrive) until its N has passed, then closes it with 1001 (going away) and
//     reason "shutting_down: ...". A client that ignores the hint reconnects at the
//     close, which is spread the same way.
//
// Nothing acked is at stake: an ack means JetStream stored the message.

// Draining reports whether the gateway is draining: it refuses new connections.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// refuseWhileDraining answers new connection attempts with 503 while draining.
func (g *Gateway) refuseWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.draining.Load() && (r.URL.Path == "/ws" || r.URL.Path == SSEPath) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, protocol.Errorf(protocol.CodeShuttingDown, "server draining: connect to another server"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// drain runs steps 1-3 above (the hub's Drain) and returns when every connection it
// saw is closed: after DrainWindow at most (plus the flush wait). With the NATS
// connection closed for good there is nothing to hand over, and it returns at once.
func (g *Gateway) drain() {
	g.draining.Store(true)
	if g.deps.NC != nil && g.deps.NC.IsClosed() {
		return
	}
	g.hub.Drain(g.cfg.DrainWindow)
}

// awaitClosed waits, at most d, until every connection has closed (the hub's
// AwaitClosed). With NATS closed for good (a crash) it does not wait.
func (g *Gateway) awaitClosed(d time.Duration) {
	if g.deps.NC != nil && g.deps.NC.IsClosed() {
		return
	}
	g.hub.AwaitClosed(d)
}
