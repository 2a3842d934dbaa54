package protocol

import (
	"encoding/json"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// Reaction is one emoji's reactions to a message, as history returns it.
type Reaction struct {
	Emoji string `json:"emoji"`
	// Count is how many users reacted with Emoji (each user counts once).
	Count int `json:"count"`
	// Me reports whether the user reading the history is one of them.
	Me bool `json:"me,omitempty"`
}

// ReactionEvent is the Meta of a react message: the emoji, and whether the sender
// takes that reaction back.
type ReactionEvent struct {
	Emoji  string `json:"emoji"`
	Remove bool   `json:"remove,omitempty"`
}

// ParseReaction returns the ReactionEvent in a react message's meta; ok is false if
// meta is not one.
func ParseReaction(meta json.RawMessage) (ev ReactionEvent, ok bool) {
	if len(meta) == 0 || json.Unmarshal(meta, &ev) != nil || !ValidEmoji(ev.Emoji) {
		return ReactionEvent{}, false
	}
	return ev, true
}

// MediaRef is the Meta of an image or file message: the uploaded media it shows
// (POST /api/v1/media). Only MediaID is checked by the server; the rest is for
// display.
type MediaRef struct {
	MediaID     string `json:"mediaId"`
	Name        string `json:"name,omitempty"`
	Size        int64  `json:"size,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// MaxEmojiBytes is the longest reaction emoji, in bytes.
const MaxEmojiBytes = 32

// IsOperation reports whether messageType is an operation on another message: an
// edit, delete or react event, which references its target with RefID.
func IsOperation(messageType string) bool {
	return messageType == TypeEdit || messageType == TypeDelete || messageType == TypeReact
}

// Referable reports whether a message of messageType may be the target of an edit,
// delete, reaction or reply: anything but a system message, a key distribution
// (TypeEncryptedKeys) or an operation.
func Referable(messageType string) bool {
	return messageType != TypeSystem && messageType != TypeEncryptedKeys && !IsOperation(messageType)
}

// Listed reports whether a message of messageType may be a chat's last message in
// the chat list (store.ChatSummary.LastMessage): anything but an operation or a key
// distribution (TypeEncryptedKeys), which no client shows.
func Listed(messageType string) bool {
	return !IsOperation(messageType) && messageType != TypeEncryptedKeys
}

// Readable reports whether a message of messageType is something a person reads:
// not a system event, a key distribution or an operation. Only those count as unread
// (store.Countable) and are pushed.
func Readable(messageType string) bool {
	return Referable(messageType)
}

// Searchable reports whether a message of messageType is indexed for search: a
// Referable one that is not an end-to-end encrypted ciphertext.
func Searchable(messageType string) bool {
	return Referable(messageType) && messageType != TypeEncrypted
}

// ValidEmoji reports whether e may be a reaction: 1..MaxEmojiBytes bytes of UTF-8
// that are either a shortcode (":thumbs_up:", of a-z 0-9 _ + -) or exactly one
// grapheme cluster (so skin tones, ZWJ sequences, flags and keycaps count as one)
// that contains a symbol (Unicode category So or Sk, or the keycap U+20E3) and no
// control or white-space character. Letters, digits and punctuation alone are not
// reactions.
func ValidEmoji(e string) bool {
	if len(e) == 0 || len(e) > MaxEmojiBytes || !utf8.ValidString(e) {
		return false
	}
	if len(e) >= 3 && e[0] == ':' && e[len(e)-1] == ':' {
		for i := 1; i < len(e)-1; i++ {
			c := e[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '+' || c == '-') {
				return false
			}
		}
		return true
	}
	if uniseg.GraphemeClusterCount(e) != 1 {
		return false
	}
	symbol := false
	for _, r := range e {
		switch {
		case r == '\u200d' || r == '\ufe0f' || r == '\ufe0e' || (r >= 0xe0020 && r <= 0xe007f):
			// zero-width joiner, variation selectors, tag characters (subdivision flags)
		case unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r):
			return false
		case unicode.Is(unicode.So, r) || unicode.Is(unicode.Sk, r) || r == '\u20e3':
			symbol = true
		}
	}
	return symbol
}

// AuthorizeOperation applies the rules of edits, deletes and reactions to op (whose
// RefID names target, the referenced message in its current state as op's sender
// sees it, so target.Reactions' Me is the sender's): the target must not be a system
// message or an operation, nor deleted; only its author edits it; its author, a chat
// admin (admin) or a trusted service (service) deletes it. It returns an *Error for
// a refusal, and noop true for a reaction that changes nothing (adding one the
// sender has, removing one they have not), which is not sequenced: reactions are
// idempotent per user and emoji.
func AuthorizeOperation(op, target *Message, admin, service bool) (noop bool, err *Error) {
	switch {
	case !Referable(target.MessageType):
		return false, Errorf(CodeBadRequest, "message %s is a %s message, which cannot be edited, deleted or reacted to", target.MessageID, target.MessageType)
	case target.Deleted:
		return false, Errorf(CodeConflict, "message %s is deleted", target.MessageID)
	}
	switch op.MessageType {
	case TypeEdit:
		if target.SenderID != op.SenderID {
			return false, Errorf(CodeForbidden, "only the author edits a message")
		}
	case TypeDelete:
		if target.SenderID != op.SenderID && !admin && !service {
			return false, Errorf(CodeForbidden, "only the author or a chat admin deletes a message")
		}
	case TypeReact:
		ev, _ := ParseReaction(op.Meta)
		has := false
		for _, r := range target.Reactions {
			if r.Emoji == ev.Emoji {
				has = r.Me
			}
		}
		return has != ev.Remove, nil
	}
	return false, nil
}

// Op is an operation event (an edit, delete or react message) as the rules of
// ApplyOp read it.
type Op struct {
	Type     string // TypeEdit, TypeDelete or TypeReact
	Seq      uint64
	SenderID string
	// Content is an edit's new text.
	Content string
	// Reaction is a react's emoji and direction.
	Reaction ReactionEvent
}

// OpOf returns the operation m carries. ok is false if m cannot change any
// message: it is not an edit, delete or react event, it references none (no
// RefID), or it is a react whose meta is not a ReactionEvent. Such a message is
// still stored as sent.
func OpOf(m *Message) (op Op, ok bool) {
	if !IsOperation(m.MessageType) || m.RefID == "" {
		return Op{}, false
	}
	op = Op{Type: m.MessageType, Seq: m.Seq, SenderID: m.SenderID}
	switch m.MessageType {
	case TypeEdit:
		op.Content = m.Content
	case TypeReact:
		if op.Reaction, ok = ParseReaction(m.Meta); !ok {
			return Op{}, false
		}
	}
	return op, true
}

// OpState is the part of a message's state that operations change, with what the
// rules of ApplyOp read. OpStateOf takes it from a message; Set writes it back.
type OpState struct {
	// MessageType, SenderID and Seq are the message's own: they never change.
	MessageType string
	SenderID    string
	Seq         uint64
	Content     string
	Edited      bool
	Deleted     bool
	// EditSeq is the seq of the edit that gave Content; 0 if none (or unknown:
	// every edit above StateSeq is then newer).
	EditSeq uint64
	// StateSeq is the highest seq of an operation applied (Message.StateSeq).
	StateSeq uint64
}

// OpStateOf returns m's OpState, with EditSeq 0.
func OpStateOf(m *Message) OpState {
	return OpState{MessageType: m.MessageType, SenderID: m.SenderID, Seq: m.Seq, Content: m.Content,
		Edited: m.Edited, Deleted: m.Deleted, StateSeq: m.StateSeq}
}

// Set writes s into m: its content, Edited, Deleted and StateSeq. A deleted
// message also loses its meta and reactions (a tombstone).
func (s OpState) Set(m *Message) {
	m.Content, m.Edited, m.Deleted, m.StateSeq = s.Content, s.Edited, s.Deleted, s.StateSeq
	if s.Deleted {
		m.Meta, m.Reactions = nil, nil
	}
}

// OpEffect is what an operation did to its target (ApplyOp).
type OpEffect int

const (
	// OpNone: the operation changes nothing in its target.
	OpNone OpEffect = iota
	// OpEdited: the target's content is the edit's, and it is marked Edited.
	OpEdited
	// OpDeleted: the target is a tombstone (Deleted; content, meta and reactions
	// gone), and its edit events keep no text either. Nothing undoes it.
	OpDeleted
	// OpReacted: the sender's reaction with the emoji is set (present, or taken
	// back if Reaction.Remove). Reactions are a register per (emoji, user) that
	// the event with the highest seq sets; a user counts once per emoji. The
	// register lives where the caller keeps reactions (the stores keep it
	// natively: SQLite's upsert on seq, Cassandra's write timestamp).
	OpReacted
)

// ApplyOp is the one implementation of what an edit, delete or react event does to
// the message it references (the stores when they store it, and history when it
// applies the unstored log tail): it returns target's state after op, and op's
// effect. The rules, which give the same result in any order of arrival (two
// persisters may race), are:
//   - an operation applies only to a message before it (op.Seq > target.Seq) that
//     is Referable; StateSeq rises to the highest seq of one that applies, even if
//     it changes nothing;
//   - a delete makes the target a tombstone, whoever sent it (the sequencer
//     authorized it: AuthorizeOperation), and nothing undoes it;
//   - an edit applies only if its sender wrote the target, the target is not
//     deleted, and it is newer than the edit that gave the current text;
//   - a react applies to a target that is not deleted (see OpReacted).
//
// ApplyOp is pure: it neither reads nor changes anything else.
func ApplyOp(target OpState, op Op) (OpState, OpEffect) {
	if !Referable(target.MessageType) || op.Seq <= target.Seq {
		return target, OpNone
	}
	target.StateSeq = max(target.StateSeq, op.Seq)
	switch op.Type {
	case TypeDelete:
		target.Deleted, target.Edited, target.Content, target.EditSeq = true, false, "", 0
		return target, OpDeleted
	case TypeEdit:
		if target.Deleted || op.SenderID != target.SenderID || op.Seq <= target.EditSeq {
			return target, OpNone
		}
		target.Content, target.Edited, target.EditSeq = op.Content, true, op.Seq
		return target, OpEdited
	case TypeReact:
		if target.Deleted {
			return target, OpNone
		}
		return target, OpReacted
	}
	return target, OpNone
}

// AdjustReactions applies one reaction event (ApplyOp's OpReacted) by sender to
// reactions, a message's reactions as viewer sees them, and returns the result.
// It counts rather than keeps registers, so it is exact only for events that
// change something (adding a reaction the sender does not have, taking back one
// they have), which is all the sequencer sequences (AuthorizeOperation's noop);
// for the viewer's own reactions it checks Me. A new emoji goes last; an emoji
// whose count drops to 0 is gone. reactions is not modified.
func AdjustReactions(reactions []Reaction, ev ReactionEvent, sender, viewer string) []Reaction {
	me := viewer != "" && sender == viewer
	i := 0
	for i < len(reactions) && reactions[i].Emoji != ev.Emoji {
		i++
	}
	switch {
	case ev.Remove && i < len(reactions):
		r := reactions[i]
		if me && !r.Me {
			return reactions // the viewer had no such reaction: nothing to take back
		}
		r.Count--
		if me {
			r.Me = false
		}
		if r.Count <= 0 {
			return append(reactions[:i:i], reactions[i+1:]...)
		}
		return replaced(reactions, i, r)
	case ev.Remove:
		return reactions
	case i < len(reactions):
		r := reactions[i]
		if me && r.Me {
			return reactions // already counted
		}
		r.Count++
		r.Me = r.Me || me
		return replaced(reactions, i, r)
	}
	return append(reactions[:len(reactions):len(reactions)], Reaction{Emoji: ev.Emoji, Count: 1, Me: me})
}

// replaced returns a copy of rs with rs[i] = r.
func replaced(rs []Reaction, i int, r Reaction) []Reaction {
	out := slices.Clone(rs)
	out[i] = r
	return out
}
