package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

var _ MemberStore = (*SQLiteStore)(nil)

// sqliteInChunk bounds the parameters of one IN (...) list, well under SQLite's
// limit of 32,766 bound parameters.
const sqliteInChunk = 500

// AddMembers implements MemberStore in one transaction (one fsync for the lot).
func (s *SQLiteStore) AddMembers(ctx context.Context, chatID string, ms []Member) error {
	if len(ms) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: add members to %s: %w", chatID, err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO members (chat_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (chat_id, user_id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("sqlite: add members to %s: %w", chatID, err)
	}
	defer st.Close()
	for _, m := range ms {
		if _, err := st.ExecContext(ctx, chatID, m.UserID, m.Role, m.JoinedAt.UnixMilli()); err != nil {
			return fmt.Errorf("sqlite: add member %s/%s: %w", chatID, m.UserID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: add members to %s: %w", chatID, err)
	}
	return nil
}

// RemoveMembers implements MemberStore in one transaction.
func (s *SQLiteStore) RemoveMembers(ctx context.Context, chatID string, userIDs []string) error {
	if len(userIDs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: remove members from %s: %w", chatID, err)
	}
	defer tx.Rollback()
	for chunk := range chunks(userIDs, sqliteInChunk) {
		args := append([]any{chatID}, anys(chunk)...)
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE chat_id = ? AND user_id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
			return fmt.Errorf("sqlite: remove members from %s: %w", chatID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: remove members from %s: %w", chatID, err)
	}
	return nil
}

// MembersAmong implements MemberStore.
func (s *SQLiteStore) MembersAmong(ctx context.Context, chatID string, userIDs []string) ([]Member, error) {
	var out []Member
	for chunk := range chunks(userIDs, sqliteInChunk) {
		args := append([]any{chatID}, anys(chunk)...)
		ms, err := s.queryMembers(ctx, `SELECT user_id, role, joined_at FROM members WHERE chat_id = ? AND user_id IN (`+
			placeholders(len(chunk))+`) ORDER BY user_id`, chatID, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	if len(userIDs) > sqliteInChunk {
		sortMembers(out)
	}
	return out, nil
}

// MembersPage implements MemberStore: a range scan of the primary key.
func (s *SQLiteStore) MembersPage(ctx context.Context, chatID, after string, limit int) ([]Member, error) {
	rows, err := s.rd.membersPage.QueryContext(ctx, chatID, after, pageLimit(limit))
	return scanMembers(rows, err, chatID)
}

// MemberCount implements MemberStore.
func (s *SQLiteStore) MemberCount(ctx context.Context, chatID string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE chat_id = ?`, chatID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: member count of %s: %w", chatID, err)
	}
	return n, nil
}

// ChatMutes implements MemberStore.
func (s *SQLiteStore) ChatMutes(ctx context.Context, chatID string) ([]Mute, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user_id, until_ms FROM mutes WHERE chat_id = ? ORDER BY user_id`, chatID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: mutes of %s: %w", chatID, err)
	}
	defer rows.Close()
	var out []Mute
	for rows.Next() {
		m := Mute{ChatID: chatID, Muted: true}
		var until int64
		if err := rows.Scan(&m.UserID, &until); err != nil {
			return nil, fmt.Errorf("sqlite: mutes of %s: %w", chatID, err)
		}
		if until != 0 {
			m.Until = time.UnixMilli(until).UTC()
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: mutes of %s: %w", chatID, err)
	}
	return out, nil
}

// queryMembers runs a query whose rows are (user_id, role, joined_at) of chat.
func (s *SQLiteStore) queryMembers(ctx context.Context, q, chatID string, args ...any) ([]Member, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	return scanMembers(rows, err, chatID)
}

// scanMembers reads the (user_id, role, joined_at) rows of a members query of chatID
// and closes them; err is the query's.
func scanMembers(rows *sql.Rows, err error, chatID string) ([]Member, error) {
	if err != nil {
		return nil, fmt.Errorf("sqlite: members of %s: %w", chatID, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		m := Member{ChatID: chatID}
		var at int64
		if err := rows.Scan(&m.UserID, &m.Role, &at); err != nil {
			return nil, fmt.Errorf("sqlite: members of %s: %w", chatID, err)
		}
		m.Role = internRole(m.Role)
		m.JoinedAt = time.UnixMilli(at).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: members of %s: %w", chatID, err)
	}
	return out, nil
}
