package gateway

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
// gateway's Hijack (upgradeWriter) instead hands it small buffers over a corkConn,
// which the connection's writer corks while it writes a batch of queued frames:
// the batch leaves in one write(2).

// Buffer sizes of an upgraded connection. The library writes a frame's header and
// payload into its writer and flushes it at the end of each message: data frames are
// written only by the connection's writer, always corked, so the writer needs to hold
// just a control frame (ping, pong, close: at most 14 + 125 bytes) to send it in one
// write. Reads of frames up to wsReadBuffer bytes take one read(2).
var (
	wsReadBuffer  = 512
	wsWriteBuffer = 256
)

// corkFlushAt is how many corked bytes are written out at once, without waiting
// for uncork: it bounds the cork buffer.
var corkFlushAt = 64 << 10

// corkBufs recycles cork buffers: a connection holds one only while it is corked.
var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// upgradeWriter is the http.ResponseWriter the gateway gives websocket.Accept: its
// Hijack returns the hijacked connection wrapped in a corkConn, with small buffers,
// and drops net/http's buffers (and with them any reference to the request).
type upgradeWriter struct {
	http.ResponseWriter
	timeout time.Duration // corkConn.timeout
	conn    *corkConn     // set by Hijack
}

// Hijack implements http.Hijacker.
func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := &corkConn{Conn: nc, timeout: u.timeout}
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
func (u *upgradeWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// corkConn is a hijacked connection whose writes can be held back. Between cork and
// uncork, writes are appended to a buffer (written out whenever it reaches
// corkFlushAt) and uncork writes the rest in one call; otherwise writes go straight
// to the socket. Writers other than the corking one (the library's pongs and close
// frames) are held only until that uncork, which always follows.
type corkConn struct {
	net.Conn
	timeout time.Duration // bounds a blocked write (armLocked); 0: unbounded

	pending []byte // received before the hijack; Read returns it first (one reader)

	mu        sync.Mutex // serializes writes to Conn, in order; guards the fields below
	corked    bool
	buf       *[]byte   // corked bytes not yet written; nil: none
	err       error     // the first write error: every later write fails
	deadline  time.Time // the write deadline armed on Conn (armLocked); zero: none
	closeSent bool      // the library wrote a close frame: no message may follow
}

// Read implements net.Conn.
func (c *corkConn) Read(p []byte) (int, error) {
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

// Write implements net.Conn. Corked, it reports success once p is buffered.
func (c *corkConn) Write(p []byte) (int, error) {
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
	if !c.corked {
		c.armLocked()
		n, err := c.Conn.Write(p)
		if err != nil {
			c.err = err
		}
		return n, err
	}
	if c.buf == nil {
		c.buf = corkBufs.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	if len(*c.buf) >= corkFlushAt {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// cork holds writes until uncork, which must follow.
func (c *corkConn) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = true
}

// uncork writes the held bytes in one write and lets writes through again. It
// returns the first error of a write since cork.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	err := c.flushLocked()
	if c.buf != nil {
		if cap(*c.buf) <= 4*corkFlushAt {
			*c.buf = (*c.buf)[:0]
			corkBufs.Put(c.buf)
		}
		c.buf = nil
	}
	return err
}

// flushLocked writes the held bytes. Caller holds c.mu.
func (c *corkConn) flushLocked() error {
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
// write(2) per corkFlushAt bytes. It bypasses the library's writer, which costs a
// few µs per message (locks, a context check, its buffer) next to a write(2) the
// message shares with others: data messages are written only by the connection's
// writer, through here, and the library's own frames (ping, pong, close) are whole
// writes, so frames never interleave. After the library sent a close frame it
// returns net.ErrClosed.
func (c *corkConn) writeMessages(msgs [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.closeSent {
		return net.ErrClosed
	}
	if c.buf == nil {
		c.buf = corkBufs.Get().(*[]byte)
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
		if len(*c.buf) >= corkFlushAt {
			if err := c.flushLocked(); err != nil {
				break
			}
		}
	}
	err := c.flushLocked()
	if cap(*c.buf) <= 4*corkFlushAt {
		*c.buf = (*c.buf)[:0]
		corkBufs.Put(c.buf)
	}
	c.buf = nil
	return err
}

// armLocked keeps a write deadline of between timeout/2 and timeout ahead of now on
// the socket, so that a write blocked by a client that stopped reading fails within
// timeout. Setting a deadline costs a runtime timer update, so it is renewed only
// once half of it has passed rather than around every write. Caller holds c.mu.
func (c *corkConn) armLocked() {
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
