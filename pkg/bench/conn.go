package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/protocol"
)

// dialer opens the bench's WebSocket connections: connection i goes to gateway
// URL i mod len(urls) from local address i mod len(locals), so one machine can open
// more connections to one port than one source address has ephemeral ports.
type dialer struct {
	urls    []string
	clients []*http.Client // one per local address
}

func newDialer(urls, locals []string) (*dialer, error) {
	d := &dialer{urls: urls}
	if len(locals) == 0 {
		locals = []string{""}
	}
	for _, l := range locals {
		nd := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}
		if l != "" {
			ip := net.ParseIP(l)
			if ip == nil {
				return nil, fmt.Errorf("bench: --local-addrs: %q is not an IP address", l)
			}
			nd.LocalAddr = &net.TCPAddr{IP: ip}
		}
		tr := &http.Transport{DialContext: nd.DialContext, DisableCompression: true,
			MaxIdleConnsPerHost: -1, ForceAttemptHTTP2: false}
		d.clients = append(d.clients, &http.Client{Transport: tr})
	}
	return d, nil
}

// dial connects connection i with token and returns it with the connected frame
// read. resume adds ?resume=1: live frames are held until the first sync.
func (d *dialer) dial(ctx context.Context, i int, token string, resume bool) (*websocket.Conn, error) {
	u := d.urls[i%len(d.urls)]
	if resume {
		if strings.Contains(u, "?") {
			u += "&resume=1"
		} else {
			u += "?resume=1"
		}
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: d.clients[i%len(d.clients)], HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(32 << 20)
	_, data, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("waiting for connected: %w", err)
	}
	if !bytes.HasPrefix(data, []byte(`{"type":"connected"`)) {
		ws.CloseNow()
		return nil, fmt.Errorf("expected connected, got %.200s", data)
	}
	return ws, nil
}

// bconn is one bench connection: a reader goroutine, and for senders a sender
// goroutine with its own open-loop schedule.
type bconn struct {
	idx  int
	user int
	w    *worker

	ws     *websocket.Conn
	window chan struct{} // unacked sends of this connection; nil for non-senders
	done   chan struct{} // closed when the reader ends
	gone   atomic.Bool   // closed by the bench (not an error)

	wmu  sync.Mutex // guards wbuf and writes
	wbuf []byte

	// Resume tracking (resume mode only), guarded by mu.
	mu        sync.Mutex
	last      map[string]uint64 // chat -> last seq seen
	target    map[string]uint64 // chat -> seq to reach after a resume
	synced    bool
	complete  bool
	dupes     int
	gaps      int
	resumedAt time.Time
}

// frame fields the reader looks at, found without a full JSON decode: the load
// generator's CPU is part of what is measured.
var (
	prefixMessage = []byte(`{"type":"message"`)
	prefixAck     = []byte(`{"type":"ack"`)
	prefixError   = []byte(`{"type":"error"`)
	prefixSynced  = []byte(`{"type":"synced"`)
	keyMessageID  = []byte(`"messageId":"`)
	keyChatID     = []byte(`"chatId":"`)
	keySeq        = []byte(`"seq":`)
)

