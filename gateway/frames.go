package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/gateway/internal/historyread"
	"github.com/natter-chat/natter/pkg/answer"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// handleFrame dispatches one client frame. Every refusal is an error frame with a
// stable code; the connection stays open.
func (g *Gateway) handleFrame(ctx context.Context, c *conn, data []byte) {
	f, err := protocol.DecodeFrame(data)
	if err != nil {
		c.Send(protocol.ErrorFrame(err, "", "", ""))
		return
	}
	g.deps.Metrics.FrameIn(f.Type)
	if err := allowFrame(c, f.Type); err != nil { // limits.go
		c.Send(protocol.ErrorFrame(err, f.ChatID, f.MessageID, f.ID))
		return
	}
	switch f.Type {
	case protocol.FrameSend:
		err = g.onSend(ctx, c, f)
	case protocol.FramePing:
		c.Send(&protocol.Frame{Type: protocol.FramePong, ID: f.ID, ServerTime: time.Now().UnixMilli()})
	case protocol.FrameHistory:
		err = g.onHistory(ctx, c, f)
	case protocol.FrameSync:
		err = g.onSync(ctx, c, f)
	case protocol.FrameDelivered, protocol.FrameRead:
		err = g.onReceipt(ctx, c, f)
	case protocol.FrameTyping:
		err = g.typing.OnFrame(ctx, c, f) // gateway/livestate
	case protocol.FramePresenceSub:
		err = g.presence.OnSub(ctx, c, f) // gateway/livestate
	case protocol.FrameEdit, protocol.FrameDelete, protocol.FrameReact:
		err = g.onOperation(ctx, c, f) // msgops.go
	case protocol.FrameConnect:
		err = g.onRenew(ctx, c, f) // refresh.go
	default:
		err = protocol.Errorf(protocol.CodeUnknownType, "unknown frame type %q", truncate(f.Type, 32))
	}
	if err != nil {
		var pe *protocol.Error
		switch {
		case !errors.As(err, &pe):
			g.log.Error("frame failed", zap.String("user_id", c.UserID()), zap.String("type", f.Type), zap.Error(err))
		case pe.Cause != nil: // a dependency failed: logged here, once, with why
			g.log.Warn("frame failed", zap.String("user_id", c.UserID()), zap.String("type", f.Type),
				zap.String("code", string(pe.Code)), zap.Error(pe.Cause))
		}
		c.Send(protocol.ErrorFrame(err, f.ChatID, f.MessageID, f.ID))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// validID returns a CodeInvalidID error for a bad ID (protocol.ValidID).
func validID(kind, id string) error { return protocol.ValidID(kind, id) }

// onSend publishes a send to NATTER_IN and acks once JetStream has stored it. The
// read loop waits for the store, so one connection's sends keep their order.
func (g *Gateway) onSend(ctx context.Context, c *conn, f *protocol.Frame) error {
	start := time.Now()
	m, err := protocol.MessageFromSend(c.UserID(), f)
	if err != nil {
		return err
	}
	if err := g.members.checkSend(ctx, m.ChatID, c.UserID()); err != nil {
		return err
	}
	if err := g.flags.checkType(ctx, m.ChatID, m.MessageType); err != nil { // encrypted.go
		return err
	}
	if err := g.media.Share(ctx, c.UserID(), m); err != nil { // gateway/media
		return err
	}
	return g.publishAndAck(ctx, c, m, start)
}

// publishAndAck publishes a client's message to NATTER_IN (through the gateway's
// group commit, ingress.go) and returns once JetStream has stored it, so the
// connection's next frame is read after it (sender FIFO); the connection gets the
// sequencer's answer when it comes (answers.go): an ack with the chat seq or an
// error frame. start is when the frame arrived.
func (g *Gateway) publishAndAck(ctx context.Context, c *conn, m *protocol.Message, start time.Time) error {
	return g.publishIngress(ctx, m, asUser, func(f *protocol.Frame) {
		switch {
		case f == nil:
			c.Send(protocol.ErrorFrame(g.noAnswer(), m.ChatID, m.MessageID, ""))
		case f.Type == protocol.FrameError:
			c.Send(protocol.ErrorFrame(answer.Err(f), m.ChatID, m.MessageID, ""))
		default:
			g.deps.Metrics.SendAcked(time.Since(start))
			c.Send(&protocol.Frame{Type: protocol.FrameAck, ChatID: m.ChatID, MessageID: m.MessageID, Seq: f.Seq, Duplicate: f.Duplicate})
		}
	})
}

// onHistory answers a history frame with one page, of at most
// gateway.history-page-bytes (historyread.CapPage).
func (g *Gateway) onHistory(ctx context.Context, c *conn, f *protocol.Frame) error {
	if err := validID("chat", f.ChatID); err != nil {
		return err
	}
	if _, err := g.members.checkFresh(ctx, f.ChatID, c.UserID()); err != nil {
		return err
	}
	if f.Limit < 0 || f.Limit > store.MaxPage {
		return protocol.Errorf(protocol.CodeBadRequest, "limit must be 0..%d", store.MaxPage)
	}
	floor, err := historyread.Floor(ctx, g.deps.Store, f.ChatID, c.UserID())
	if err != nil {
		return err
	}
	// "after" present, even 0, pages forward (oldest first: after 0 starts at seq 1);
	// absent, backward from "before" (0: the newest page). Both is a contradiction.
	q := store.HistoryQuery{Before: f.Before, Limit: f.Limit, Viewer: c.UserID(), Floor: floor}
	if f.After != nil {
		if f.Before > 0 {
			return protocol.Errorf(protocol.CodeBadRequest, "give before or after, not both")
		}
		q = store.HistoryQuery{Dir: store.Forward, After: *f.After, Limit: f.Limit, Viewer: c.UserID(), Floor: floor}
	}
	msgs, err := g.deps.History.Page(ctx, f.ChatID, q)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("history of %s: %w", f.ChatID, err))
	}
	limit := q.Limit
	if limit == 0 {
		limit = store.DefaultPage
	}
	page, hasMore := historyread.CapPage(msgs, limit, g.cfg.HistoryPageBytes)
	msgs = nil
	// Paced: a client that asks for pages faster than it reads them stops being read
	// instead of growing its queue (transport.Conn.SendPaced).
	c.SendPaced(ctx, &protocol.Frame{Type: protocol.FrameHistoryResult, ID: f.ID, ChatID: f.ChatID,
		Messages: page, HasMore: hasMore, RetainedFrom: historyread.RetainedFrom(floor, q, page, hasMore)})
	return nil
}

