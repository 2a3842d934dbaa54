package gateway

import (
	"net/http"

	"github.com/natter-chat/natter/gateway/transport"
)

// conn is a client connection, WebSocket or SSE (gateway/transport): the transport
// admits, authenticates and attaches it and owns its send queue, writer and close;
// the gateway handles its frames (frames.go).
type conn = transport.Conn

// newConnServer builds the WebSocket and SSE endpoints over the gateway's hub,
// limits, token verifier, deny list and presence.
func (g *Gateway) newConnServer() *transport.Server {
	return transport.NewServer(transport.Config{WriteTimeout: g.cfg.WriteTimeout, AuthTimeout: g.cfg.AuthTimeout,
		PingInterval: g.cfg.PingInterval, MaxFrameBytes: g.cfg.MaxFrameBytes, AllowedOrigins: g.cfg.AllowedOrigins},
		transport.Deps{Hub: g.hub, Out: g.out, Verify: g.deps.Auth.Verify, AuthError: authError, Bearer: bearer,
			OriginAllowed: g.originAllowed, Limits: connLimits{g.limits}, Frames: transport.FrameHandlerFunc(g.handleFrame),
			Denied: g.deny.denied, Log: g.log,
			Joined: func(c *conn) { g.presence.Joined(c) }, Left: func(c *conn) { g.presence.Left(c) }})
}

// connLimits is the limiter as the transport applies it (transport.Limiter).
type connLimits struct{ l *limiter }

func (c connLimits) AllowConnect(r *http.Request) error { return c.l.allowConnect(r) }
func (c connLimits) GatewayFull() bool                  { return c.l.gatewayFull() }
func (c connLimits) Release(user string)                { c.l.release(user) }

// Acquire returns a nil FrameLimit, not a nil *connLimit, with an error: the
// transport tests it against nil.
func (c connLimits) Acquire(user string) (transport.FrameLimit, error) {
	cl, err := c.l.acquire(user)
	if err != nil {
		return nil, err
	}
	return cl, nil
}
