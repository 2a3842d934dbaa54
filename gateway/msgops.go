package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Message operations: the edit, delete and react frames. Each becomes an ingress
// message of type edit, delete or react whose RefID names the message it applies to,
// and whose own messageId (a new client ID) deduplicates resends as for send; it is
// acked once stored in NATTER_IN.
//
// The sequencer decides, in chat order, whether the operation is allowed
// (protocol.AuthorizeOperation: only the author edits, the author or an admin
// deletes, nothing on a deleted message) and refuses it with an error frame sent to
// the sender's devices. The gateway checks the same rules first when it can already
// see the target, so the common refusals are immediate and nothing is published for
// them; a target it cannot see yet (sequenced a moment ago) is left to the
// sequencer.

// opFromFrame validates an edit, delete or react frame and returns its ingress
// message.
func opFromFrame(sender string, f *protocol.Frame) (*protocol.Message, error) {
	if f.RefID == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "refId (the message to %s) is required", f.Type)
	}
	m := &protocol.Message{ChatID: f.ChatID, MessageID: f.MessageID, SenderID: sender, MessageType: f.Type, RefID: f.RefID}
	switch f.Type {
	case protocol.FrameEdit:
		m.Content = f.Content
	case protocol.FrameReact:
		// The frame's emoji field becomes the react message's meta.
		if !protocol.ValidEmoji(f.Emoji) {
			return nil, protocol.Errorf(protocol.CodeBadRequest,
				"emoji must be one emoji (a single grapheme cluster) or a :shortcode:, at most %d bytes", protocol.MaxEmojiBytes)
		}
		m.Meta, _ = json.Marshal(protocol.ReactionEvent{Emoji: f.Emoji, Remove: f.Remove})
	}
	if err := protocol.ValidateMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}

// onOperation handles edit, delete and react frames.
func (g *Gateway) onOperation(ctx context.Context, c *conn, f *protocol.Frame) error {
	start := time.Now()
	m, err := opFromFrame(c.UserID(), f)
	if err != nil {
		return err
	}
	if err := g.members.checkSend(ctx, m.ChatID, c.UserID()); err != nil {
		return err
	}
	if err := g.flags.checkType(ctx, m.ChatID, m.MessageType); err != nil { // encrypted.go
		return err
	}
	if err := g.precheckOp(ctx, m); err != nil {
		return err
	}
	return g.publishAndAck(ctx, c, m, start)
}

// precheckOp refuses an operation the sequencer would refuse, when the target is
// already visible; otherwise (not found yet, or the lookup failed) it lets the
// sequencer decide.
func (g *Gateway) precheckOp(ctx context.Context, m *protocol.Message) error {
	if g.deps.History == nil {
		return nil
	}
	ref, err := g.deps.History.Message(ctx, m.ChatID, m.RefID, m.SenderID)
	if err != nil {
		return nil
	}
	admin := false
	if mb, err := g.members.check(ctx, m.ChatID, m.SenderID); err == nil {
		admin = mb.Role == store.RoleAdmin
	}
	if _, perr := protocol.AuthorizeOperation(m, &ref, admin, false); perr != nil {
		return perr
	}
	return nil
}
