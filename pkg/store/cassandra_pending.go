package store

import (
	"context"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Store methods added with chats, message operations and search (issue 6).
// Search stays ErrNotSupported on Cassandra (the gateway answers HTTP 501): its
// design is in docs/search.md.

// RenameChat implements Store.
func (s *CassandraStore) RenameChat(ctx context.Context, chatID, name string) error {
	return s.renameChat(ctx, chatID, name)
}

// UserChatsBefore implements Store.
func (s *CassandraStore) UserChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error) {
	return s.userChatsBefore(ctx, userID, cursor, limit)
}

// Search is not supported on Cassandra: ErrNotSupported (docs/search.md).
func (s *CassandraStore) Search(ctx context.Context, userID string, q SearchQuery) ([]protocol.Message, error) {
	return nil, ErrNotSupported
}
