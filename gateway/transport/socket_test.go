package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// recConn records the writes that reach the socket.
type recConn struct {
	net.Conn // nil: only Write, SetWriteDeadline and Read are used

	mu     sync.Mutex
	writes [][]byte
	err    error // returned by every Write when set
	read   []byte
}

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recConn) Read(p []byte) (int, error) {
	n := copy(p, r.read)
	r.read = r.read[n:]
	return n, nil
}

func (r *recConn) SetWriteDeadline(time.Time) error { return nil }

func (r *recConn) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.writes {
		out = append(out, string(w))
	}
	return out
}

// TestSockConnWrites: the library's writes go straight out, in order; a write error
// sticks, since a write after a failed one would corrupt the stream.
func TestSockConnWrites(t *testing.T) {
	rec := &recConn{}
	c := &sockConn{Conn: rec, timeout: time.Second}
	for _, s := range []string{"a", "b"} {
		n, err := c.Write([]byte(s))
		require.NoError(t, err)
		require.Equal(t, len(s), n)
	}
	require.Equal(t, []string{"a", "b"}, rec.got())
}

func TestSockConnWriteErrorSticks(t *testing.T) {
	errBroken := errors.New("broken pipe")
	rec := &recConn{err: errBroken}
	c := &sockConn{Conn: rec}
	require.ErrorIs(t, c.writeMessages([][]byte{[]byte("held")}), errBroken)
	rec.err = nil
	_, err := c.Write([]byte("x"))
	require.ErrorIs(t, err, errBroken, "no write after a failed one: the stream would be corrupt")
	require.ErrorIs(t, c.writeMessages([][]byte{[]byte("y")}), errBroken)
	require.Empty(t, rec.got())
}

func TestSockConnReadsPendingFirst(t *testing.T) {
	c := &sockConn{Conn: &recConn{read: []byte("world")}, pending: []byte("hello ")}
	var got []byte
	buf := make([]byte, 4)
	for len(got) < len("hello world") {
		n, err := c.Read(buf)
		require.NoError(t, err)
		got = append(got, buf[:n]...)
	}
	require.Equal(t, "hello world", string(got))
	require.Nil(t, c.pending)
}

// TestUpgradeWriterWebSocket runs a real WebSocket over UpgradeWriter: frames the
// client sent with its upgrade request, frames larger than the small buffers both
// ways, pings, and a batch of messages framed by the gateway that reaches the socket in one write.
func TestUpgradeWriterWebSocket(t *testing.T) {
	big := strings.Repeat("x", 20<<10)
	type server struct {
		ws   *websocket.Conn
		sock *sockConn
		rec  *countConn
	}
	accepted := make(chan server, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := &UpgradeWriter{ResponseWriter: w, timeout: 5 * time.Second}
		ws, err := websocket.Accept(up, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		rec := &countConn{Conn: up.conn.Conn}
		up.conn.Conn = rec
		accepted <- server{ws, up.conn, rec}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
	require.NoError(t, err)
	defer client.CloseNow()
	client.SetReadLimit(1 << 20)
	s := <-accepted
	defer s.ws.CloseNow()
	s.ws.SetReadLimit(1 << 20)

	// Client to server, small and large.
	for _, msg := range []string{"hello", big} {
		require.NoError(t, client.Write(ctx, websocket.MessageText, []byte(msg)))
		_, got, err := s.ws.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}

	// A ping from the server, answered while the client reads.
	readErr := make(chan error, 1)
	msgs := make(chan string, 10)
	go func() {
		for {
			_, p, err := client.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			msgs <- string(p)
		}
	}()
	go func() { _, _, _ = s.ws.Read(ctx) }() // reads the pong
	require.NoError(t, s.ws.Ping(ctx))

	// A batch of messages from the connection's writer: one write to the socket.
	before := s.rec.count()
	batch := []string{"one", "two", big, "three"}
	frames := make([][]byte, len(batch))
	for i, m := range batch {
		frames[i] = []byte(m)
	}
	require.NoError(t, s.sock.writeMessages(frames))
	require.Equal(t, before+1, s.rec.count())
	for _, m := range batch {
		select {
		case got := <-msgs:
			require.Equal(t, m, got)
		case err := <-readErr:
			t.Fatal(err)
		}
	}

	// The library's own write path still works (header and payload may be two writes).
	require.NoError(t, s.ws.Write(ctx, websocket.MessageText, []byte("after")))
	require.Equal(t, "after", <-msgs)
	require.NoError(t, s.ws.Close(websocket.StatusNormalClosure, "bye"))
	require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(<-readErr))
}

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestWriteLoopBatches: frames queued before the writer runs leave in batches of at
// most writeBatchFrames, one socket write each, in order; the queue is empty after.
func TestWriteLoopBatches(t *testing.T) {
	accepted := make(chan *UpgradeWriter, 1)
	wsc := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := &UpgradeWriter{ResponseWriter: w, timeout: 5 * time.Second}
		ws, err := websocket.Accept(up, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- up
		wsc <- ws
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
	require.NoError(t, err)
	defer client.CloseNow()
	up, ws := <-accepted, <-wsc
	defer ws.CloseNow()
	cnt := &countConn{Conn: up.conn.Conn}
	up.conn.Conn = cnt

	c := &Conn{out: &Out{queue: 1000, writeTimeout: 5 * time.Second, slow: new(atomic.Int64)}, ws: ws, sock: up.conn}
	const n = 100 // 64 + 36
	c.mu.Lock()
	for i := range n {
		c.queue = append(c.queue, []byte(strconv.Itoa(i)))
	}
	c.writing = true
	c.mu.Unlock()
	go c.writeLoop()
	for i := range n {
		_, p, err := client.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(i), string(p))
	}
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing && c.queue == nil
	}, time.Second, time.Millisecond)
	require.Equal(t, 2, cnt.count(), "100 frames in batches of 64: two writes")
}

