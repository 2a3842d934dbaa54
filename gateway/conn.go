package gateway

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

// connOut is what a connection's sending needs from its gateway: the send queue's
// bounds, the write timeout and where to count. One per gateway, shared by its
// connections and never modified after New.
type connOut struct {
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

// conn is one client connection.
// Its only goroutine is the one that reads it; a writer goroutine exists only while
// frames are queued, so an idle connection holds no goroutine of its own beyond that.
type conn struct {
	out     *connOut
	ws      *websocket.Conn // nil for an SSE connection
	sock    *sockConn       // ws's socket (socket.go); nil for SSE, and in tests
	sse     *sseSink        // nil for a WebSocket connection
	id      string
	user    string
	service bool
	expires time.Time    // token expiry; zero: none
	lim     *connLimit   // abuse limits (limits.go); nil: none
	renewed atomic.Int64 // refresh.go: expiry (unix nanos) of a token renewed by connect; 0: none
	warned  atomic.Bool  // refresh.go: token_expiring was sent for the current token

	lastRead atomic.Int64 // unix nanos of the last frame read
	pinging  atomic.Bool

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

// enqueue queues one frame. It never blocks: a connection whose queue is full (in
// frames or in bytes) is closed with slow_consumer (it resumes with sync on
// reconnect), so one slow client never delays delivery to others. Frames held
// during a sync are bounded at four times the queue's frames and twice its bytes.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.syncing > 0 {
		if len(c.held) >= c.out.queue*4 || (c.out.queueBytes > 0 && c.heldBytes+len(frame) > 2*c.out.queueBytes) {
			c.mu.Unlock()
			c.closeWith(protocol.CloseSlowConsumer, protocol.CodeSlowConsumer, "too many live frames during sync")
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
func (c *conn) dropSynced(frame []byte) bool {
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

// send queues a frame that answers the client (ack, error, results): it is never
// held back by a sync.
func (c *conn) send(f *protocol.Frame) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.pushLocked(protocol.EncodeFrame(f))
}

// sendPaced queues a frame of a long answer (sync, history) without overflowing the
// queue: it waits while the queue is more than half full, in frames or in bytes, so
// a large resume is paced by the client's reading instead of closing it as a slow
// consumer, and a client that asks for more than it reads stops being read (its
// frames wait in its socket, not in the gateway's memory). The frame may take the
// queue past half full, by at most its own size (a history page is capped at
// gateway.history-page-bytes, which Validate keeps under half the queue's bytes).
// It returns false if the connection closed or ctx ended.
func (c *conn) sendPaced(ctx context.Context, f *protocol.Frame) bool {
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
func (c *conn) pushLocked(frame []byte) { c.pushFrameLocked(frame, true) }

// pushFrameLocked is pushLocked; with bounded false the byte bound is not checked
// (sendPaced checked it before). It unlocks c.mu.
func (c *conn) pushFrameLocked(frame []byte, bounded bool) {
	if len(c.queue) >= c.out.queue ||
		(bounded && c.out.queueBytes > 0 && c.queueBytes+len(frame) > c.out.queueBytes) {
		c.mu.Unlock()
		c.out.slow.Add(1)
		c.closeWith(protocol.CloseSlowConsumer, protocol.CodeSlowConsumer, "send queue full: reconnect and sync")
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
func (c *conn) writeLoop() {
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
			c.closeWith(websocket.StatusAbnormalClosure, "", "")
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
func (c *conn) write(frames [][]byte) error {
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

// ping checks the connection is alive: a WebSocket ping that waits for its pong, or
// an SSE comment line written within the write timeout.
func (c *conn) ping(ctx context.Context) error {
	if c.sse != nil {
		return c.sse.ping()
	}
	return c.ws.Ping(ctx)
}

// holdForResume holds live frames from the start of a connection whose client said
// it will resume (?resume=1 or connect's resume), until its first sync takes the
// hold over, or d passes without one.
func (c *conn) holdForResume(d time.Duration) {
	c.mu.Lock()
	c.syncing++
	c.resumeHold = time.AfterFunc(d, func() {
		if c.takeResumeHold() {
			c.endSync(nil)
		}
	})
	c.mu.Unlock()
}

// takeResumeHold reports whether a resume hold was pending, and ends it without
// releasing the held frames: the caller now owns one syncing count.
func (c *conn) takeResumeHold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resumeHold == nil {
		return false
	}
	c.resumeHold.Stop()
	c.resumeHold = nil
	return true
}

// beginSync holds live frames until endSync.
func (c *conn) beginSync() {
	c.mu.Lock()
	c.syncing++
	c.mu.Unlock()
}

// endSync records what the sync sent per chat and releases the held live frames,
// dropping messages the sync already sent, so the seam has no duplicate.
func (c *conn) endSync(sent map[string]uint64) {
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

// closeReason is "code: msg" cut to maxCloseReason bytes at a UTF-8 boundary.
func closeReason(code protocol.Code, msg string) string {
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

// closeWith closes the connection once, with a WebSocket status and a reason that
// starts with code.
func (c *conn) closeWith(status websocket.StatusCode, code protocol.Code, msg string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.queue, c.queueBytes = nil, 0
	c.held, c.heldBytes = nil, 0
	c.mu.Unlock()
	reason := closeReason(code, msg)
	if c.sse != nil && status != websocket.StatusAbnormalClosure {
		c.sse.setClose(int(status), reason) // written by the event stream's handler as it ends
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

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// The connection as gateway/livestate sees it (livestate.Conn).

// UserID is the connected user.
func (c *conn) UserID() string { return c.user }

// Service reports a service token's connection.
func (c *conn) Service() bool { return c.service }

// Enqueue is enqueue: a live frame.
func (c *conn) Enqueue(frame []byte) { c.enqueue(frame) }

// Send is send: a frame that answers the client.
func (c *conn) Send(f *protocol.Frame) { c.send(f) }

// Closed is isClosed.
func (c *conn) Closed() bool { return c.isClosed() }
