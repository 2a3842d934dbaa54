// Package client is the Go SDK for Natter's client protocol: a WebSocket connection
// that sends frames, waits for their answers (ack, history_result, synced, pong,
// error) and hands every other server frame to the caller in order.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Conn is one connection. Frames returns server frames that are not answers to a
// request made through Conn (messages, receipts, errors for other frames, ...).
type Conn struct {
	ws     *websocket.Conn
	frames chan *protocol.Frame
	// Connected is the server's connected frame.
	Connected *protocol.Frame

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex // guards waiters, err
	waiters map[string]chan *protocol.Frame
	err     error
	done    chan struct{}

	check func([]byte) error // CheckFrame when dialed
}

// Options tune Dial.
type Options struct {
	// TokenInFrame sends the token in a connect frame instead of the Authorization
	// header.
	TokenInFrame bool
	// Resume tells the server a Sync follows: live messages are held until it is
	// answered, so the resumed stream has no gap, duplicate or reordering.
	Resume bool
	// Buffer is the capacity of Frames (default 4096); when full, reading pauses.
	Buffer int
	// Header adds HTTP headers to the handshake (e.g. Origin).
	Header http.Header
}

// CheckFrame, when set, is called with every frame a Conn reads (the connected frame
// included) before it is decoded; an error ends the connection and becomes its Err.
// Natter's end-to-end tests set it to validate the frames against docs/asyncapi.yaml.
// Set it before dialing; it is read once per Dial.
var CheckFrame func(raw []byte) error

// ErrClosed is returned by requests on a closed connection.
var ErrClosed = errors.New("client: connection closed")

// Dial connects to the gateway's WebSocket URL (ws://host:port/ws) with token and
// waits for the connected frame.
func Dial(ctx context.Context, url, token string, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = &Options{}
	}
	h := http.Header{}
	for k, v := range opts.Header {
		h[k] = v
	}
	if !opts.TokenInFrame && token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if opts.Resume && !opts.TokenInFrame {
		if strings.Contains(url, "?") {
			url += "&resume=1"
		} else {
			url += "?resume=1"
		}
	}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("client: dial: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	ws.SetReadLimit(32 << 20)
	buf := opts.Buffer
	if buf <= 0 {
		buf = 4096
	}
	c := &Conn{ws: ws, frames: make(chan *protocol.Frame, buf), waiters: map[string]chan *protocol.Frame{}, done: make(chan struct{})}
	if opts.TokenInFrame {
		if err := c.write(ctx, &protocol.Frame{Type: protocol.FrameConnect, Token: token, Resume: opts.Resume}); err != nil {
			ws.CloseNow()
			return nil, err
		}
	}
	c.check = CheckFrame
	_, data, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("client: waiting for connected: %w", err)
	}
	if c.check != nil {
		if err := c.check(data); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("client: connected frame %s: %w", data, err)
		}
	}
	f, err := protocol.DecodeFrame(data)
	if err != nil || f.Type != protocol.FrameConnected {
		ws.CloseNow()
		return nil, fmt.Errorf("client: expected connected, got %s", data)
	}
	c.Connected = f
	go c.readLoop()
	return c, nil
}

// Frames returns the channel of unsolicited server frames; it is closed when the
// connection ends.
func (c *Conn) Frames() <-chan *protocol.Frame { return c.frames }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (a websocket.CloseError for a close frame).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Conn) readLoop() {
	defer close(c.frames)
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.end(err)
			return
		}
		if c.check != nil {
			if err := c.check(data); err != nil {
				c.end(fmt.Errorf("client: frame %s: %w", data, err))
				c.ws.CloseNow()
				return
			}
		}
		f, err := protocol.DecodeFrame(data)
		if err != nil {
			continue
		}
		if key := answerKey(f); key != "" {
			c.mu.Lock()
			w := c.waiters[key]
			delete(c.waiters, key)
			c.mu.Unlock()
			if w != nil {
				w <- f
				continue
			}
		}
		c.frames <- f
	}
}

// end records why the connection ended and wakes every waiting request.
func (c *Conn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	for k, w := range c.waiters {
		close(w)
		delete(c.waiters, k)
	}
}

