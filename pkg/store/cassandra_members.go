package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
)

var _ MemberStore = (*CassandraStore)(nil)

// Bulk membership on Cassandra. A chat's members are rows of its one partition of
// chats (clustered by user ID, so a page is a range read), and each member has a row
// in their own partition of user_chats. A bulk add or removal writes the chat's rows
// in single-partition unlogged batches of at most memberBatchRows (one mutation
// each) and the user_chats rows one statement each, up to WriteConcurrency at once.
// Membership writes take the coordinator's clock, as AddMember does.
const (
	memberBatchRows = 100
	// memberInChunk bounds one IN (...) read of MembersAmong.
	memberInChunk = 100
)

const (
	cqlMembersAmong = `SELECT user_id, role, joined_at FROM chats WHERE chat_id = ? AND user_id IN ?`
	cqlMembersPage  = `SELECT user_id, role, joined_at FROM chats WHERE chat_id = ? AND user_id > ? LIMIT ?`
	cqlMemberRoles  = `SELECT user_id, role FROM chats WHERE chat_id = ?`
	cqlChatMutes    = `SELECT user_id, until FROM mutes WHERE chat_id = ?`
)

// AddMembers implements MemberStore. Existing members are read first (they are left
// as they are); for the others the user_chats rows are written before the chat's
// member rows, so that a failure part way leaves at worst user_chats rows without
// a membership (which UserChats ignores) that a retry, seeing no member, completes.
func (s *CassandraStore) AddMembers(ctx context.Context, chatID string, ms []Member) error {
	if chatID == "" {
		return errors.New("cassandra: add members: empty chat ID")
	}
	if len(ms) == 0 {
		return nil
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.UserID
	}
	existing, err := s.MembersAmong(ctx, chatID, names)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(existing))
	for _, m := range existing {
		have[m.UserID] = true
	}
	meta, err := s.userChatMeta(ctx, chatID)
	if err != nil {
		return err
	}
	var users, rows []writeOp
	var batch []gocql.BatchEntry
	for _, m := range ms {
		if have[m.UserID] || m.UserID == "" {
			continue
		}
		have[m.UserID] = true // a name given twice is written once
		users = append(users, writeOp{what: "user_chats row of " + m.UserID, chat: chatID, serverTime: true,
			entries: []gocql.BatchEntry{entry(cqlAddUserChat, append([]any{m.UserID, chatID}, meta...)...)}})
		batch = append(batch, entry(cqlInsertMember, chatID, m.UserID, m.Role, m.JoinedAt))
		if len(batch) == memberBatchRows {
			rows = append(rows, writeOp{what: "member rows", chat: chatID, serverTime: true, entries: batch})
			batch = nil
		}
	}
	if len(batch) > 0 {
		rows = append(rows, writeOp{what: "member rows", chat: chatID, serverTime: true, entries: batch})
	}
	if err := s.run(ctx, users); err != nil {
		return fmt.Errorf("cassandra: add members to %s: %w", chatID, err)
	}
	if err := s.run(ctx, rows); err != nil {
		return fmt.Errorf("cassandra: add members to %s: %w", chatID, err)
	}
	return nil
}

// RemoveMembers implements MemberStore.
func (s *CassandraStore) RemoveMembers(ctx context.Context, chatID string, userIDs []string) error {
	if chatID == "" || len(userIDs) == 0 {
		return nil
	}
	ops := make([]writeOp, 0, len(userIDs)+len(userIDs)/memberBatchRows+1)
	var batch []gocql.BatchEntry
	for _, u := range userIDs {
		if u == "" {
			continue
		}
		ops = append(ops, writeOp{what: "user_chats row of " + u, chat: chatID, serverTime: true,
			entries: []gocql.BatchEntry{entry(cqlDelUserChat, u, chatID)}})
		batch = append(batch, entry(cqlDeleteMember, chatID, u))
		if len(batch) == memberBatchRows {
			ops = append(ops, writeOp{what: "member rows", chat: chatID, serverTime: true, entries: batch})
			batch = nil
		}
	}
	if len(batch) > 0 {
		ops = append(ops, writeOp{what: "member rows", chat: chatID, serverTime: true, entries: batch})
	}
	if err := s.run(ctx, ops); err != nil {
		return fmt.Errorf("cassandra: remove members from %s: %w", chatID, err)
	}
	return nil
}

// MembersAmong implements MemberStore: IN reads of at most memberInChunk rows of
// the chat's partition.
func (s *CassandraStore) MembersAmong(ctx context.Context, chatID string, userIDs []string) ([]Member, error) {
	if chatID == "" || len(userIDs) == 0 {
		return nil, nil
	}
	var out []Member
	for chunk := range chunks(userIDs, memberInChunk) {
		ms, err := s.scanMembers(ctx, s.sess.Query(cqlMembersAmong, chatID, chunk), chatID)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	sortMembers(out)
	return out, nil
}

// MembersPage implements MemberStore: one range read of the chat's partition.
func (s *CassandraStore) MembersPage(ctx context.Context, chatID, after string, limit int) ([]Member, error) {
	if chatID == "" {
		return nil, nil
	}
	return s.scanMembers(ctx, s.sess.Query(cqlMembersPage, chatID, after, pageLimit(limit)), chatID)
}

// memberCountPage is the page size of MemberCount's read.
const memberCountPage = 5000

// MemberCount implements MemberStore. It reads the user IDs of the chat's partition
// in pages of memberCountPage, counting them here: a COUNT(*) aggregates the whole
// partition within one request's timeout, which a 100,000-member chat on a busy
// node does not meet. Cost: one request per 5,000 members.
func (s *CassandraStore) MemberCount(ctx context.Context, chatID string) (int, error) {
	if chatID == "" {
		return 0, nil
	}
	iter := s.sess.Query(cqlMemberRoles, chatID).WithContext(ctx).Idempotent(true).PageSize(memberCountPage).Iter()
	n := 0
	var uid, role string
	for iter.Scan(&uid, &role) {
		if uid != "" && role != "" {
			n++
		}
	}
	if err := iter.Close(); err != nil {
		return 0, fmt.Errorf("cassandra: member count of %s: %w", chatID, err)
	}
	return n, nil
}

// ChatMutes implements MemberStore: one partition of mutes.
func (s *CassandraStore) ChatMutes(ctx context.Context, chatID string) ([]Mute, error) {
	if chatID == "" {
		return nil, nil
	}
	iter := s.sess.Query(cqlChatMutes, chatID).WithContext(ctx).Idempotent(true).Iter()
	var out []Mute
	for {
		m := Mute{ChatID: chatID, Muted: true}
		var until *time.Time
		if !iter.Scan(&m.UserID, &until) {
			break
		}
		if until != nil {
			m.Until = until.UTC()
		}
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: mutes of %s: %w", chatID, err)
	}
	return out, nil
}

// scanMembers runs q, a query of (user_id, role, joined_at) rows of chat.
func (s *CassandraStore) scanMembers(ctx context.Context, q *gocql.Query, chatID string) ([]Member, error) {
	iter := q.WithContext(ctx).Idempotent(true).Iter()
	var out []Member
	for {
		m := Member{ChatID: chatID}
		if !iter.Scan(&m.UserID, &m.Role, &m.JoinedAt) {
			break
		}
		if m.UserID == "" || m.Role == "" {
			continue // the chat's static row
		}
		m.Role = internRole(m.Role)
		m.JoinedAt = m.JoinedAt.UTC()
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: members of %s: %w", chatID, err)
	}
	return out, nil
}
