package transport

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	pmetrics "github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Out is what a connection's sending needs from its gateway: the send queue's
// bounds, the write timeout and where to count. One per gateway, shared by its
// connections and never modified after the gateway's New.
type Out struct {
	// queue and queueBytes bound a connection's send queue (gateway.send-queue,
	// gateway.send-queue-bytes; queueBytes 0: no byte bound).
	queue, queueBytes int
	// writeTimeout bounds one write of a WebSocket without a socket (tests).
	writeTimeout time.Duration
	// slow counts connections closed for a full queue.
	slow *atomic.Int64
	// metrics counts frames sent; nil: none.
	metrics *pmetrics.Metrics
}

// NewOut returns the sending settings of a gateway's connections: queue frames and
// queueBytes bytes (0: no byte bound) per send queue, writeTimeout for a write of a
// WebSocket without a socket; slow counts connections closed for a full queue, m
// the frames sent (nil: none).
func NewOut(queue, queueBytes int, writeTimeout time.Duration, slow *atomic.Int64, m *pmetrics.Metrics) *Out {
	return &Out{queue: queue, queueBytes: queueBytes, writeTimeout: writeTimeout, slow: slow, metrics: m}
}

// Conn is one client connection, WebSocket or SSE: its identity, its send queue
// and writer, and the hold of live frames during a sync.
// Its only goroutine is the one that reads it; a writer goroutine exists only while
// frames are queued, so an idle connection holds no goroutine of its own beyond that.
type Conn struct {
	out     *Out
	ws      *websocket.Conn // nil for an SSE connection
	sock    *sockConn       // ws's socket (socket.go); nil for SSE, and in tests
	sse     *SSESink        // nil for a WebSocket connection
	id      string
	user    string
	service bool
	expires time.Time // token expiry; zero: none

	// Lim is the connection's abuse limits, set by the gateway as it attaches the
	// connection (gateway/limits.go); nil: none.
	Lim FrameLimit
	// Renewed is the expiry (unix nanos) of a token renewed by connect; 0: none.
	// Warned is set once token_expiring was sent for the current token. Both are
	// the gateway's (gateway/refresh.go).
	Renewed atomic.Int64
	Warned  atomic.Bool

	// LastRead is the unix nanos of the last frame read; Pinging is set while a
	// heartbeat ping is in flight (the gateway's heartbeats).
	LastRead atomic.Int64
	Pinging  atomic.Bool

	mu         sync.Mutex // guards the fields below
	queue      [][]byte   // frames waiting for the writer; nil when empty
	queueBytes int        // the bytes of the frames in queue
	writing    bool       // a writer goroutine is running
	closed     bool
	syncing    int               // syncs in progress: live frames are held meanwhile
	resumeHold *time.Timer       // non-nil while a resume hold awaits the first sync
	synced     map[string]uint64 // per chat, the cutoff of the last sync until live passes it
	held       [][]byte          // live frames held during a sync
	heldBytes  int               // the bytes of the frames in held
	sent       map[string]uint64 // per chat, the highest seq a finished sync sent

	cancel context.CancelFunc // ends the connection's context
}

// FrameLimit charges one client frame of a type to a connection's rate limits; an
// error refuses the frame (gateway/limits.go implements it).
type FrameLimit interface {
	AllowFrame(typ string) error
}

// NewWS returns the connection of an upgraded WebSocket: up is the UpgradeWriter
// that websocket.Accept was given (its socket carries the batched writes; nil:
// writes go through ws, as in tests). cancel ends the connection's context; the
// identity is set by Authenticate once known.
func NewWS(out *Out, ws *websocket.Conn, up *UpgradeWriter, id string, cancel context.CancelFunc) *Conn {
	c := &Conn{out: out, ws: ws, id: id, cancel: cancel}
	if up != nil {
		c.sock = up.conn
	}
	c.LastRead.Store(time.Now().UnixNano())
	return c
}

