package protocol

import (
	"encoding/json"

	"github.com/natter-chat/natter/pkg/ids"
)

// ValidID returns nil for a valid ID, else a CodeInvalidID *Error naming kind
// ("chat", "user", ...): the answer to a client that sent a malformed ID.
func ValidID(kind, id string) error {
	if err := ids.Validate(kind, id); err != nil {
		return Errorf(CodeInvalidID, "%v", err)
	}
	return nil
}

// ValidateMessage checks m as every path into NATTER_IN must: the gateway (send
// frames, REST sends, edit/delete/react frames), pkg/publish and the sequencer all
// call it, so a message one of them accepts, the others accept too. It checks what a
// publisher sets (IDs, sizes, type, reply, operation target and payload), not the
// fields the sequencer and store set (Seq, Timestamp, the history state).
//
// It returns nil or an *Error: CodeInvalidID for a chat, message, sender, replyTo or
// refId that is not an ID; CodeTooLarge for content or meta over its limit;
// CodeBadRequest for the rest.
func ValidateMessage(m *Message) error {
	for _, c := range []struct{ kind, id string }{{"chat", m.ChatID}, {"message", m.MessageID}, {"user", m.SenderID}} {
		if err := ValidID(c.kind, c.id); err != nil {
			return err
		}
	}
	if m.ReplyTo != "" {
		if err := ids.Validate("message", m.ReplyTo); err != nil {
			return Errorf(CodeInvalidID, "replyTo: %v", err)
		}
	}
	if len(m.Content) > MaxContentBytes {
		return Errorf(CodeTooLarge, "content is %d bytes, the limit is %d", len(m.Content), MaxContentBytes)
	}
	// A chat change (a bulk one names up to MaxBulkMembers users) may be larger.
	if len(m.Meta) > MaxMetaBytes && (len(m.Meta) > MaxChangeMetaBytes || m.MessageType != TypeSystem || ChatChangeIn(m.Meta) == "") {
		return Errorf(CodeTooLarge, "meta is %d bytes, the limit is %d (%d for a chat change)", len(m.Meta), MaxMetaBytes, MaxChangeMetaBytes)
	}
	if len(m.Meta) > 0 {
		var obj map[string]any
		if json.Unmarshal(m.Meta, &obj) != nil {
			return Errorf(CodeBadRequest, "meta must be a JSON object")
		}
	}
	if len(m.MessageType) > MaxMessageTypeBytes || !ids.Valid(m.MessageType) {
		return Errorf(CodeBadRequest, "messageType must be 1..%d of A-Z a-z 0-9 _ -", MaxMessageTypeBytes)
	}
	if !IsOperation(m.MessageType) {
		if m.RefID != "" {
			return Errorf(CodeBadRequest, "refId is only for edit, delete and react")
		}
		if m.Content == "" && len(m.Meta) == 0 {
			return Errorf(CodeBadRequest, "a message needs content or meta")
		}
		return nil
	}
	if m.RefID == "" {
		return Errorf(CodeBadRequest, "an %s needs refId, the message it applies to", m.MessageType)
	}
	if err := ids.Validate("message", m.RefID); err != nil {
		return Errorf(CodeInvalidID, "refId: %v", err)
	}
	if m.RefID == m.MessageID {
		return Errorf(CodeBadRequest, "messageId is a new ID for the %s, not the refId", m.MessageType)
	}
	if m.ReplyTo != "" {
		return Errorf(CodeBadRequest, "an %s has no replyTo", m.MessageType)
	}
	switch m.MessageType {
	case TypeEdit:
		if m.Content == "" {
			return Errorf(CodeBadRequest, "an edit needs content (delete the message instead)")
		}
	case TypeDelete:
		if m.Content != "" || len(m.Meta) > 0 {
			return Errorf(CodeBadRequest, "a delete has no content or meta")
		}
	case TypeReact:
		if _, ok := ParseReaction(m.Meta); !ok || m.Content != "" {
			return Errorf(CodeBadRequest, `a react has meta {"emoji","remove?"} with one emoji (a single grapheme cluster or a :shortcode:, at most %d bytes), and no content`, MaxEmojiBytes)
		}
	}
	return nil
}

// MsgID is the Nats-Msg-Id of message messageID of chat, on NATTER_IN and
// NATTER_LOG alike: JetStream deduplicates a resent message by it, and the
// sequencer's append carries the same ID so a crash between append and ack cannot
// sequence it twice.
func MsgID(chat, messageID string) string { return chat + ":" + messageID }
