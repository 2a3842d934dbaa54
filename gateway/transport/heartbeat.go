package transport

import (
	"context"
	"time"
)

// Heartbeats pings connections that have been quiet for interval and closes those
// that do not answer within pongTimeout (1008 "timeout: no pong"), until ctx ends.
// On each tick, check runs first for every connection (the gateway's token expiry:
// it warns, or closes); true skips the connection. One goroutine for all
// connections; a ping runs in a short-lived goroutine.
func (h *Hub) Heartbeats(ctx context.Context, interval, pongTimeout time.Duration, check func(c *Conn, now time.Time) bool) {
	tick := time.NewTicker(max(interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.Each(func(c *Conn) {
				if check(c, now) {
					return
				}
				if now.UnixNano()-c.LastRead.Load() < int64(interval) || !c.Pinging.CompareAndSwap(false, true) {
					return
				}
				go func() {
					defer c.Pinging.Store(false)
					pctx, cancel := context.WithTimeout(ctx, pongTimeout)
					defer cancel()
					if err := c.Ping(pctx); err != nil {
						c.CloseWith(1008, "timeout", "no pong")
						return
					}
					c.LastRead.Store(time.Now().UnixNano())
				}()
			})
		}
	}
}
