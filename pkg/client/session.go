package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Config configures a Client. Zero durations take the documented defaults.
type Config struct {
	// URL is the gateway's WebSocket URL, ws://host:port/ws.
	URL string
	// Token returns the token for each connection attempt, so it can refresh an
	// expiring one. Required.
	Token func(ctx context.Context) (string, error)
	// Dial tunes each connection (headers, buffer).
	Dial *Options
	// ReconnectMin and ReconnectMax bound the reconnect backoff (default 200ms, 30s);
	// each delay is exponential with equal jitter.
	ReconnectMin, ReconnectMax time.Duration
	// AckTimeout resends an unacked frame, same messageId, on a live connection
	// (default 10s).
	AckTimeout time.Duration
	// GapGrace is how long a missing seq may take to arrive by itself before it is
	// filled from history (default 250ms).
	GapGrace time.Duration
	// Heartbeat sends a ping after this long without a frame and drops the connection
	// when nothing arrives within the same time after it (default 15s).
	Heartbeat time.Duration
	// FillFromStartMax: a chat first seen at a seq no higher than this is delivered
	// from its start; above, from that point on (default 50).
	FillFromStartMax uint64
	// Cursors resume chats from a previous session: chat ID to last seq seen.
	Cursors map[string]uint64
	// Inbound, for fault-injection tests, sees every server frame first and returns
	// the frames to handle now (none to drop or hold, several to release or repeat).
	Inbound func(f *protocol.Frame) []*protocol.Frame
	// Logger, default zap.NewNop().
	Logger *zap.Logger
}

// Client is a connection to a gateway that stays up: it reconnects with backoff and
// jitter; keeps every send in an outbox and resends it with the same messageId until
// acked (the server stores it once); delivers each chat's messages on Messages exactly
// once, in seq order, holding early ones and filling gaps from history; and resumes
// with sync after a reconnect. Run drives it; the other methods are safe for
// concurrent use.
type Client struct {
	cfg      Config
	log      *zap.Logger
	out      chan *outItem
	messages chan protocol.Message
	events   chan *protocol.Frame

	mu        sync.Mutex // guards the fields below; held briefly, never across I/O
	chats     map[string]*Orderer
	connected bool
	conn      *Conn
}

// outItem is a frame in the outbox and its waiting caller.
type outItem struct {
	frame  *protocol.Frame
	done   chan sendResult // buffered 1
	sentAt time.Time       // zero: not written on the current connection
	tries  int
}

type sendResult struct {
	ack *protocol.Frame
	err error
}

// ErrClientClosed is returned by Send after Run has returned.
var ErrClientClosed = errors.New("client: closed")

// NewClient returns a Client; call Run to connect.
func NewClient(cfg Config) (*Client, error) {
	if cfg.URL == "" || cfg.Token == nil {
		return nil, errors.New("client: Config.URL and Config.Token are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReconnectMin, 200*time.Millisecond)
	def(&cfg.ReconnectMax, 30*time.Second)
	def(&cfg.AckTimeout, 10*time.Second)
	def(&cfg.GapGrace, 250*time.Millisecond)
	def(&cfg.Heartbeat, 15*time.Second)
	if cfg.FillFromStartMax == 0 {
		cfg.FillFromStartMax = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	c := &Client{cfg: cfg, log: cfg.Logger, out: make(chan *outItem, 1024),
		messages: make(chan protocol.Message, 4096), events: make(chan *protocol.Frame, 1024),
		chats: map[string]*Orderer{}}
	for chat, seq := range cfg.Cursors {
		c.chats[chat] = NewOrderer(chat, seq)
	}
	return c, nil
}

// Messages delivers each chat's messages in seq order, exactly once. Run blocks while
// it is full, so read it.
func (c *Client) Messages() <-chan protocol.Message { return c.messages }

// Events delivers the other server frames a caller may want (receipt,
// typing_indicator, presence_update, error frames not tied to a Send, connected). It
// drops frames when full rather than block.
func (c *Client) Events() <-chan *protocol.Frame { return c.events }

// Connected reports whether a connection is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// LastSeq is the last seq delivered in chat (0 if none).
func (c *Client) LastSeq(chat string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.chats[chat]; o != nil {
		return o.LastSeq()
	}
	return 0
}

// DropConnection closes the current connection abruptly (tests, and callers that
// know the network changed); Run reconnects.
func (c *Client) DropConnection() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.CloseNow()
	}
}

// Send sends a text message to chat and waits for the server to store it. See
// SendFrame.
func (c *Client) Send(ctx context.Context, chat, messageID, content string) (*protocol.Frame, error) {
	return c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameSend, ChatID: chat, MessageID: messageID, Content: content})
}

