package store

import (
	"context"
	"time"
)

// Retention and deletion (docs/privacy.md).
//
// Expiry: every message carries its own ExpiresAt, stamped by the sequencer from
// the chat's MessageTTL and the server's retention when it was sequenced, so a TTL
// change applies in chat order to what follows it. A message whose ExpiresAt has
// passed is gone: the stores never return it (History, Search, the chat list's
// last message) even before its row is physically removed: Cassandra writes it
// with a native TTL (USING TTL), SQLite removes it with SweepExpired, which the
// persister calls in small batches.

// Message TTL bounds (Chat.MessageTTL), in seconds: 5 s to 365 days.
const (
	MinMessageTTL = 5
	MaxMessageTTL = 365 * 24 * 3600
)

// EraseReport counts what EraseUser changed.
type EraseReport struct {
	// Messages is how many of the user's messages (any type) lost their content.
	Messages int `json:"messages"`
	// Chats is how many memberships were removed.
	Chats int `json:"chats"`
	// Devices is how many push devices were removed.
	Devices int `json:"devices"`
	// Profile says whether a profile was removed.
	Profile bool `json:"profile"`
}

// LifecycleStore is the retention and deletion part of Store.
type LifecycleStore interface {
	// SetMessageTTL sets chat's message TTL in seconds (Chat.MessageTTL; 0 turns
	// it off). ErrNotFound if there is no such chat.
	SetMessageTTL(ctx context.Context, chatID string, seconds int64) error
	// ClearHistory raises userID's history floor in chat to seq: History as the
	// gateway serves it to that user starts after it (HistoryFloor). A lower seq
	// than the current floor changes nothing. It also raises the user's read and
	// delivered watermarks to seq, so nothing at or below it counts as unread.
	// It returns the floor after the change.
	ClearHistory(ctx context.Context, chatID, userID string, seq uint64) (uint64, error)
	// HistoryFloor returns userID's history floor in chat, 0 if none.
	HistoryFloor(ctx context.Context, chatID, userID string) (uint64, error)
	// DeleteChat erases chat: its messages (and their operations, reactions and
	// search entries), members, read states, mutes and floors. The chat's ID stays
	// reserved: GetChat answers ErrNotFound and CreateChat with that ID answers
	// ErrChatDeleted. Deleting it again (or a chat that never existed) is not an
	// error; messages appended after it are erased by the next DeleteChat.
	DeleteChat(ctx context.Context, chatID string) error
	// EraseUser erases an account's data: the content and meta of every message
	// userID sent become empty and the message a deletion tombstone (Deleted; seq,
	// message ID, sender and timestamp kept, so every chat's sequence stays
	// whole), their search entries and userID's reactions are gone, and so are
	// userID's memberships, read states, mutes, floors, push devices, profile, the
	// blocks userID made, the invitations userID received and their published
	// end-to-end keys (device and one-time keys). Media (the avatar
	// included) is not in the store: the caller deletes it. Idempotent.
	EraseUser(ctx context.Context, userID string) (EraseReport, error)
	// SweepExpired physically removes up to limit messages whose ExpiresAt is at
	// or before now, with their search entries and operations, and returns how
	// many it removed (0 when none are left). Reads hide expired messages whether
	// or not they were swept. A backend with native expiry (Cassandra) returns 0.
	SweepExpired(ctx context.Context, now time.Time, limit int) (int, error)
}