// NewSSE returns the connection of an SSE event stream, authenticated as user.
func NewSSE(out *Out, sink *SSESink, id string, cancel context.CancelFunc, user string, service bool, expires time.Time) *Conn {
	c := &Conn{out: out, sse: sink, id: id, cancel: cancel, user: user, service: service, expires: expires}
	c.LastRead.Store(time.Now().UnixNano())
	return c
}

// Authenticate sets the identity of a WebSocket connection, before it is added to
// a hub.
func (c *Conn) Authenticate(user string, service bool, expires time.Time) {
	c.user, c.service, c.expires = user, service, expires
}

// ID is the connection's ID (the connected frame's connId).
func (c *Conn) ID() string { return c.id }

// UserID is the connected user.
func (c *Conn) UserID() string { return c.user }

// Service reports a service token's connection.
func (c *Conn) Service() bool { return c.service }

// Expires is the token's expiry; zero: none.
func (c *Conn) Expires() time.Time { return c.expires }

// WS is the connection's WebSocket; nil for SSE.
func (c *Conn) WS() *websocket.Conn { return c.ws }

// SSE is the connection's event stream; nil for a WebSocket.
func (c *Conn) SSE() *SSESink { return c.sse }

// Enqueue queues one frame. It never blocks: a connection whose queue is full (in
// frames or in bytes) is closed with slow_consumer (it resumes with sync on
// reconnect), so one slow client never delays delivery to others. Frames held
// during a sync are bounded at four times the queue's frames and twice its bytes.
func (c *Conn) Enqueue(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.syncing > 0 {
		if len(c.held) >= c.out.queue*4 || (c.out.queueBytes > 0 && c.heldBytes+len(frame) > 2*c.out.queueBytes) {
			c.mu.Unlock()
			c.CloseWith(protocol.CloseSlowConsumer, protocol.CodeSlowConsumer, "too many live frames during sync")
			return
		}
		c.held = append(c.held, frame)
		c.heldBytes += len(frame)
		c.mu.Unlock()
		return
	}
	if c.synced != nil && c.dropSynced(frame) {
		c.mu.Unlock()
		return
	}
	c.pushLocked(frame)
}

// dropSynced reports whether frame is a message a finished sync already sent. The
// sequencer appends to the log before it fans out, so a sync that read the log can
// beat the live copy of the same message. Once a chat's live messages pass the
// sync's cutoff, no older live copy can follow (fan-out is in seq order), and the
// cutoff is forgotten. Caller holds c.mu.
func (c *Conn) dropSynced(frame []byte) bool {
	chat, seq, ok := messageSeq(frame)
	if !ok {
		return false
	}
	cutoff, tracked := c.synced[chat]
	if !tracked {
		return false
	}
	if seq <= cutoff {
		return true
	}
	delete(c.synced, chat)
	if len(c.synced) == 0 {
		c.synced = nil
	}
	return false
}

// Send queues a frame that answers the client (ack, error, results): it is never
// held back by a sync.
func (c *Conn) Send(f *protocol.Frame) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.pushLocked(protocol.EncodeFrame(f))
}

