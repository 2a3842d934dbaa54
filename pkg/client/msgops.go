package client

import (
	"context"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Edit replaces the text of the caller's message refID in chatID and waits for the
// ack (stored for sequencing). The sequencer may still refuse it (the target was
// deleted meanwhile): an error frame with the edit's messageId then arrives on
// Frames. The ack's MessageID is the edit's own new ID.
func (c *Conn) Edit(ctx context.Context, chatID, refID, content string) (*protocol.Frame, error) {
	return c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameEdit, ChatID: chatID, RefID: refID, Content: content})
}

// Delete deletes message refID of chatID for everyone and waits for the ack (see
// Edit for a later refusal).
func (c *Conn) Delete(ctx context.Context, chatID, refID string) (*protocol.Frame, error) {
	return c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameDelete, ChatID: chatID, RefID: refID})
}

// React adds (or with remove, takes back) the caller's emoji reaction to refID and
// waits for the ack (see Edit for a later refusal). Reacting twice with the same
// emoji counts once.
func (c *Conn) React(ctx context.Context, chatID, refID, emoji string, remove bool) (*protocol.Frame, error) {
	return c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameReact, ChatID: chatID, RefID: refID, Emoji: emoji, Remove: remove})
}
