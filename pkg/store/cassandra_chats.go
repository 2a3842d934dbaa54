package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
)

// CreateChat implements Store. The chat and its members are one conditional batch
// on the chat's partition (a lightweight transaction: exactly one of two racing
// creates wins). The members' user_chats rows follow; if the process dies between
// the two, repeating the same CreateChat (same kind, name, creator and time) writes
// them, so a retried create converges.
func (s *CassandraStore) CreateChat(ctx context.Context, chat Chat, members []Member) (Chat, bool, error) {
	if chat.ID == "" {
		return Chat{}, false, errors.New("cassandra: create chat: empty chat ID")
	}
	chat.CreatedAt = time.UnixMilli(chat.CreatedAt.UnixMilli()).UTC()
	if err := s.refuseDeleted(ctx, chat.ID); err != nil { // cassandra_retention.go
		return Chat{}, false, err
	}
	b := s.sess.NewBatch(gocql.LoggedBatch).WithContext(ctx).RetryPolicy(nil)
	b.SerialConsistency(gocql.LocalSerial)
	b.Query(cqlCreateChat, chat.ID, chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt, chat.Encrypted)
	for _, m := range members {
		b.Query(cqlInsertMember, chat.ID, m.UserID, m.Role, m.JoinedAt)
	}
	existing := map[string]any{}
	applied, iter, err := s.sess.MapExecuteBatchCAS(b, existing)
	if err != nil {
		return Chat{}, false, fmt.Errorf("cassandra: create chat %s: %w", chat.ID, err)
	}
	iter.Close()
	if !applied {
		stored := Chat{ID: chat.ID}
		stored.Kind, _ = existing["kind"].(string)
		stored.Name, _ = existing["name"].(string)
		stored.CreatedBy, _ = existing["created_by"].(string)
		stored.Encrypted, _ = existing["encrypted"].(bool)
		if at, ok := existing["created_at"].(time.Time); ok {
			stored.CreatedAt = at.UTC()
		}
		if stored.Kind != chat.Kind || stored.Name != chat.Name || stored.CreatedBy != chat.CreatedBy ||
			!stored.CreatedAt.Equal(chat.CreatedAt) || stored.Encrypted != chat.Encrypted {
			return stored, false, nil
		}
		// The same create again: maybe a retry after a crash; finish its index.
		current, err := s.Members(ctx, chat.ID)
		if err != nil {
			return Chat{}, false, err
		}
		members = current
	}
	ops := make([]writeOp, 0, len(members)+1)
	ops = append(ops, writeOp{what: "chat name", chat: chat.ID, serverTime: true, entries: []gocql.BatchEntry{
		entry(cqlSetChatName, chat.Name, chat.ID)}})
	for _, m := range members {
		ops = append(ops, writeOp{what: "user_chats row of " + m.UserID, chat: chat.ID, serverTime: true, entries: []gocql.BatchEntry{
			entry(cqlAddUserChat, m.UserID, chat.ID, chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt, chat.Encrypted)}})
	}
	if err := s.run(ctx, ops); err != nil {
		return Chat{}, false, fmt.Errorf("cassandra: create chat %s: %w", chat.ID, err)
	}
	return chat, applied, nil
}

// GetChat implements Store.
func (s *CassandraStore) GetChat(ctx context.Context, chatID string) (Chat, error) {
	if chatID == "" {
		return Chat{}, ErrNotFound
	}
	c := Chat{ID: chatID}
	var kind *string // null: member rows without a chat
	var ttl *int64
	err := s.sess.Query(cqlGetChat, chatID).WithContext(ctx).Idempotent(true).Scan(&kind, &c.Name, &c.CreatedBy, &c.CreatedAt, &ttl, &c.Encrypted)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && kind == nil) {
		return Chat{}, ErrNotFound
	}
	if err != nil {
		return Chat{}, fmt.Errorf("cassandra: get chat %s: %w", chatID, err)
	}
	c.Kind, c.CreatedAt = *kind, c.CreatedAt.UTC()
	if ttl != nil {
		c.MessageTTL = *ttl
	}
	return c, nil
}

// Members implements Store.
func (s *CassandraStore) Members(ctx context.Context, chatID string) ([]Member, error) {
	if chatID == "" {
		return nil, nil
	}
	iter := s.sess.Query(cqlMembers, chatID).WithContext(ctx).Idempotent(true).Iter()
	var out []Member
	for {
		m := Member{ChatID: chatID}
		if !iter.Scan(&m.UserID, &m.Role, &m.JoinedAt) {
			break
		}
		if m.UserID == "" {
			continue // the chat's static row, with no members
		}
		m.JoinedAt = m.JoinedAt.UTC()
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: members %s: %w", chatID, err)
	}
	return out, nil
}

