package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Retention and deletion on SQLite (lifecycle.go). Expired rows are hidden by every
// read (notExpired) and removed by SweepExpired; deletions run in one transaction
// each, so a reader sees a chat or an account either before or after.

// SetMessageTTL implements Store.
func (s *SQLiteStore) SetMessageTTL(ctx context.Context, chatID string, seconds int64) error {
	res, err := s.w.ExecContext(ctx, `UPDATE chats SET message_ttl = ? WHERE id = ? AND deleted = 0`, seconds, chatID)
	if err != nil {
		return fmt.Errorf("sqlite: message ttl of %s: %w", chatID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ClearHistory implements Store.
func (s *SQLiteStore) ClearHistory(ctx context.Context, chatID, userID string, seq uint64) (uint64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: clear history %s/%s: %w", chatID, userID, err)
	}
	defer tx.Rollback()
	var floor uint64
	if err := tx.QueryRowContext(ctx, `INSERT INTO history_floors (chat_id, user_id, seq) VALUES (?, ?, ?)
		ON CONFLICT (chat_id, user_id) DO UPDATE SET seq = MAX(seq, excluded.seq) RETURNING seq`,
		chatID, userID, seq).Scan(&floor); err != nil {
		return 0, fmt.Errorf("sqlite: clear history %s/%s: %w", chatID, userID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO read_state (chat_id, user_id, delivered, read)
		VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET
		delivered = MAX(delivered, excluded.delivered), read = MAX(read, excluded.read)`,
		chatID, userID, floor, floor); err != nil {
		return 0, fmt.Errorf("sqlite: clear history %s/%s: read state: %w", chatID, userID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: clear history %s/%s: %w", chatID, userID, err)
	}
	return floor, nil
}

// HistoryFloor implements Store.
func (s *SQLiteStore) HistoryFloor(ctx context.Context, chatID, userID string) (uint64, error) {
	var floor uint64
	err := s.rd.historyFloor.QueryRowContext(ctx, chatID, userID).Scan(&floor)
	switch {
	case err == sql.ErrNoRows:
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sqlite: history floor %s/%s: %w", chatID, userID, err)
	}
	return floor, nil
}

// DeleteChat implements Store. The chat's row stays, marked deleted and emptied,
// so its ID is never used again.
func (s *SQLiteStore) DeleteChat(ctx context.Context, chatID string) error {
	return s.inTx(ctx, "delete chat "+chatID, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO chats (id, kind, created_by, created_at) VALUES (?, '', '', 0)`, chatID); err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE chats SET deleted = 1, name = '', last_message = NULL, message_ttl = 0 WHERE id = ?`,
			`DELETE FROM members WHERE chat_id = ?`,
			`DELETE FROM read_state WHERE chat_id = ?`,
			`DELETE FROM mutes WHERE chat_id = ?`,
			`DELETE FROM history_floors WHERE chat_id = ?`,
			`DELETE FROM reactions WHERE chat_id = ?`,
			`DELETE FROM search_fts WHERE rowid IN (SELECT doc_id FROM messages WHERE chat_id = ? AND ` + indexedDocs + `)`,
			`DELETE FROM messages WHERE chat_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, chatID); err != nil {
				return err
			}
		}
		return nil
	})
}