// closedErr is ErrClosed, with why the connection ended when known.
func (c *Conn) closedErr() error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// answerKey is the waiter key a server frame answers, "" if none.
func answerKey(f *protocol.Frame) string {
	switch f.Type {
	case protocol.FrameAck:
		return "m:" + f.ChatID + ":" + f.MessageID
	case protocol.FrameError:
		if f.ID != "" {
			return "r:" + f.ID
		}
		if f.MessageID != "" {
			return "m:" + f.ChatID + ":" + f.MessageID
		}
	case protocol.FrameHistoryResult, protocol.FrameSynced, protocol.FramePong:
		if f.ID != "" {
			return "r:" + f.ID
		}
	}
	return ""
}

func (c *Conn) write(ctx context.Context, f *protocol.Frame) error {
	return c.WriteRaw(ctx, protocol.EncodeFrame(f))
}

// WriteRaw writes bytes as one text frame, as is (tests use it for hostile input).
func (c *Conn) WriteRaw(ctx context.Context, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.Write(ctx, websocket.MessageText, data)
}

// request writes f and waits for the frame answering key.
func (c *Conn) request(ctx context.Context, key string, f *protocol.Frame) (*protocol.Frame, error) {
	w := make(chan *protocol.Frame, 1)
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.waiters[key] = w
	c.mu.Unlock()
	if err := c.write(ctx, f); err != nil {
		c.mu.Lock()
		delete(c.waiters, key)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r, ok := <-w:
		if !ok {
			return nil, c.closedErr()
		}
		if r.Type == protocol.FrameError {
			return r, &protocol.Error{Code: r.Code, Message: r.Message}
		}
		return r, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, key)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Send sends a text message and waits for its ack. An empty messageID gets a new
// one; resending with the same ID is safe (the server deduplicates it).
func (c *Conn) Send(ctx context.Context, chatID, messageID, content string) (*protocol.Frame, error) {
	return c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameSend, ChatID: chatID, MessageID: messageID, Content: content})
}

// SendFrame sends a send frame and waits for its ack or error.
func (c *Conn) SendFrame(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	if f.MessageID == "" {
		f.MessageID = ids.New()
	}
	return c.request(ctx, "m:"+f.ChatID+":"+f.MessageID, f)
}

// HistoryBefore requests one page of history older than seq before, newest first;
// before 0 asks for the newest page. limit 0 is the server's default page size.
func (c *Conn) HistoryBefore(ctx context.Context, chatID string, before uint64, limit int) (*protocol.Frame, error) {
	id := ids.New()
	return c.request(ctx, "r:"+id, &protocol.Frame{Type: protocol.FrameHistory, ID: id, ChatID: chatID,
		Before: before, Limit: limit})
}

// HistoryAfter requests one page of history newer than seq after, oldest first;
// after 0 starts at the chat's first message. limit 0 is the server's default.
func (c *Conn) HistoryAfter(ctx context.Context, chatID string, after uint64, limit int) (*protocol.Frame, error) {
	id := ids.New()
	return c.request(ctx, "r:"+id, &protocol.Frame{Type: protocol.FrameHistory, ID: id, ChatID: chatID,
		After: &after, Limit: limit})
}

// Sync resumes: the server sends the messages after each cursor (through Frames),
// then answers with synced, returned here.
func (c *Conn) Sync(ctx context.Context, cursors []protocol.ChatCursor) (*protocol.Frame, error) {
	id := ids.New()
	return c.request(ctx, "r:"+id, &protocol.Frame{Type: protocol.FrameSync, ID: id, Chats: cursors})
}

// Ping round-trips a ping frame.
func (c *Conn) Ping(ctx context.Context) error {
	id := ids.New()
	_, err := c.request(ctx, "r:"+id, &protocol.Frame{Type: protocol.FramePing, ID: id})
	return err
}

// Frame writes any frame without waiting for an answer.
func (c *Conn) Frame(ctx context.Context, f *protocol.Frame) error { return c.write(ctx, f) }

// Close closes the connection normally.
func (c *Conn) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() error { return c.ws.CloseNow() }

// DecodeMeta unmarshals a frame's meta into v.
func DecodeMeta(f *protocol.Frame, v any) error { return json.Unmarshal(f.Meta, v) }