// TestWriteMessages writes messages of every header length (7-bit, 16-bit and
// 64-bit lengths, and more than sockFlushAt bytes at once) straight to the socket,
// interleaved with the library's pings, to a real client; after the library sent a
// close frame no message may follow.
func TestWriteMessages(t *testing.T) {
	type server struct {
		ws   *websocket.Conn
		sock *sockConn
	}
	accepted := make(chan server, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := &UpgradeWriter{ResponseWriter: w, timeout: 5 * time.Second}
		ws, err := websocket.Accept(up, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- server{ws, up.conn}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
	require.NoError(t, err)
	defer client.CloseNow()
	client.SetReadLimit(1 << 20)
	s := <-accepted
	defer s.ws.CloseNow()

	readErr := make(chan error, 1)
	msgs := make(chan string, 100)
	go func() {
		for {
			_, p, err := client.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			msgs <- string(p)
		}
	}()
	go func() { _, _, _ = s.ws.Read(ctx) }() // reads the pongs and the close reply

	var want []string
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 100_000} {
		want = append(want, strings.Repeat(strconv.Itoa(n%10), n))
	}
	batch := make([][]byte, len(want))
	for i, m := range want {
		batch[i] = []byte(m)
	}
	require.NoError(t, s.sock.writeMessages(batch))
	require.NoError(t, s.ws.Ping(ctx))
	require.NoError(t, s.sock.writeMessages(batch[:3]))
	want = append(want, want[:3]...)
	for i, m := range want {
		select {
		case got := <-msgs:
			require.Equal(t, len(m), len(got), "message %d", i)
			require.Equal(t, m, got, "message %d", i)
		case err := <-readErr:
			t.Fatal(err)
		}
	}

	require.NoError(t, s.ws.Close(websocket.StatusNormalClosure, "bye"))
	require.ErrorIs(t, s.sock.writeMessages(batch[:1]), net.ErrClosed)
	require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(<-readErr))
}

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	recConn
	deadlines []time.Time
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

// TestSockConnDeadline: every write happens under a deadline at most timeout ahead
// and at least half of it, renewed only once half has passed.
func TestSockConnDeadline(t *testing.T) {
	d := &deadlineConn{}
	c := &sockConn{Conn: d, timeout: 40 * time.Millisecond}
	start := time.Now()
	for range 3 {
		require.NoError(t, c.writeMessages([][]byte{[]byte("x")}))
		_, err := c.Write([]byte{0x89, 0}) // a ping, from the library
		require.NoError(t, err)
	}
	require.Len(t, d.deadlines, 1, "armed once")
	require.WithinRange(t, d.deadlines[0], start.Add(40*time.Millisecond), time.Now().Add(40*time.Millisecond))
	time.Sleep(25 * time.Millisecond) // more than half passed
	require.NoError(t, c.writeMessages([][]byte{[]byte("x")}))
	require.Len(t, d.deadlines, 2, "renewed")
	require.True(t, d.deadlines[1].After(d.deadlines[0]))
}

// TestWriteMessagesAfterClose: once the library wrote a close frame, messages are
// refused rather than sent after it (RFC 6455 §5.5.1).
func TestWriteMessagesAfterClose(t *testing.T) {
	rec := &recConn{}
	c := &sockConn{Conn: rec}
	require.NoError(t, c.writeMessages([][]byte{[]byte("a")}))
	_, err := c.Write([]byte{0x8a, 0}) // a pong
	require.NoError(t, err)
	require.NoError(t, c.writeMessages([][]byte{[]byte("b")}))
	_, err = c.Write([]byte{0x88, 2, 0x03, 0xe8}) // close, 1000
	require.NoError(t, err)
	require.ErrorIs(t, c.writeMessages([][]byte{[]byte("c")}), net.ErrClosed)
	require.Equal(t, []string{"\x81\x01a", "\x8a\x00", "\x81\x01b", "\x88\x02\x03\xe8"}, rec.got())
}

// A close reason never exceeds what a close frame carries, and is cut on a
// character boundary: a longer one would drop the connection with no status.
func TestCloseReasonFitsACloseFrame(t *testing.T) {
	require.Equal(t, "unauthorized: invalid token", CloseReason("unauthorized", "invalid token"))
	require.Equal(t, "slow_consumer", CloseReason("slow_consumer", ""))
	long := CloseReason("unauthorized", strings.Repeat("é", 200))
	require.LessOrEqual(t, len(long), maxCloseReason)
	require.True(t, utf8.ValidString(long))
}
