package transport

import (
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// drainFlushWait bounds how long a close waits for the reconnect hint (and anything
// queued before it) to be written.
var drainFlushWait = time.Second

// Drain sends every connection a reconnect frame {"type":"reconnect","afterMs":N},
// the N spread evenly over window so clients do not all reconnect at once, keeps
// serving each until its N has passed, then closes it with 1001 (going away) and
// reason "shutting_down: ...". It returns when every connection it saw is closed:
// after window at most (plus the flush wait). The gateway refuses new connections
// meanwhile (gateway/drain.go).
func (h *Hub) Drain(window time.Duration) {
	var conns []*Conn
	h.Each(func(c *Conn) { conns = append(conns, c) })
	if len(conns) == 0 {
		return
	}
	h.log.Info("draining connections", zap.Int("connections", len(conns)), zap.Duration("window", window))
	start := time.Now()
	at := make([]time.Duration, len(conns))
	for i, c := range conns {
		at[i] = drainOffset(i, len(conns), window)
		c.Send(&protocol.Frame{Type: protocol.FrameReconnect, AfterMs: at[i].Milliseconds()})
	}
	for i, c := range conns {
		time.Sleep(time.Until(start.Add(at[i])))
		c.WaitFlushed(drainFlushWait)
		c.CloseWith(websocket.StatusGoingAway, protocol.CodeShuttingDown, "server draining: reconnect")
	}
}

// AwaitClosed waits, at most d, until every connection's close handshake is done
// and its goroutine has returned: stopping the hub earlier (Stop) would drop them
// without their close frame.
func (h *Hub) AwaitClosed(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if conns, _ := h.Count(); conns == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drainOffset is when connection i of n is closed and told to reconnect: the
// midpoints of n equal slices of window, so the first is never at 0 and the last
// is before the window ends.
func drainOffset(i, n int, window time.Duration) time.Duration {
	return window * time.Duration(2*i+1) / time.Duration(2*n)
}
