// Package transport is the gateway's client connections below the protocol: a
// connection's send queue, its batched writer and its close (Conn), the socket
// under a WebSocket (UpgradeWriter), the event stream of the HTTP fallback
// (SSESink), and the hub that holds the connected users, their one NATS
// subscription each, and delivers to their connections (Hub), with the heartbeat
// that pings quiet connections and the drain that spreads their reconnects on
// shutdown.
//
// Server serves the WebSocket endpoint and the SSE fallback's: it admits,
// authenticates and attaches connections through its Deps, and hands every frame
// a client sends to the gateway's FrameHandler.
// The transport carries frames as encoded bytes: it looks into message frames only
// for their chat and sequence number, to keep a sync's seam free of duplicates, and
// the connection's rate limits reach it as a FrameLimit.
package transport
