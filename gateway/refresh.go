package gateway

import (
	"context"
	"math"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Token refresh on an open connection. Shortly before a connection's token expires
// (expiryWarning), the gateway sends it an error frame with code token_expiring
// (retry false; the connection stays). The client answers with a connect frame
// carrying a fresh token for the same user, which extends the connection; the
// gateway replies with a connected frame echoing the connect's id. A connection that
// does not renew is closed with 4002 token_expired expiryGrace after expiry.

const (
	expiryWarning = time.Minute
	expiryGrace   = 30 * time.Second
)

// expiry is the connection's current token expiry (zero: none).
func connExpiry(c *conn) time.Time {
	if n := c.Renewed.Load(); n != 0 {
		if n == math.MaxInt64 {
			return time.Time{}
		}
		return time.Unix(0, n)
	}
	return c.Expires()
}

// checkExpiry runs on each heartbeat tick: it warns once when the token is about to
// expire and closes the connection expiryGrace after it has. It reports whether the
// connection is being closed.
func (g *Gateway) checkExpiry(c *conn, now time.Time) bool {
	exp := connExpiry(c)
	if exp.IsZero() {
		return false
	}
	if now.After(exp.Add(expiryGrace)) {
		go c.CloseWith(protocol.CloseTokenExpired, protocol.CodeTokenExpired, "token expired: refresh it and reconnect")
		return true
	}
	if now.After(exp.Add(-expiryWarning)) && c.Warned.CompareAndSwap(false, true) {
		c.Send(&protocol.Frame{Type: protocol.FrameError, Code: protocol.CodeTokenExpiring,
			Message:    "token expires at " + exp.UTC().Format(time.RFC3339) + ": send connect with a new token",
			ServerTime: now.UnixMilli()})
	}
	return false
}

// onRenew handles a connect frame on an open connection: a valid token for the same
// user (and kind: user or service) replaces the connection's expiry. A bad token
// is refused (unauthorized, token_expired), another user's is forbidden; either way
// the connection keeps its current token.
func (g *Gateway) onRenew(ctx context.Context, c *conn, f *protocol.Frame) error {
	id, err := g.deps.Auth.Verify(ctx, f.Token)
	if err != nil {
		return authError(err)
	}
	if id.UserID != c.UserID() || id.Service != c.Service() {
		return protocol.Errorf(protocol.CodeForbidden, "a connection's token can be renewed only for the same user")
	}
	n := int64(math.MaxInt64)
	if !id.ExpiresAt.IsZero() {
		n = id.ExpiresAt.UnixNano()
	}
	c.Renewed.Store(n)
	c.Warned.Store(false)
	c.Send(&protocol.Frame{Type: protocol.FrameConnected, ID: f.ID, UserID: c.UserID(), ConnID: c.ID(),
		ServerTime: time.Now().UnixMilli(), HeartbeatMs: g.cfg.PingInterval.Milliseconds()})
	return nil
}