// SendPaced queues a frame of a long answer (sync, history) without overflowing the
// queue: it waits while the queue is more than half full, in frames or in bytes, so
// a large resume is paced by the client's reading instead of closing it as a slow
// consumer, and a client that asks for more than it reads stops being read (its
// frames wait in its socket, not in the gateway's memory). The frame may take the
// queue past half full, by at most its own size (a history page is capped at
// gateway.history-page-bytes, which Validate keeps under half the queue's bytes).
// It returns false if the connection closed or ctx ended.
func (c *Conn) SendPaced(ctx context.Context, f *protocol.Frame) bool {
	frame := protocol.EncodeFrame(f)
	maxBytes := c.out.queueBytes
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return false
		}
		if len(c.queue) < c.out.queue/2 && (maxBytes <= 0 || c.queueBytes < maxBytes/2) {
			c.pushFrameLocked(frame, false)
			return true
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// pushLocked appends frame and starts the writer if needed; it unlocks c.mu. A
// queue at gateway.send-queue frames, or that frame would take past
// gateway.send-queue-bytes, closes the connection as a slow consumer instead.
func (c *Conn) pushLocked(frame []byte) { c.pushFrameLocked(frame, true) }

// pushFrameLocked is pushLocked; with bounded false the byte bound is not checked
// (sendPaced checked it before). It unlocks c.mu.
func (c *Conn) pushFrameLocked(frame []byte, bounded bool) {
	if len(c.queue) >= c.out.queue ||
		(bounded && c.out.queueBytes > 0 && c.queueBytes+len(frame) > c.out.queueBytes) {
		c.mu.Unlock()
		c.out.slow.Add(1)
		c.CloseWith(protocol.CloseSlowConsumer, protocol.CodeSlowConsumer, "send queue full: reconnect and sync")
		return
	}
	c.queue = append(c.queue, frame)
	c.queueBytes += len(frame)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// Limits of one batch of the writer: it writes up to this many queued frames, or
// the frames that fit in writeBatchBytes (at least one), with one write(2).
var (
	writeBatchFrames = 64
	writeBatchBytes  = 64 << 10
)

// writeLoop writes queued frames in order, in batches, and exits when the queue is
// empty. A batch stays in the queue while it is written, so the queue's limits count
// it.
func (c *Conn) writeLoop() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closed {
			c.queue = nil
			c.queueBytes = 0
			c.writing = false
			c.mu.Unlock()
			return
		}
		n, size := 1, len(c.queue[0])
		for n < len(c.queue) && n < writeBatchFrames && size+len(c.queue[n]) <= writeBatchBytes {
			size += len(c.queue[n])
			n++
		}
		batch := c.queue[:n:n] // only this goroutine removes frames; others append
		c.mu.Unlock()
		if err := c.write(batch); err != nil {
			c.CloseWith(websocket.StatusAbnormalClosure, "", "")
		}
		c.mu.Lock()
		if c.closed {
			c.writing = false
			c.queue = nil
			c.queueBytes = 0
			c.mu.Unlock()
			return
		}
		for _, f := range c.queue[:n] {
			c.queueBytes -= len(f)
		}
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		c.mu.Unlock()
	}
}

