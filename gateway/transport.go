package gateway

import "github.com/natter-chat/natter/gateway/transport"

// conn is a client connection, WebSocket or SSE (gateway/transport): the gateway
// authenticates and attaches it (ws.go, sse.go) and handles its frames (frames.go);
// the transport owns its send queue, writer and close.
type conn = transport.Conn