// maxSyncChats caps how many chats one sync frame may name.
const maxSyncChats = 1000

// onSync resumes a client: for each chat it names, the messages after its seq, in
// order, then a synced frame with every chat's last seq. Live frames are held during
// the sync and released after it, minus what it sent: no gap, no duplicate.
// With no chats named, it answers with the user's chats and their last seqs.
func (g *Gateway) onSync(ctx context.Context, c *conn, f *protocol.Frame) error {
	if len(f.Chats) > maxSyncChats {
		return protocol.Errorf(protocol.CodeTooLarge, "sync names %d chats, the limit is %d", len(f.Chats), maxSyncChats)
	}
	for _, cc := range f.Chats {
		if err := validID("chat", cc.ChatID); err != nil {
			return err
		}
	}
	held := c.TakeResumeHold() // a resuming connection's hold becomes this sync's
	cursors := f.Chats
	if len(cursors) == 0 {
		if held {
			defer c.EndSync(nil)
		}
		chats, err := g.deps.Store.UserChats(ctx, c.UserID(), 1000, 0)
		if err != nil {
			return protocol.Errorf(protocol.CodeUnavailable, "chat list unavailable; retry").WithCause(fmt.Errorf("chats of %s: %w", c.UserID(), err))
		}
		out := make([]protocol.ChatCursor, 0, len(chats))
		for _, ch := range chats {
			last, err := g.deps.History.LastSeq(ctx, ch.ID)
			if err != nil {
				return protocol.Errorf(protocol.CodeUnavailable, "sync unavailable; retry").WithCause(fmt.Errorf("last seq of %s: %w", ch.ID, err))
			}
			out = append(out, protocol.ChatCursor{ChatID: ch.ID, Seq: last})
		}
		c.Send(&protocol.Frame{Type: protocol.FrameSynced, ID: f.ID, Chats: out})
		return nil
	}
	for _, cc := range cursors {
		if _, err := g.members.checkFresh(ctx, cc.ChatID, c.UserID()); err != nil {
			if held {
				c.EndSync(nil)
			}
			return err
		}
	}
	if !held {
		c.BeginSync()
	}
	sent := map[string]uint64{}
	defer func() { c.EndSync(sent) }()
	result := make([]protocol.ChatCursor, 0, len(cursors))
	for _, cc := range cursors {
		floor, err := historyread.Floor(ctx, g.deps.Store, cc.ChatID, c.UserID())
		if err != nil {
			return err
		}
		after := max(cc.Seq, floor)
		for {
			page, err := g.deps.History.Page(ctx, cc.ChatID, store.HistoryQuery{Dir: store.Forward, After: after, Limit: store.MaxPage, Viewer: c.UserID(), Floor: floor})
			if err != nil {
				return protocol.Errorf(protocol.CodeUnavailable, "sync unavailable; retry").WithCause(fmt.Errorf("history of %s: %w", cc.ChatID, err))
			}
			for i := range page {
				if !c.SendPaced(ctx, protocol.MessageFrame(&page[i])) {
					return nil // the connection is gone
				}
				after = page[i].Seq
			}
			if len(page) < store.MaxPage || c.Closed() {
				break
			}
		}
		sent[cc.ChatID] = after
		result = append(result, protocol.ChatCursor{ChatID: cc.ChatID, Seq: after, RetainedFrom: historyread.RetainedFrom(floor, store.HistoryQuery{Dir: store.Forward}, nil, false)})
	}
	c.Send(&protocol.Frame{Type: protocol.FrameSynced, ID: f.ID, Chats: result})
	return nil
}

