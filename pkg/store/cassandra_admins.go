package store

import (
	"context"
	"fmt"
)

// cqlChatAdmins reads a chat's admins through the chats_role index, within the
// chat's partition (in clustering order: by user ID).
const cqlChatAdmins = `SELECT user_id FROM chats WHERE chat_id = ? AND role = 'admin' LIMIT ?`

// ChatAdmins implements AdminStore.
func (s *CassandraStore) ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error) {
	if chatID == "" {
		return nil, nil
	}
	iter := s.sess.Query(cqlChatAdmins, chatID, max(limit, 1)).WithContext(ctx).Idempotent(true).Iter()
	var out []string
	var uid string
	for iter.Scan(&uid) {
		out = append(out, uid)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: admins of %s: %w", chatID, err)
	}
	return out, nil
}
