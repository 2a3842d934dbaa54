package store

import (
	"context"
	"errors"
	"fmt"
)

// cqlChatAdmins reads a chat's admins through the chats_role index, within the
// chat's partition (in clustering order: by user ID).
const cqlChatAdmins = `SELECT user_id FROM chats WHERE chat_id = ? AND role = 'admin' LIMIT ?`

// ChatAdmins implements AdminStore through the chats_role index (migration 7).
//
// Cassandra builds an index added to a table that has rows in the background and
// refuses queries on it until the build is done: when the index query fails, the
// admins are read from the chat's partition instead (its members' roles, in pages),
// which is what the last-admin rule read before the index.
func (s *CassandraStore) ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error) {
	if chatID == "" {
		return nil, nil
	}
	limit = max(limit, 1)
	iter := s.sess.Query(cqlChatAdmins, chatID, limit).WithContext(ctx).Idempotent(true).Iter()
	var out []string
	var uid string
	for iter.Scan(&uid) {
		out = append(out, uid)
	}
	ierr := iter.Close()
	if ierr == nil {
		return out, nil
	}
	out, err := s.chatAdminsScan(ctx, chatID, limit)
	if err != nil {
		return nil, fmt.Errorf("cassandra: admins of %s: %w", chatID, errors.Join(ierr, err))
	}
	return out, nil
}

// chatAdminsScan reads the admins of chat from its members' roles, up to limit.
func (s *CassandraStore) chatAdminsScan(ctx context.Context, chatID string, limit int) ([]string, error) {
	iter := s.sess.Query(cqlMemberRoles, chatID).WithContext(ctx).Idempotent(true).PageSize(memberCountPage).Iter()
	var out []string
	var uid, role string
	for len(out) < limit && iter.Scan(&uid, &role) {
		if uid != "" && role == RoleAdmin {
			out = append(out, uid)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return out, nil
}
