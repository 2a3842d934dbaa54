package transport

import (
	"context"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/protocol"
)

// FrameHandler handles one frame a client sent, WebSocket or SSE (the gateway's
// frames.go): it answers on c, and the next frame of c is not read until it
// returns.
type FrameHandler interface {
	HandleFrame(ctx context.Context, c *Conn, data []byte)
}

// FrameHandlerFunc is a function as a FrameHandler.
type FrameHandlerFunc func(ctx context.Context, c *Conn, data []byte)

// HandleFrame calls f.
func (f FrameHandlerFunc) HandleFrame(ctx context.Context, c *Conn, data []byte) { f(ctx, c, data) }

// ReadLoop hands the frames of a WebSocket connection to h until the connection
// ends. Frames are handled with ctx; the reads themselves are not bounded by it but
// end when the socket is closed (CloseWith, or the library on a failed write): with
// a cancellable context the library would register a context.AfterFunc for every
// read, which an idle connection holds for its whole life. A binary message is
// answered with bad_request and the connection stays open.
func (c *Conn) ReadLoop(ctx context.Context, h FrameHandler) {
	rctx := context.WithoutCancel(ctx)
	for {
		typ, data, err := c.ws.Read(rctx)
		if err != nil {
			// Read limit exceeded: the library has already closed with 1009.
			c.CloseWith(websocket.StatusAbnormalClosure, "", "")
			return
		}
		c.LastRead.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			c.Send(protocol.ErrorFrame(protocol.Errorf(protocol.CodeBadRequest, "frames are JSON text"), "", "", ""))
			continue
		}
		h.HandleFrame(ctx, c, data)
	}
}
