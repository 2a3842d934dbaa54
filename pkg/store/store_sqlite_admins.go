package store

import (
	"context"
	"fmt"
)

// ChatAdmins implements AdminStore: a range of the partial index members_admins.
func (s *SQLiteStore) ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user_id FROM members INDEXED BY members_admins
		WHERE chat_id = ? AND role = 'admin' ORDER BY user_id LIMIT ?`, chatID, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("sqlite: admins of %s: %w", chatID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var uid string
		if err := rows.Scan(&uid); err != nil {
			return nil, fmt.Errorf("sqlite: admins of %s: %w", chatID, err)
		}
		out = append(out, uid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: admins of %s: %w", chatID, err)
	}
	return out, nil
}
