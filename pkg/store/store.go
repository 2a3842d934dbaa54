// Package store is the durable state of Natter behind one Store interface, with an
// embedded SQLite backend (store_sqlite.go) and a Cassandra backend
// (store_cassandra.go). Both pass the conformance suite in storetest.
package store

import (
	"context"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Chat kinds.
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// Member roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Chat is a conversation's metadata.
type Chat struct {
	ID        string    `json:"id"`
	Kind      string    `json:"type"`
	Name      string    `json:"name,omitempty"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	// MessageTTL is how long, in seconds, a message sequenced in the chat lives
	// (disappearing messages); 0: as long as the server's retention allows.
	// MinMessageTTL..MaxMessageTTL. Set only by a sequenced message_ttl_changed
	// event (lifecycle.go).
	MessageTTL int64 `json:"messageTtl,omitempty"`
	// Encrypted marks an end-to-end encrypted chat (docs/e2ee.md): set at creation,
	// never changed. Its user messages are ciphertext the server does not read.
	Encrypted bool `json:"encrypted,omitempty"`
}

// Member is one user's membership of a chat.
type Member struct {
	ChatID   string    `json:"chatId"`
	UserID   string    `json:"userId"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joinedAt"`
}

// ChatSummary is a chat as listed for one user: its metadata, the last message, the
// user's read state and the resulting unread count.
type ChatSummary struct {
	Chat
	// LastSeq is the chat's highest stored seq (any message, operations included).
	LastSeq uint64 `json:"lastSeq"`
	// LastMessage is the newest message that is not an edit, delete or react event
	// nor a key distribution (protocol.Listed), in its current state (an edit's text, or a deletion tombstone); nil if none.
	LastMessage *protocol.Message `json:"lastMessage,omitempty"`
	ReadSeq     uint64            `json:"readSeq"`
	// Unread counts the messages after ReadSeq that a person reads (Countable):
	// not system events, not key distributions (encrypted_keys), not edit, delete
	// or react events, not deleted messages,
	// and not the user's own (sending a message also moves the sender's read
	// watermark to it). At most MaxUnread.
	Unread uint64 `json:"unread"`
	// LastActivity orders the list: the timestamp of the chat's last stored
	// message, or its creation time if later (or if it has none). Millisecond
	// precision.
	LastActivity time.Time `json:"lastActivity"`
}

// MaxUnread caps ChatSummary.Unread (and each chat's share of UnreadTotal): a larger
// backlog reads as MaxUnread. Counting further would cost reads for a number no
// badge shows.
const MaxUnread = 1000

// Countable reports whether m counts as unread for viewer: a message a person reads
// (text, media, ciphertext, an app type: protocol.Readable), not a system event, a
// key distribution or an edit, delete or react event, not deleted, and not viewer's
// own.
func Countable(m *protocol.Message, viewer string) bool {
	return protocol.Readable(m.MessageType) && !m.Deleted && m.SenderID != viewer
}

// ChatListCursor positions a page of UserChatsBefore: it names the last chat of the
// previous page by its LastActivity and ID. The zero value starts at the most
// recently active chat.
type ChatListCursor struct {
	Activity time.Time
	ChatID   string
}

// ReadState is one user's delivered and read watermarks in one chat.
type ReadState struct {
	ChatID    string `json:"chatId"`
	UserID    string `json:"userId"`
	Delivered uint64 `json:"delivered"`
	Read      uint64 `json:"read"`
}

// Mute is one user's notification setting for one chat. The zero value (Muted false)
// is "not muted".
type Mute struct {
	ChatID string `json:"chatId"`
	UserID string `json:"userId"`
	Muted  bool   `json:"muted"`
	// Until ends the mute; zero means until unmuted. Stored to the millisecond.
	Until time.Time `json:"until,omitempty"`
}

// Active reports whether the mute silences notifications at now.
func (m Mute) Active(now time.Time) bool {
	return m.Muted && (m.Until.IsZero() || now.Before(m.Until))
}

// Direction of a history page.
type Direction int

const (
	// Backward pages from newest to oldest (the default): messages with seq < Before
	// (or the newest when Before is 0), newest first.
	Backward Direction = iota
	// Forward pages from oldest to newest: messages with seq > After, oldest first.
	Forward
)

// HistoryQuery selects one page of a chat's history.
type HistoryQuery struct {
	Dir    Direction
	Before uint64 // Backward: exclusive upper bound; 0 means from the newest
	After  uint64 // Forward: exclusive lower bound
	Limit  int    // 1..MaxPage; 0 means DefaultPage
	// Viewer is the user reading: each protocol.Reaction's Me says whether Viewer
	// is among its users. Empty: Me is always false.
	Viewer string
	// Floor hides every message at or below it: the viewer's cleared history
	// (LifecycleStore.HistoryFloor). history.Reader.Page applies it; Store.History
	// ignores it.
	Floor uint64
}

// Page sizes.
const (
	DefaultPage = 50
	MaxPage     = 500
)

// Store is the durable state Natter keeps. Implementations are safe for concurrent use.
//
// Messages are keyed by (chat, seq); AppendMessages is idempotent, so a persister that
// retries a batch, or two persisters that race, store each message once.
type Store interface {
	// AppendMessages stores msgs (any chats, any order). A message whose (chat, seq)
	// is already stored is skipped, and so is one whose (chat, MessageID) is stored
	// under another seq, before or earlier in msgs (a chat holds a message ID once: the sequencer's
	// exactly-once check never sequences one twice, and this is its second net).
	// It also advances each chat's last seq and last message.
	//
	// Operations are applied to the message they reference (same chat, MessageID ==
	// RefID, not itself a system message or an operation), whatever the order in
	// which the message and its operations arrive (two persisters may race), by the
	// rules of protocol.ApplyOp, which both backends and pkg/history share:
	//   - edit: the content becomes the edit's and the message is marked Edited,
	//     the edit with the highest seq winning; only an edit by the message's
	//     sender applies;
	//   - delete: the message becomes a tombstone (Deleted, content and meta
	//     cleared, reactions gone), and so do the contents of its edit events;
	//     nothing undoes it;
	//   - react (Meta is a protocol.ReactionEvent): the sender's reaction with that
	//     emoji is added or removed, the event with the highest seq winning; a
	//     user counts once per emoji.
	// The operation events themselves are stored as messages too.
	AppendMessages(ctx context.Context, msgs []protocol.Message) error
	// History returns one page of chat's messages (see HistoryQuery), ordered in the
	// page's direction, each in its current state (see AppendMessages: Edited,
	// Deleted, Reactions ordered by first reaction, StateSeq). An unknown chat
	// yields an empty page.
	History(ctx context.Context, chatID string, q HistoryQuery) ([]protocol.Message, error)
	// LastSeq returns the highest stored seq of chat, 0 if none.
	LastSeq(ctx context.Context, chatID string) (uint64, error)
	// MessageSeq returns the seq under which messageID was stored in chat;
	// ErrNotFound if it was not.
	MessageSeq(ctx context.Context, chatID, messageID string) (uint64, error)
	// MessageSeqs is MessageSeq for many messages at once (any chats): the seq of
	// each key that is stored; keys that are not are absent from the map. The
	// sequencer's exactly-once check asks it once per batch (message_ids.go).
	MessageSeqs(ctx context.Context, keys []MessageKey) (map[MessageKey]uint64, error)

	// CreateChat stores chat and its members. If a chat with the same ID exists it
	// returns that chat with created false and changes nothing.
	CreateChat(ctx context.Context, chat Chat, members []Member) (stored Chat, created bool, err error)
	// GetChat returns the chat; ErrNotFound if there is none.
	GetChat(ctx context.Context, chatID string) (Chat, error)
	// Members returns the current members of chat, ordered by user ID.
	Members(ctx context.Context, chatID string) ([]Member, error)
	// GetMember returns userID's membership of chat; ErrNotFound if not a member.
	GetMember(ctx context.Context, chatID, userID string) (Member, error)
	// AddMember adds or updates (role) a member.
	AddMember(ctx context.Context, m Member) error
	// RemoveMember removes userID from chat; removing a non-member is not an error.
	RemoveMember(ctx context.Context, chatID, userID string) error
	// RenameChat sets chat's name (empty clears it); ErrNotFound if there is no
	// such chat.
	RenameChat(ctx context.Context, chatID, name string) error
	// UserChats lists userID's chats, most recently active first (LastActivity,
	// then chat ID), with last message and unread count; at most limit (0 means
	// 100), skipping offset.
	UserChats(ctx context.Context, userID string, limit, offset int) ([]ChatSummary, error)
	// UserChatsBefore lists userID's chats in the order of UserChats, starting
	// after the chat cursor names (at the top for the zero cursor); at most limit
	// (0 means 100). Unlike an offset, the cursor neither repeats nor skips a chat
	// when others become active or are left between pages.
	UserChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error)
	// UnreadTotal returns the sum of Unread (as UserChats computes it) over all of
	// userID's chats but exceptChatID (none when empty): a notification's badge,
	// without listing the chats. 0 for a user with no chats.
	UnreadTotal(ctx context.Context, userID, exceptChatID string) (uint64, error)
	// UnreadBetween counts chatID's messages with seq in (after, upTo] that are
	// Countable for userID and not expired, in their current state, at most
	// MaxUnread: a notification's count, as Unread counts them. It reads only what
	// is stored; a caller whose messages may not all be stored yet merges the log
	// (pkg/history) instead.
	UnreadBetween(ctx context.Context, chatID, userID string, after, upTo uint64) (uint64, error)

	// SetReadState raises the watermarks of (chat, user) to at least delivered and
	// read (a lower value leaves them unchanged; read also raises delivered) and
	// returns the state after the change.
	SetReadState(ctx context.Context, chatID, userID string, delivered, read uint64) (ReadState, error)
	// GetReadState returns (chat, user)'s watermarks; zeros if none.
	GetReadState(ctx context.Context, chatID, userID string) (ReadState, error)

	// SetMute stores m.UserID's mute of m.ChatID, replacing any earlier one; m.Muted
	// false removes it. It does not check membership.
	SetMute(ctx context.Context, m Mute) error
	// GetMute returns userID's mute of chatID as stored, expired or not; a Mute with
	// Muted false if there is none.
	GetMute(ctx context.Context, chatID, userID string) (Mute, error)

	// DeviceStore is the push device registry (devices.go).
	DeviceStore
	// PeopleStore is profiles, blocks and group invitations (people.go).
	PeopleStore
	// KeyStore is the key directory of end-to-end encrypted chats (keys.go).
	KeyStore
	// LifecycleStore is retention and deletion (lifecycle.go).
	LifecycleStore
	// MemberStore is the bulk and paged membership API (members.go).
	MemberStore
	// RecipientStore reads notifications' recipients in batches (recipients.go).
	RecipientStore
	// AdminStore finds a chat's admins (admins.go).
	AdminStore

	// Ping checks the store answers (readiness).
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