// onReceipt records a delivered or read watermark and tells the chat's members.
func (g *Gateway) onReceipt(ctx context.Context, c *conn, f *protocol.Frame) error {
	if err := validID("chat", f.ChatID); err != nil {
		return err
	}
	if f.Seq == 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "seq is required")
	}
	if _, err := g.members.check(ctx, f.ChatID, c.UserID()); err != nil {
		return err
	}
	last, err := g.deps.History.LastSeq(ctx, f.ChatID)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "receipt not stored; retry").WithCause(fmt.Errorf("last seq of %s: %w", f.ChatID, err))
	}
	seq := min(f.Seq, last) // never beyond what exists
	var delivered, read uint64 = seq, 0
	if f.Type == protocol.FrameRead {
		read = seq
	}
	before, err := g.deps.Store.GetReadState(ctx, f.ChatID, c.UserID())
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "receipt not stored; retry").WithCause(fmt.Errorf("read state of %s: %w", f.ChatID, err))
	}
	rs, err := g.deps.Store.SetReadState(ctx, f.ChatID, c.UserID(), delivered, read)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "receipt not stored; retry").WithCause(fmt.Errorf("set read state of %s: %w", f.ChatID, err))
	}
	if rs == before {
		return nil // nothing moved forward: nothing to tell
	}
	// At most one more member than the limit is read: in a 100,000-member chat a
	// receipt must not read the member list (members_bulk.go).
	members, err := g.deps.Store.MembersPage(ctx, f.ChatID, "", g.cfg.ReceiptsMaxMembers+1)
	if err != nil {
		return nil // stored; the broadcast is best effort
	}
	frame := protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameReceipt, ChatID: f.ChatID,
		UserID: c.UserID(), Delivered: rs.Delivered, Read: rs.Read})
	if len(members) <= g.cfg.ReceiptsMaxMembers {
		for _, mb := range members {
			_ = g.deps.NC.Publish(g.deps.Subjects.User(mb.UserID), frame)
		}
		return nil
	}
	// A big group: only the reader's devices and the senders of the messages whose
	// state just changed (at most one page of them) hear of it.
	to := map[string]bool{c.UserID(): true}
	page, err := g.deps.History.Page(ctx, f.ChatID, store.HistoryQuery{Dir: store.Forward,
		After: min(before.Read, before.Delivered), Limit: store.MaxPage})
	if err == nil {
		for _, m := range page {
			if m.Seq <= rs.Delivered {
				to[m.SenderID] = true
			}
		}
	}
	for uid := range to {
		_ = g.deps.NC.Publish(g.deps.Subjects.User(uid), frame)
	}
	return nil
}