// GetMember implements Store.
func (s *CassandraStore) GetMember(ctx context.Context, chatID, userID string) (Member, error) {
	if chatID == "" || userID == "" {
		return Member{}, ErrNotFound
	}
	m := Member{ChatID: chatID, UserID: userID}
	err := s.sess.Query(cqlGetMember, chatID, userID).WithContext(ctx).Idempotent(true).Scan(&m.Role, &m.JoinedAt)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && m.Role == "") {
		return Member{}, ErrNotFound
	}
	if err != nil {
		return Member{}, fmt.Errorf("cassandra: member %s/%s: %w", chatID, userID, err)
	}
	m.JoinedAt = m.JoinedAt.UTC()
	return m, nil
}

// AddMember implements Store. An existing member keeps their join time. Membership
// writes take the coordinator's clock as their timestamp, as CreateChat's LWT does,
// so a removal right after a create is ordered after it.
func (s *CassandraStore) AddMember(ctx context.Context, m Member) error {
	if m.ChatID == "" || m.UserID == "" {
		return fmt.Errorf("cassandra: add member %q/%q: empty ID", m.ChatID, m.UserID)
	}
	var stmt gocql.BatchEntry
	switch _, err := s.GetMember(ctx, m.ChatID, m.UserID); {
	case err == nil:
		stmt = entry(cqlUpdateRole, m.Role, m.ChatID, m.UserID)
	case errors.Is(err, ErrNotFound):
		stmt = entry(cqlInsertMember, m.ChatID, m.UserID, m.Role, m.JoinedAt)
	default:
		return err
	}
	meta, err := s.userChatMeta(ctx, m.ChatID)
	if err != nil {
		return err
	}
	b := s.sess.NewBatch(gocql.LoggedBatch).WithContext(ctx).DefaultTimestamp(false)
	b.Entries = append(b.Entries, stmt, entry(cqlAddUserChat, append([]any{m.UserID, m.ChatID}, meta...)...))
	if err := s.sess.ExecuteBatch(b); err != nil {
		return fmt.Errorf("cassandra: add member %s/%s: %w", m.ChatID, m.UserID, err)
	}
	return nil
}

// RemoveMember implements Store.
func (s *CassandraStore) RemoveMember(ctx context.Context, chatID, userID string) error {
	if chatID == "" || userID == "" {
		return nil
	}
	b := s.sess.NewBatch(gocql.LoggedBatch).WithContext(ctx).DefaultTimestamp(false)
	b.Entries = append(b.Entries, entry(cqlDeleteMember, chatID, userID), entry(cqlDelUserChat, userID, chatID))
	if err := s.sess.ExecuteBatch(b); err != nil {
		return fmt.Errorf("cassandra: remove member %s/%s: %w", chatID, userID, err)
	}
	return nil
}

// renameChat is Store.RenameChat (cassandra_pending.go delegates to it). The name
// is in the chat's partitions of chats (GetChat) and chat_buckets (chat lists),
// which share the partition key: one mutation sets both.
func (s *CassandraStore) renameChat(ctx context.Context, chatID, name string) error {
	if _, err := s.GetChat(ctx, chatID); err != nil {
		return err
	}
	b := s.sess.NewBatch(gocql.UnloggedBatch).WithContext(ctx).DefaultTimestamp(false)
	b.Entries = append(b.Entries, entry(cqlRenameChat, name, chatID), entry(cqlSetChatName, name, chatID))
	if err := s.sess.ExecuteBatch(b); err != nil {
		return fmt.Errorf("cassandra: rename chat %s: %w", chatID, err)
	}
	return nil
}

// userChatMeta is the copy of chat's metadata a user_chats row carries, as the
// values after user_id and chat_id in cqlAddUserChat; with no chat (yet) they are
// left unset and UserChats looks the chat up.
func (s *CassandraStore) userChatMeta(ctx context.Context, chatID string) ([]any, error) {
	chat, err := s.GetChat(ctx, chatID)
	switch {
	case err == nil:
		return []any{chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt, chat.Encrypted}, nil
	case errors.Is(err, ErrNotFound):
		return []any{gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue}, nil
	}
	return nil, err
}
