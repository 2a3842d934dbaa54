package store

import (
	"context"
)

// Store methods added with chats and message operations; search is in
// cassandra_search.go.

// RenameChat implements Store.
func (s *CassandraStore) RenameChat(ctx context.Context, chatID, name string) error {
	return s.renameChat(ctx, chatID, name)
}

// UserChatsBefore implements Store.
func (s *CassandraStore) UserChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error) {
	return s.userChatsBefore(ctx, userID, cursor, limit)
}