// stringField returns the value of the first "key":"value" in frame (no escapes:
// IDs never contain any).
func stringField(frame, key []byte) []byte {
	i := bytes.Index(frame, key)
	if i < 0 {
		return nil
	}
	rest := frame[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// uintField returns the value of the first "key":123 in frame.
func uintField(frame, key []byte) uint64 {
	i := bytes.Index(frame, key)
	if i < 0 {
		return 0
	}
	var v uint64
	for _, b := range frame[i+len(key):] {
		if b < '0' || b > '9' {
			break
		}
		v = v*10 + uint64(b-'0')
	}
	return v
}

// messageID returns the bench message ID for connection conn's n-th send, due at
// due: <run>-<conn>-<n>-<due unix nanos>, all base 36, well within 64 characters.
func messageID(run string, conn int, n int64, due time.Time) string {
	b := make([]byte, 0, 48)
	b = append(b, run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(conn), 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, n, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, due.UnixNano(), 36)
	return string(b)
}

// dueOf returns the due time encoded in a bench message ID of run, or false.
func dueOf(run string, id []byte) (time.Time, bool) {
	if len(id) <= len(run) || string(id[:len(run)]) != run || id[len(run)] != '-' {
		return time.Time{}, false
	}
	i := bytes.LastIndexByte(id, '-')
	ns, err := strconv.ParseInt(string(id[i+1:]), 36, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// readLoop reads frames until the connection ends.
func (c *bconn) readLoop(ws *websocket.Conn) {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !c.gone.Load() {
				code := "closed"
				if ce := websocket.CloseStatus(err); ce != -1 {
					code = "closed_" + strconv.Itoa(int(ce))
					var cerr websocket.CloseError
					if errors.As(err, &cerr) && cerr.Reason != "" {
						if k, _, ok := strings.Cut(cerr.Reason, ":"); ok {
							code = k
						}
					}
				}
				c.w.st.errorf(code)
			}
			c.releaseWindow()
			return
		}
		c.handle(buf.Bytes())
	}
}

func (c *bconn) handle(frame []byte) {
	now := time.Now()
	st := c.w.st
	switch {
	case bytes.HasPrefix(frame, prefixMessage):
		id := stringField(frame, keyMessageID)
		due, ours := dueOf(c.w.plan.Run, id)
		if c.last != nil {
			c.track(frame)
		}
		if !ours {
			return
		}
		st.delivered.Add(1)
		if c.w.inWindow(now) {
			st.deliveredWin.Add(1)
		}
		if c.w.inWindow(due) {
			st.deliver.Record(now.Sub(due))
		}
	case bytes.HasPrefix(frame, prefixAck):
		due, ours := dueOf(c.w.plan.Run, stringField(frame, keyMessageID))
		if !ours {
			return
		}
		st.acked.Add(1)
		if c.w.inWindow(now) {
			st.ackedWin.Add(1)
		}
		if c.w.inWindow(due) {
			st.ack.Record(now.Sub(due))
		}
		c.release()
	case bytes.HasPrefix(frame, prefixSynced):
		c.mu.Lock()
		c.synced = true
		c.checkComplete(now)
		c.mu.Unlock()
	case bytes.HasPrefix(frame, prefixError):
		f, err := protocol.DecodeFrame(frame)
		if err != nil {
			st.errorf("undecodable_error_frame")
			return
		}
		st.errorf(string(f.Code))
		if _, ours := dueOf(c.w.plan.Run, []byte(f.MessageID)); ours {
			st.failed.Add(1)
			st.expected.Add(-int64(c.w.recipientsOf(f.ChatID)))
			c.release()
		}
	}
}

// track records a message's seq for resume checks. Caller: the reader.
func (c *bconn) track(frame []byte) {
	chat := string(stringField(frame, keyChatID))
	seq := uintField(frame, keySeq)
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.last[chat]
	switch {
	case seq <= last:
		c.dupes++
	case seq > last+1 && last > 0:
		c.gaps++
		c.last[chat] = seq
	default:
		c.last[chat] = seq
	}
	c.checkComplete(time.Now())
}

// checkComplete marks a resume complete once synced and every target is reached.
// Caller holds c.mu.
func (c *bconn) checkComplete(now time.Time) {
	if c.complete || !c.synced || c.target == nil {
		return
	}
	for chat, t := range c.target {
		if c.last[chat] < t {
			return
		}
	}
	c.complete = true
	c.resumedAt = now
	c.w.st.resumed.Add(1)
	c.w.st.resume.Record(now.Sub(c.w.reconnectAt()))
}

func (c *bconn) release() {
	if c.window != nil {
		select {
		case <-c.window:
		default:
		}
	}
}

// releaseWindow frees every slot of a closed connection's window so its sender
// stops waiting.
func (c *bconn) releaseWindow() {
	if c.window == nil {
		return
	}
	for {
		select {
		case <-c.window:
		default:
			return
		}
	}
}

// writeSend writes one send frame to chat with message ID id.
func (c *bconn) writeSend(ws *websocket.Conn, chat, id string, content []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	b = append(b, `{"type":"send","chatId":"`...)
	b = append(b, chat...)
	b = append(b, `","messageId":"`...)
	b = append(b, id...)
	b = append(b, `","content":"`...)
	b = append(b, content...)
	b = append(b, `"}`...)
	c.wbuf = b
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, b)
}

// writeFrame writes any frame.
func (c *bconn) writeFrame(ws *websocket.Conn, f *protocol.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, protocol.EncodeFrame(f))
}