// SendFrame queues a send, edit, delete or react frame (a missing messageId gets a
// new one) and waits for its ack. The frame is resent with the same messageId across
// reconnects until acked, so it is stored once. It returns the ack, a *protocol.Error
// when the server refuses it for good, or ctx's error (the frame then stays queued and
// is still delivered: cancelling stops the wait, not the send).
func (c *Client) SendFrame(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	if f.MessageID == "" {
		f.MessageID = ids.New()
	}
	it := &outItem{frame: f, done: make(chan sendResult, 1)}
	select {
	case c.out <- it:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-it.done:
		return r.ack, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// backoff returns the delay before reconnect attempt n (0-based).
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.ReconnectMin << min(n, 20)
	if d <= 0 || d > c.cfg.ReconnectMax {
		d = c.cfg.ReconnectMax
	}
	return d/2 + rand.N(d/2+1)
}

// session is Run's state across connections; only Run's goroutine touches it.
type session struct {
	outbox []*outItem // in send order
}

// Run connects and reconnects until ctx ends; then it fails the waiting sends with
// ErrClientClosed and returns nil.
func (c *Client) Run(ctx context.Context) error {
	s := &session{}
	defer func() {
		for _, it := range s.outbox {
			it.done <- sendResult{err: ErrClientClosed}
		}
		for {
			select {
			case it := <-c.out:
				it.done <- sendResult{err: ErrClientClosed}
			default:
				return
			}
		}
	}()
	attempt := 0
	for ctx.Err() == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			c.log.Debug("connect failed", zap.Error(err))
			if !c.wait(ctx, s, c.backoff(attempt)) {
				return nil
			}
			attempt++
			continue
		}
		attempt = 0
		c.serve(ctx, s, conn)
		if !c.wait(ctx, s, c.backoff(0)) {
			return nil
		}
	}
	return nil
}

func (c *Client) dial(ctx context.Context) (*Conn, error) {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := c.cfg.Token(tctx)
	if err != nil {
		return nil, fmt.Errorf("client: token: %w", err)
	}
	c.mu.Lock()
	resume := len(c.chats) > 0
	c.mu.Unlock()
	u := c.cfg.URL
	if resume {
		// A sync follows at once: the server holds live frames until it is answered.
		if strings.Contains(u, "?") {
			u += "&resume=1"
		} else {
			u += "?resume=1"
		}
	}
	return Dial(tctx, u, tok, c.cfg.Dial)
}

// wait sleeps d while still taking sends into the outbox; false when ctx ended.
func (c *Client) wait(ctx context.Context, s *session, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case it := <-c.out:
			s.outbox = append(s.outbox, it)
		case <-t.C:
			return true
		}
	}
}

