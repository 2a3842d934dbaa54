package store

import (
	"context"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Store methods added by issue 6 (chats, message operations, search) that the
// Cassandra backend does not implement yet. They keep the package compiling and
// answer ErrNotSupported, which the gateway turns into HTTP 501. Each one is to be
// deleted from this file when store_cassandra.go implements it; the conformance
// suite (storetest) says what each must do. Search may stay ErrNotSupported: its
// design for Cassandra is in docs/search.md.

// RenameChat is not implemented on Cassandra yet: ErrNotSupported.
func (s *CassandraStore) RenameChat(ctx context.Context, chatID, name string) error {
	return ErrNotSupported
}

// UserChatsBefore is not implemented on Cassandra yet: ErrNotSupported.
func (s *CassandraStore) UserChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error) {
	return nil, ErrNotSupported
}

// Search is not supported on Cassandra: ErrNotSupported (docs/search.md).
func (s *CassandraStore) Search(ctx context.Context, userID string, q SearchQuery) ([]protocol.Message, error) {
	return nil, ErrNotSupported
}