// write writes frames in order within WriteTimeout: on a WebSocket's socket directly,
// so that they leave in one write(2) (socket.go writeMessages).
func (c *Conn) write(frames [][]byte) error {
	for _, f := range frames {
		c.out.metrics.FrameOut(f)
	}
	if c.sse != nil {
		return c.sse.write(frames)
	}
	if c.sock != nil {
		return c.sock.writeMessages(frames) // the socket's deadline bounds it
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.out.writeTimeout)
	defer cancel()
	for _, f := range frames {
		if err := c.ws.Write(ctx, websocket.MessageText, f); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks the connection is alive: a WebSocket ping that waits for its pong, or
// an SSE comment line written within the write timeout.
func (c *Conn) Ping(ctx context.Context) error {
	if c.sse != nil {
		return c.sse.ping()
	}
	return c.ws.Ping(ctx)
}

// HoldForResume holds live frames from the start of a connection whose client said
// it will resume (?resume=1 or connect's resume), until its first sync takes the
// hold over, or d passes without one.
func (c *Conn) HoldForResume(d time.Duration) {
	c.mu.Lock()
	c.syncing++
	c.resumeHold = time.AfterFunc(d, func() {
		if c.TakeResumeHold() {
			c.EndSync(nil)
		}
	})
	c.mu.Unlock()
}

// TakeResumeHold reports whether a resume hold was pending, and ends it without
// releasing the held frames: the caller now owns one syncing count.
func (c *Conn) TakeResumeHold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resumeHold == nil {
		return false
	}
	c.resumeHold.Stop()
	c.resumeHold = nil
	return true
}

// BeginSync holds live frames until EndSync.
func (c *Conn) BeginSync() {
	c.mu.Lock()
	c.syncing++
	c.mu.Unlock()
}

// EndSync records what the sync sent per chat and releases the held live frames,
// dropping messages the sync already sent, so the seam has no duplicate.
func (c *Conn) EndSync(sent map[string]uint64) {
	c.mu.Lock()
	if c.sent == nil {
		c.sent = map[string]uint64{}
	}
	for chat, seq := range sent {
		c.sent[chat] = max(c.sent[chat], seq)
	}
	c.syncing--
	if c.syncing > 0 {
		c.mu.Unlock()
		return
	}
	held := c.held
	c.held, c.heldBytes = nil, 0
	cutoff := c.sent
	c.sent = nil
	if len(cutoff) > 0 {
		c.synced = cutoff // live copies may still trail the sync: see dropSynced
	}
	if c.closed {
		c.mu.Unlock()
		return
	}
	// All at once, under the lock: a live frame arriving now must queue after these.
	// (held is bounded by 4 × SendQueue frames and 2 × SendQueueBytes, so the
	// queue may briefly exceed its limits.)
	n := 0
	for _, f := range held {
		if !isCovered(f, cutoff) {
			c.queue = append(c.queue, f)
			c.queueBytes += len(f)
			n++
		}
	}
	start := n > 0 && !c.writing
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// isCovered reports whether frame is a message a sync already delivered.
func isCovered(frame []byte, sent map[string]uint64) bool {
	chat, seq, ok := messageSeq(frame)
	if !ok {
		return false
	}
	last, tracked := sent[chat]
	return tracked && seq <= last
}

// messageSeq returns the chat and seq of a message frame; ok is false for others.
func messageSeq(frame []byte) (chat string, seq uint64, ok bool) {
	var probe struct {
		Type   string `json:"type"`
		ChatID string `json:"chatId"`
		Seq    uint64 `json:"seq"`
	}
	if json.Unmarshal(frame, &probe) != nil || probe.Type != protocol.FrameMessage {
		return "", 0, false
	}
	return probe.ChatID, probe.Seq, true
}

// maxCloseReason is the longest close reason a WebSocket close frame carries (125
// bytes of payload less the status code): a longer one makes the library fail the
// close, and the client sees the connection drop with no status at all.
const maxCloseReason = 123

// CloseReason is "code: msg" cut to maxCloseReason bytes at a UTF-8 boundary.
func CloseReason(code protocol.Code, msg string) string {
	reason := string(code)
	if msg != "" {
		reason += ": " + msg
	}
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// CloseWith closes the connection once, with a WebSocket status and a reason that
// starts with code.
func (c *Conn) CloseWith(status websocket.StatusCode, code protocol.Code, msg string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.queue, c.queueBytes = nil, 0
	c.held, c.heldBytes = nil, 0
	c.mu.Unlock()
	reason := CloseReason(code, msg)
	if c.sse != nil && status != websocket.StatusAbnormalClosure {
		c.sse.SetClose(int(status), reason) // written by the event stream's handler as it ends
	}
	if c.ws != nil {
		if status == websocket.StatusAbnormalClosure {
			_ = c.ws.CloseNow()
		} else {
			// The read's context is cancelled only once the close frame is out:
			// cancelling it first makes the library drop the connection without one.
			go func() {
				_ = c.ws.Close(status, reason)
				if c.cancel != nil {
					c.cancel()
				}
			}()
			return
		}
	}
	if c.cancel != nil {
		c.cancel()
	}
}

// Closed reports whether the connection was closed.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// WaitFlushed waits until c's send queue is written, at most d.
func (c *Conn) WaitFlushed(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		idle := !c.writing || c.closed
		c.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
