package store

import "context"

// AdminStore finds a chat's admins without reading its members: the last-admin
// rule (a chat with members keeps an admin) is checked on every removal or
// departure of an admin, in chats of up to 100,000 members.
type AdminStore interface {
	// ChatAdmins returns up to limit (at least 1) of chat's admins, ordered by
	// user ID; none for an unknown chat. Its cost follows the admins read, not the
	// chat's members (an index of admins on both backends).
	ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error)
}