// serve runs one connection until it ends or ctx does.
func (c *Client) serve(ctx context.Context, s *session, conn *Conn) {
	c.mu.Lock()
	c.connected, c.conn = true, conn
	known := make([]protocol.ChatCursor, 0, len(c.chats))
	for id, o := range c.chats {
		known = append(known, protocol.ChatCursor{ChatID: id, Seq: o.LastSeq()})
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.connected, c.conn = false, nil
		c.mu.Unlock()
		_ = conn.CloseNow()
	}()
	c.event(conn.Connected)
	write := func(f *protocol.Frame) bool {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := conn.Frame(wctx, f); err != nil {
			_ = conn.CloseNow()
			return false
		}
		return true
	}
	// Resume: what was missed in known chats, then every chat's position.
	if len(known) > 0 && !write(&protocol.Frame{Type: protocol.FrameSync, ID: ids.New(), Chats: known}) {
		return
	}
	if !write(&protocol.Frame{Type: protocol.FrameSync, ID: ids.New()}) {
		return
	}
	for _, it := range s.outbox {
		it.sentAt, it.tries = time.Now(), it.tries+1
		if !write(it.frame) {
			return
		}
	}
	gapSince := map[string]time.Time{} // chats with a gap, since when
	filling := map[string]bool{}       // chats with a history fill in flight
	fillAfter := map[string]uint64{}   // the after of each chat's fill in flight
	lastFrame := time.Now()
	var pingAt time.Time
	tick := time.NewTicker(max(min(c.cfg.GapGrace, c.cfg.Heartbeat, c.cfg.AckTimeout)/2, 10*time.Millisecond))
	defer tick.Stop()

	emit := func(out []protocol.Message) bool {
		for _, d := range out {
			select {
			case c.messages <- d:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	deliver := func(m protocol.Message) bool {
		c.mu.Lock()
		o := c.chats[m.ChatID]
		if o == nil {
			start := uint64(0)
			if m.Seq > c.cfg.FillFromStartMax {
				start = m.Seq - 1
			}
			o = NewOrderer(m.ChatID, start)
			c.chats[m.ChatID] = o
		}
		out, _ := o.Push(m)
		_, _, gap := o.Gap()
		c.mu.Unlock()
		if gap {
			if _, ok := gapSince[m.ChatID]; !ok {
				gapSince[m.ChatID] = time.Now()
			}
		} else {
			delete(gapSince, m.ChatID)
		}
		return emit(out)
	}
	// skip advances chat's order past seqs a history answer showed are gone
	// (Orderer.Skip) and delivers what that releases.
	skip := func(chat string, through uint64) bool {
		c.mu.Lock()
		o := c.chats[chat]
		if o == nil {
			c.mu.Unlock()
			return true
		}
		out := o.Skip(through)
		if _, _, gap := o.Gap(); !gap {
			delete(gapSince, chat)
		}
		c.mu.Unlock()
		return emit(out)
	}
	handle := func(f *protocol.Frame) bool {
		switch f.Type {
		case protocol.FrameMessage:
			return deliver(messageOf(f))
		case protocol.FrameHistoryResult:
			// A fill's answer (forward from after): a seq it skips is gone for good,
			// and so is everything below retainedFrom (docs/protocol.md, "Retention
			// and deletion"). Advance past them rather than asking again.
			after, fill := fillAfter[f.ChatID]
			delete(filling, f.ChatID)
			delete(fillAfter, f.ChatID)
			if f.RetainedFrom > 1 && !skip(f.ChatID, f.RetainedFrom-1) {
				return false
			}
			for _, m := range f.Messages {
				if fill && m.Seq > after+1 && !skip(f.ChatID, m.Seq-1) {
					return false
				}
				if !deliver(m) {
					return false
				}
				after = max(after, m.Seq)
			}
			if fill && !f.HasMore {
				// Nothing more exists after the page: what is held waits for seqs
				// that are gone.
				c.mu.Lock()
				_, before, gap := c.chats[f.ChatID].Gap()
				c.mu.Unlock()
				if gap && before > 0 && !skip(f.ChatID, before-1) {
					return false
				}
			}
		case protocol.FrameAck:
			s.settle(f.ChatID, f.MessageID, sendResult{ack: f})
		case protocol.FrameError:
			if it := s.find(f.ChatID, f.MessageID); it != nil && f.MessageID != "" {
				if !f.Code.Retryable() {
					s.settle(f.ChatID, f.MessageID, sendResult{ack: f, err: &protocol.Error{Code: f.Code, Message: f.Message}})
				} else {
					it.sentAt = time.Now().Add(-c.cfg.AckTimeout + time.Second) // retry in about a second
				}
				return true
			}
			if f.ChatID != "" {
				delete(filling, f.ChatID)
			}
			c.event(f)
		case protocol.FrameSynced:
			c.mu.Lock()
			for _, cc := range f.Chats {
				o := c.chats[cc.ChatID]
				if o == nil {
					start := uint64(0)
					if cc.Seq > c.cfg.FillFromStartMax {
						start = cc.Seq
					}
					o = NewOrderer(cc.ChatID, start)
					c.chats[cc.ChatID] = o
				}
				if cc.RetainedFrom > 1 {
					out := o.Skip(cc.RetainedFrom - 1)
					c.mu.Unlock()
					if !emit(out) {
						return false
					}
					c.mu.Lock()
				}
				if _, _, gap := o.Gap(); gap || cc.Seq > o.LastSeq() {
					if _, ok := gapSince[cc.ChatID]; !ok {
						gapSince[cc.ChatID] = time.Now()
					}
				}
			}
			c.mu.Unlock()
		case protocol.FramePong:
		default:
			c.event(f)
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close()
			return
		case it := <-c.out:
			if s.find(it.frame.ChatID, it.frame.MessageID) != nil {
				s.outbox = append(s.outbox, it) // same ID twice: both settle on its ack
				continue
			}
			s.outbox = append(s.outbox, it)
			it.sentAt, it.tries = time.Now(), it.tries+1
			if !write(it.frame) {
				return
			}
		case f, ok := <-conn.Frames():
			if !ok {
				return
			}
			lastFrame = time.Now()
			frames := []*protocol.Frame{f}
			if c.cfg.Inbound != nil {
				frames = c.cfg.Inbound(f)
			}
			for _, g := range frames {
				if !handle(g) {
					return
				}
			}
		case now := <-tick.C:
			if !pingAt.IsZero() && lastFrame.Before(pingAt) && now.Sub(pingAt) >= c.cfg.Heartbeat {
				c.log.Debug("heartbeat timeout: reconnecting")
				return
			}
			if now.Sub(lastFrame) >= c.cfg.Heartbeat && (pingAt.IsZero() || !lastFrame.Before(pingAt)) {
				pingAt = now
				if !write(&protocol.Frame{Type: protocol.FramePing, ID: ids.New()}) {
					return
				}
			}
			for _, it := range s.outbox {
				if !it.sentAt.IsZero() && now.Sub(it.sentAt) >= c.cfg.AckTimeout {
					it.sentAt, it.tries = now, it.tries+1
					if !write(it.frame) {
						return
					}
				}
			}
			for chat, since := range gapSince {
				if filling[chat] || now.Sub(since) < c.cfg.GapGrace {
					continue
				}
				c.mu.Lock()
				o := c.chats[chat]
				after, before, gap := o.Gap()
				if !gap {
					after, before = o.LastSeq(), 0
				}
				c.mu.Unlock()
				limit := 100
				if before > after {
					limit = int(min(100, before-after-1))
				}
				filling[chat] = true
				fillAfter[chat] = after
				gapSince[chat] = now
				if !write(&protocol.Frame{Type: protocol.FrameHistory, ID: ids.New(), ChatID: chat, After: &after, Limit: max(limit, 1)}) {
					return
				}
				if !gap && before == 0 {
					// A fill for "the server has more" (from synced): the answer either
					// delivers the rest or shows nothing is missing.
					delete(gapSince, chat)
				}
			}
		}
	}
}

// event hands f to Events without blocking.
func (c *Client) event(f *protocol.Frame) {
	select {
	case c.events <- f:
	default:
	}
}

// find returns the outbox item for chat and messageID, or nil.
func (s *session) find(chat, messageID string) *outItem {
	for _, it := range s.outbox {
		if it.frame.ChatID == chat && it.frame.MessageID == messageID {
			return it
		}
	}
	return nil
}

// settle answers and removes every outbox item for chat and messageID.
func (s *session) settle(chat, messageID string, r sendResult) {
	kept := s.outbox[:0]
	for _, it := range s.outbox {
		if it.frame.ChatID == chat && it.frame.MessageID == messageID {
			it.done <- r
			continue
		}
		kept = append(kept, it)
	}
	for i := len(kept); i < len(s.outbox); i++ {
		s.outbox[i] = nil
	}
	s.outbox = kept
}

// messageOf returns the Message a message frame carries.
func messageOf(f *protocol.Frame) protocol.Message {
	return protocol.Message{ChatID: f.ChatID, Seq: f.Seq, MessageID: f.MessageID, SenderID: f.SenderID,
		Content: f.Content, MessageType: f.MessageType, Timestamp: f.Timestamp, ReplyTo: f.ReplyTo,
		RefID: f.RefID, Meta: f.Meta}
}
