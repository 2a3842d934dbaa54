package protocol

import (
	"encoding/json"
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
