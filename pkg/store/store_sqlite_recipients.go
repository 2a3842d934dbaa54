package store

import (
	"context"
	"fmt"
	"time"
)

// RecipientStore on SQLite: one query per sqliteInChunk users.

// ReadStates implements RecipientStore: primary-key lookups within chat.
func (s *SQLiteStore) ReadStates(ctx context.Context, chatID string, userIDs []string) (map[string]ReadState, error) {
	out := make(map[string]ReadState, len(userIDs))
	for chunk := range chunks(userIDs, sqliteInChunk) {
		args := append([]any{chatID}, anys(chunk)...)
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, delivered, read FROM read_state
			WHERE chat_id = ? AND user_id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: read states in %s: %w", chatID, err)
		}
		for rows.Next() {
			rs := ReadState{ChatID: chatID}
			if err := rows.Scan(&rs.UserID, &rs.Delivered, &rs.Read); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: read states in %s: %w", chatID, err)
			}
			out[rs.UserID] = rs
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: read states in %s: %w", chatID, err)
		}
	}
	return out, nil
}

// UnreadTotals implements RecipientStore: UnreadTotal's query grouped by user.
func (s *SQLiteStore) UnreadTotals(ctx context.Context, userIDs []string, exceptChatID string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(userIDs))
	for chunk := range chunks(userIDs, sqliteInChunk) {
		args := append(anys(chunk), exceptChatID)
		rows, err := s.r.QueryContext(ctx, `SELECT m.user_id, COALESCE(SUM(`+unreadSQL("c.last_seq", "m.chat_id", "COALESCE(r.read, 0)", "m.user_id")+`), 0)
			FROM members m JOIN chats c ON c.id = m.chat_id
			LEFT JOIN read_state r ON r.chat_id = m.chat_id AND r.user_id = m.user_id
			WHERE m.user_id IN (`+placeholders(len(chunk))+`) AND m.chat_id != ? GROUP BY m.user_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: unread totals: %w", err)
		}
		for rows.Next() {
			var uid string
			var n int64
			if err := rows.Scan(&uid, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: unread totals: %w", err)
			}
			if n > 0 {
				out[uid] = uint64(n)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: unread totals: %w", err)
		}
	}
	return out, nil
}

// UsersDevices implements RecipientStore: a range of the primary key per user.
func (s *SQLiteStore) UsersDevices(ctx context.Context, userIDs []string) (map[string][]Device, error) {
	out := make(map[string][]Device)
	for chunk := range chunks(userIDs, sqliteInChunk) {
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, device_id, platform, provider, token, updated_at FROM devices
			WHERE user_id IN (`+placeholders(len(chunk))+`) ORDER BY user_id, device_id`, anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: devices of users: %w", err)
		}
		for rows.Next() {
			var d Device
			var at int64
			if err := rows.Scan(&d.UserID, &d.DeviceID, &d.Platform, &d.Provider, &d.Token, &at); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: devices of users: %w", err)
			}
			d.UpdatedAt = time.UnixMilli(at).UTC()
			out[d.UserID] = append(out[d.UserID], d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: devices of users: %w", err)
		}
	}
	return out, nil
}
