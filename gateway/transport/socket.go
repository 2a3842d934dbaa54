package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"
)

// The socket under a WebSocket. coder/websocket keeps, for the connection's life, the
// bufio.Reader and bufio.Writer that Hijack hands it (net/http's: 4 KiB each) and
// flushes its writer after every message, so each frame is one write(2). The
// gateway's Hijack (UpgradeWriter) instead hands it small buffers over a sockConn,
// through which the connection's writer frames a batch of queued messages itself
// (writeMessages): the batch leaves in one write(2).

// Buffer sizes of an upgraded connection. The library writes a frame's header and
// payload into its writer and flushes it at the end of each message: data frames are
// written only by the connection's writer, through writeMessages, so the writer needs to hold
// just a control frame (ping, pong, close: at most 14 + 125 bytes) to send it in one
// write. Reads of frames up to wsReadBuffer bytes take one read(2).
var (
	wsReadBuffer  = 512
	wsWriteBuffer = 256
)

// sockFlushAt is how many framed bytes writeMessages writes out at once: it bounds
// its buffer.
var sockFlushAt = 64 << 10

// sockBufs recycles writeMessages' buffers: a connection holds one only while it
// writes.
var sockBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// UpgradeWriter is the http.ResponseWriter the gateway gives websocket.Accept: its
// Hijack returns the hijacked connection wrapped in a sockConn, with small buffers,
// and drops net/http's buffers (and with them any reference to the request).
type UpgradeWriter struct {
	http.ResponseWriter
	timeout time.Duration // sockConn.timeout
	conn    *sockConn     // set by Hijack
}

// NewUpgradeWriter wraps w for websocket.Accept; a blocked write on the upgraded
// connection fails after writeTimeout (0: unbounded).
func NewUpgradeWriter(w http.ResponseWriter, writeTimeout time.Duration) *UpgradeWriter {
	return &UpgradeWriter{ResponseWriter: w, timeout: writeTimeout}
}

// Hijack implements http.Hijacker.
func (u *UpgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := &sockConn{Conn: nc, timeout: u.timeout}
	// Bytes the client sent right after its upgrade request (a connect frame) may
	// already be in net/http's reader: Read returns them first. Its writer is empty:
	// Hijack flushed the response.
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		c.pending = bytes.Clone(p)
	}
	u.conn = c
	return c, bufio.NewReadWriter(bufio.NewReaderSize(c, wsReadBuffer), bufio.NewWriterSize(c, wsWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (u *UpgradeWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// sockConn is a hijacked WebSocket connection: it hands back what net/http read
// before the hijack, keeps one write deadline armed, makes a write error sticky, and
// writes batches of framed messages in one call (writeMessages).
type sockConn struct {
	net.Conn
	timeout time.Duration // bounds a blocked write (armLocked); 0: unbounded

	pending []byte // received before the hijack; Read returns it first (one reader)

	mu        sync.Mutex // serializes writes to Conn, in order; guards the fields below
	buf       *[]byte    // framed bytes not yet written (writeMessages); nil: none
	err       error      // the first write error: every later write fails
	deadline  time.Time  // the write deadline armed on Conn (armLocked); zero: none
	closeSent bool       // the library wrote a close frame: no message may follow
}

// Read implements net.Conn.
func (c *sockConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write implements net.Conn: the library's own frames (ping, pong, close), each a
// whole frame, written at once.
func (c *sockConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	// The library's writes are whole frames (control frames fit its writer, which
	// it flushes after each frame), so p[0] is a frame header.
	if len(p) > 0 && p[0]&0x0f == wsOpClose {
		c.closeSent = true
	}
	c.armLocked()
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// flushLocked writes the framed bytes held in buf. Caller holds c.mu.
func (c *sockConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if c.buf == nil || len(*c.buf) == 0 {
		return nil
	}
	c.armLocked()
	_, err := c.Conn.Write(*c.buf)
	*c.buf = (*c.buf)[:0]
	if err != nil {
		c.err = err
	}
	return err
}

// WebSocket frame header bits (RFC 6455 §5.2).
const (
	wsFin      = 0x80
	wsOpText   = 0x1
	wsOpClose  = 0x8
	wsLen16    = 126 // payload length in the next 2 bytes
	wsLen64    = 127 // payload length in the next 8 bytes
	wsMaxLen7  = 125
	wsMaxLen16 = 1<<16 - 1
)

// writeMessages writes msgs as text messages, one unfragmented unmasked frame each
// (a server never masks; compression is not negotiated), in order, with one
// write(2) per sockFlushAt bytes. It bypasses the library's writer, which costs a
// few µs per message (locks, a context check, its buffer) next to a write(2) the
// message shares with others: data messages are written only by the connection's
// writer, through here, and the library's own frames (ping, pong, close) are whole
// writes, so frames never interleave. After the library sent a close frame it
// returns net.ErrClosed.
func (c *sockConn) writeMessages(msgs [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.closeSent {
		return net.ErrClosed
	}
	if c.buf == nil {
		c.buf = sockBufs.Get().(*[]byte)
	}
	for _, m := range msgs {
		b := *c.buf
		switch n := len(m); {
		case n <= wsMaxLen7:
			b = append(b, wsFin|wsOpText, byte(n))
		case n <= wsMaxLen16:
			b = append(b, wsFin|wsOpText, wsLen16, byte(n>>8), byte(n))
		default:
			b = append(b, wsFin|wsOpText, wsLen64)
			b = binary.BigEndian.AppendUint64(b, uint64(n))
		}
		*c.buf = append(b, m...)
		if len(*c.buf) >= sockFlushAt {
			if err := c.flushLocked(); err != nil {
				break
			}
		}
	}
	err := c.flushLocked()
	if cap(*c.buf) <= 4*sockFlushAt {
		*c.buf = (*c.buf)[:0]
		sockBufs.Put(c.buf)
	}
	c.buf = nil
	return err
}

// armLocked keeps a write deadline of between timeout/2 and timeout ahead of now on
// the socket, so that a write blocked by a client that stopped reading fails within
// timeout. Setting a deadline costs a runtime timer update, so it is renewed only
// once half of it has passed rather than around every write. Caller holds c.mu.
func (c *sockConn) armLocked() {
	if c.timeout <= 0 {
		return
	}
	now := time.Now()
	if c.deadline.Sub(now) >= c.timeout/2 {
		return
	}
	c.deadline = now.Add(c.timeout)
	_ = c.Conn.SetWriteDeadline(c.deadline)
}