// EraseUser implements Store. Finding the user's messages scans the messages
// table (there is no index by sender: it would cost every append for a rare
// operation); docs/privacy.md gives the figure.
func (s *SQLiteStore) EraseUser(ctx context.Context, userID string) (EraseReport, error) {
	var rep EraseReport
	err := s.inTx(ctx, "erase user "+userID, func(tx *sql.Tx) error {
		// The user's messages' search documents first, while the rows still say whose.
		if _, err := tx.ExecContext(ctx, `DELETE FROM search_fts WHERE rowid IN (SELECT doc_id FROM messages
			WHERE sender_id = ? AND `+indexedDocs+`)`, userID); err != nil {
			return err
		}
		// Reactions on the user's messages, and the user's reactions anywhere.
		if _, err := tx.ExecContext(ctx, `DELETE FROM reactions WHERE user_id = ? OR (chat_id, message_id) IN
			(SELECT chat_id, message_id FROM messages WHERE sender_id = ?)`, userID, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE messages SET content = '', meta = NULL, edited = 0,
			deleted = CASE WHEN message_type IN ('system', 'encrypted_keys', 'edit', 'delete', 'react') THEN deleted ELSE 1 END
			WHERE sender_id = ? AND (content != '' OR meta IS NOT NULL OR (deleted = 0 AND message_type NOT IN ('system', 'encrypted_keys', 'edit', 'delete', 'react')))`, userID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		rep.Messages = int(n)
		// The chat list's copy of a last message the user sent loses its text too.
		if _, err := tx.ExecContext(ctx, `UPDATE chats SET last_message = json_set(json_remove(last_message, '$.content', '$.meta'), '$.deleted', json('true'))
			WHERE id IN (SELECT chat_id FROM messages WHERE sender_id = ?) AND json_extract(last_message, '$.senderId') = ?`, userID, userID); err != nil {
			return err
		}
		if res, err = tx.ExecContext(ctx, `DELETE FROM members WHERE user_id = ?`, userID); err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		rep.Chats = int(n)
		if res, err = tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = ?`, userID); err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		rep.Devices = int(n)
		if res, err = tx.ExecContext(ctx, `DELETE FROM profiles WHERE user_id = ?`, userID); err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		rep.Profile = n > 0
		for _, q := range []string{
			`DELETE FROM blocks WHERE blocker = ?`,
			`DELETE FROM device_keys WHERE user_id = ?`,
			`DELETE FROM one_time_keys WHERE user_id = ?`,
			`DELETE FROM invitations WHERE user_id = ?`,
			`DELETE FROM read_state WHERE user_id = ?`,
			`DELETE FROM mutes WHERE user_id = ?`,
			`DELETE FROM history_floors WHERE user_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return err
			}
		}
		return nil
	})
	return rep, err
}

// SweepExpired implements Store: it walks messages_by_expiry for the oldest
// expired rows, at most limit (1..10000; 0 means 1000) in one short transaction,
// so the persister's writes wait for at most one small batch.
func (s *SQLiteStore) SweepExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 10000)
	var n int
	err := s.inTx(ctx, "sweep expired", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS sweep (chat_id TEXT, seq INTEGER, message_id TEXT)`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM temp.sweep`); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO temp.sweep SELECT chat_id, seq, message_id FROM messages INDEXED BY messages_by_expiry
			WHERE expires_at > 0 AND expires_at <= ? ORDER BY expires_at LIMIT ?`, now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		c, _ := res.RowsAffected()
		n = int(c)
		if n == 0 {
			return nil
		}
		for _, q := range []string{
			`DELETE FROM search_fts WHERE rowid IN (SELECT doc_id FROM messages WHERE (chat_id, seq) IN (SELECT chat_id, seq FROM temp.sweep)
				AND ` + indexedDocs + `)`,
			`DELETE FROM reactions WHERE (chat_id, message_id) IN (SELECT chat_id, message_id FROM temp.sweep)`,
			`DELETE FROM messages WHERE (chat_id, seq) IN (SELECT chat_id, seq FROM temp.sweep)`,
			// An expired last message leaves the chat list (the list hides it in any case).
			`UPDATE chats SET last_message = NULL WHERE id IN (SELECT DISTINCT chat_id FROM temp.sweep)
				AND last_msg_seq IN (SELECT seq FROM temp.sweep w WHERE w.chat_id = chats.id)`,
			`DELETE FROM temp.sweep`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// inTx runs f in one write transaction; what names the operation in errors.
func (s *SQLiteStore) inTx(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return nil
}
