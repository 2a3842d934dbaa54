package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"time"
)

// RecipientStore on SQLite: one query per sqliteInChunk users.
//
// Each query is one of recipientSizes statements prepared at open (1, 2, 4 … 512
// users), the chunk's last user repeated to fill it: an IN list matches a user
// once however often it names it, so the answers are those of a list of exactly
// the chunk. Building and parsing a statement of up to 500 placeholders on every
// call cost ≈ 0.27 ms a call in SQLite's parser, 13 % of BenchmarkSQLiteRecipientReads'
// CPU (docs/performance.md, "Large groups", "Third pass").

// recipientSizes is how many prepared statements each recipient read has: one per
// power of two up to the first at or above sqliteInChunk.
const recipientSizes = 10 // 1, 2, 4, ..., 512

// The largest statement holds a whole chunk (the constant overflows otherwise).
const _ = uint(1<<(recipientSizes-1) - sqliteInChunk)

// paddedSize returns the index of the prepared statement for n keys (n >= 1) among
// statements of 1, 2, 4 … keys: the statement of 1<<size keys. The recipient reads
// and MessageSeqs (store_sqlite_ids.go) both pad to it.
func paddedSize(n int) int { return bits.Len(uint(n - 1)) }

// recipientCap is how many users the largest statement a read of n users runs names.
func recipientCap(n int) int { return 1 << paddedSize(min(max(n, 1), sqliteInChunk)) }

func readStatesSQL(n int) string {
	return `SELECT user_id, delivered, read FROM read_state
			WHERE chat_id = ? AND user_id IN (` + placeholders(n) + `)`
}

func unreadTotalsSQL(n int) string {
	return `SELECT m.user_id, COALESCE(SUM(` + unreadSQL("c.last_seq", "m.chat_id", "COALESCE(r.read, 0)", "m.user_id") + `), 0)
			FROM members m JOIN chats c ON c.id = m.chat_id
			LEFT JOIN read_state r ON r.chat_id = m.chat_id AND r.user_id = m.user_id
			WHERE m.user_id IN (` + placeholders(n) + `) AND m.chat_id != ? GROUP BY m.user_id`
}

func usersDevicesSQL(n int) string {
	return `SELECT user_id, device_id, platform, provider, token, updated_at FROM devices
			WHERE user_id IN (` + placeholders(n) + `) ORDER BY user_id, device_id`
}

// appendPadded appends chunk to args, its last user repeated up to the size of
// chunk's prepared statement, and returns that statement's index.
func appendPadded(args []any, chunk []string) ([]any, int) {
	size := paddedSize(len(chunk))
	for i := range 1 << size {
		args = append(args, chunk[min(i, len(chunk)-1)])
	}
	return args, size
}

// ReadStates implements RecipientStore: primary-key lookups within chat.
func (s *SQLiteStore) ReadStates(ctx context.Context, chatID string, userIDs []string) (map[string]ReadState, error) {
	out := make(map[string]ReadState, len(userIDs))
	args := make([]any, 0, 1+recipientCap(len(userIDs)))
	for chunk := range chunks(userIDs, sqliteInChunk) {
		var size int
		args, size = appendPadded(append(args[:0], chatID), chunk)
		if err := readStatesQuery(ctx, s.rd.readStates[size], chatID, args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readStatesQuery(ctx context.Context, st *sql.Stmt, chatID string, args []any, out map[string]ReadState) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: read states in %s: %w", chatID, err)
	}
	defer rows.Close()
	for rows.Next() {
		rs := ReadState{ChatID: chatID}
		if err := rows.Scan(&rs.UserID, &rs.Delivered, &rs.Read); err != nil {
			return fmt.Errorf("sqlite: read states in %s: %w", chatID, err)
		}
		out[rs.UserID] = rs
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: read states in %s: %w", chatID, err)
	}
	return nil
}

// UnreadTotals implements RecipientStore: UnreadTotal's query grouped by user.
func (s *SQLiteStore) UnreadTotals(ctx context.Context, userIDs []string, exceptChatID string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(userIDs))
	args := make([]any, 0, recipientCap(len(userIDs))+1)
	for chunk := range chunks(userIDs, sqliteInChunk) {
		var size int
		args, size = appendPadded(args[:0], chunk)
		if err := unreadTotalsQuery(ctx, s.rd.unreadTotals[size], append(args, exceptChatID), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func unreadTotalsQuery(ctx context.Context, st *sql.Stmt, args []any, out map[string]uint64) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: unread totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid string
		var n int64
		if err := rows.Scan(&uid, &n); err != nil {
			return fmt.Errorf("sqlite: unread totals: %w", err)
		}
		if n > 0 {
			out[uid] = uint64(n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: unread totals: %w", err)
	}
	return nil
}

// UsersDevices implements RecipientStore: a range of the primary key per user.
func (s *SQLiteStore) UsersDevices(ctx context.Context, userIDs []string) (map[string][]Device, error) {
	out := make(map[string][]Device)
	args := make([]any, 0, recipientCap(len(userIDs)))
	for chunk := range chunks(userIDs, sqliteInChunk) {
		var size int
		args, size = appendPadded(args[:0], chunk)
		if err := usersDevicesQuery(ctx, s.rd.usersDevices[size], args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func usersDevicesQuery(ctx context.Context, st *sql.Stmt, args []any, out map[string][]Device) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: devices of users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d Device
		var at int64
		if err := rows.Scan(&d.UserID, &d.DeviceID, &d.Platform, &d.Provider, &d.Token, &at); err != nil {
			return fmt.Errorf("sqlite: devices of users: %w", err)
		}
		d.UpdatedAt = time.UnixMilli(at).UTC()
		out[d.UserID] = append(out[d.UserID], d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: devices of users: %w", err)
	}
	return nil
}

// Recipient implements RecipientStore in one statement: four single reads cost a
// notification four trips through database/sql and four read transactions, each
// starting from an empty page cache after a commit (docs/performance.md).
func (s *SQLiteStore) Recipient(ctx context.Context, chatID, userID string) (Recipient, error) {
	r := Recipient{Mute: Mute{ChatID: chatID, UserID: userID}, Read: ReadState{ChatID: chatID, UserID: userID}}
	var id, kind, name, createdBy sql.NullString
	var createdAt, ttl, until sql.NullInt64
	var encrypted sql.NullBool
	if err := s.rd.recipient.QueryRowContext(ctx, chatID, userID).Scan(&id, &kind, &name, &createdBy, &createdAt, &ttl, &encrypted,
		&r.Member, &until, &r.Read.Delivered, &r.Read.Read); err != nil {
		return Recipient{}, fmt.Errorf("sqlite: recipient %s/%s: %w", chatID, userID, err)
	}
	if id.Valid {
		r.Chat = Chat{ID: id.String, Kind: kind.String, Name: name.String, CreatedBy: createdBy.String,
			CreatedAt: time.UnixMilli(createdAt.Int64).UTC(), MessageTTL: ttl.Int64, Encrypted: encrypted.Bool}
	}
	if until.Valid {
		r.Mute.muteUntil(until.Int64)
	}
	return r, nil
}
