// Package protocol defines Natter's wire protocol: the JSON frames clients and the
// gateway exchange over WebSocket (and the HTTP fallback), the Message carried through
// NATS, and the stable error codes. docs/protocol.md is the prose description and
// docs/asyncapi.yaml the machine-readable one.
package protocol

import "encoding/json"

// Message types. MessageType is free-form for clients beyond these, up to 32 bytes.
const (
	TypeText   = "text"
	TypeImage  = "image"
	TypeFile   = "file"
	TypeSystem = "system"
	TypeEdit   = "edit"
	TypeDelete = "delete"
	TypeReact  = "react"
	// TypeEncrypted is a message of an end-to-end encrypted chat: its content is
	// the client's ciphertext envelope, which the server never interprets
	// (docs/e2ee.md).
	TypeEncrypted = "encrypted"
	// TypeEncryptedKeys is a key distribution of an end-to-end encrypted chat: opaque
	// ciphertext like TypeEncrypted (the sender key boxed for each recipient device),
	// stored, ordered and delivered like any message, but nothing a person reads: it
	// never counts as unread and is never pushed, and it cannot be edited, deleted,
	// reacted or replied to (docs/e2ee.md).
	TypeEncryptedKeys = "encrypted_keys"
)

// Message is one chat message as sequenced, delivered and stored. On ingress Seq and
// Timestamp are zero; the sequencer assigns both.
type Message struct {
	ChatID    string `json:"chatId"`
	Seq       uint64 `json:"seq,omitempty"`
	MessageID string `json:"messageId"`
	SenderID  string `json:"senderId"`
	// Content is opaque text (UTF-8): plain text, or ciphertext for end-to-end
	// encrypted clients. The server never interprets it.
	Content     string `json:"content"`
	MessageType string `json:"messageType"`
	// Timestamp is the sequencing time in milliseconds since the Unix epoch.
	Timestamp int64 `json:"timestamp,omitempty"`
	// ReplyTo is the messageId this message answers, if any.
	ReplyTo string `json:"replyTo,omitempty"`
	// RefID is the messageId an edit, delete or react event applies to.
	RefID string `json:"refId,omitempty"`
	// Meta holds structured data for system events (membership changes), media
	// references (MediaRef) and reactions (ReactionEvent). At most MaxMetaBytes.
	Meta json.RawMessage `json:"meta,omitempty"`

	// Current state, set only in history answers (never on ingress or live
	// delivery, where the edit, delete and react events arrive as messages of their
	// own; the publishers and the sequencer clear them): Edited says the content is an edit's, Deleted that the message was
	// deleted for everyone (Content and Meta are then empty), Reactions the emoji
	// reactions with their counts. See docs/protocol.md, "Message operations".
	Edited    bool       `json:"edited,omitempty"`
	Deleted   bool       `json:"deleted,omitempty"`
	Reactions []Reaction `json:"reactions,omitempty"`
	// StateSeq is the seq of the last edit, delete or react event applied to this
	// state (0: none). History merges unpersisted events above the store's; clients
	// that apply events live skip those at or below it, so a state read from history
	// and the same events arriving live are never counted twice.
	StateSeq uint64 `json:"stateSeq,omitempty"`

	// ExpiresAt is when the message disappears (ms since the Unix epoch; 0: never):
	// the sequencer sets it from the chat's message TTL and the server's retention
	// when it sequences the message (docs/privacy.md, "Retention"). From then on
	// no history, sync, search or push shows it; clients hide it at that time too.
	// Publishers cannot set it.
	ExpiresAt int64 `json:"expiresAt,omitempty"`
}

// Expired reports whether m has expired at now (ms since the Unix epoch).
func (m *Message) Expired(now int64) bool { return m.ExpiresAt != 0 && m.ExpiresAt <= now }

// Limits on message fields, enforced at the gateway.
const (
	MaxContentBytes     = 16 << 10
	MaxMessageTypeBytes = 32
	MaxMetaBytes        = 4 << 10
)
