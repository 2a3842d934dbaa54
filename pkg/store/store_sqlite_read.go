package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// readStmts are the hot read statements, prepared once on the read pool when the
// store opens. database/sql prepares a statement on each pool connection the first
// time it runs there and keeps it, so a read no longer parses its SQL (sqlite3Prepare
// was 9–10 % of server CPU in a resume storm); a transaction binds them with
// Tx.StmtContext, which reuses the connection's prepared copy.
type readStmts struct {
	historyNewest, historyBefore, historyAfter *sql.Stmt
	lastSeq, messageSeq                        *sql.Stmt
	getChat, members, getMember                *sql.Stmt
	membersPage                                *sql.Stmt // MembersPage: the notifier's member cache misses, member listings
	userChats, userChatsAfter                  *sql.Stmt
	unreadTotal                                *sql.Stmt
	unreadBetween                              *sql.Stmt // UnreadBetween: a notification's count
	getReadState, getMute                      *sql.Stmt
	blocks                                     *sql.Stmt // a blocker's list (the block caches' misses)
	devices                                    *sql.Stmt // a user's push devices (each notification reads them)
	recipient                                  *sql.Stmt // Recipient: chat, membership, mute and read state in one
	historyFloor                               *sql.Stmt // a user's cleared history (every history page reads it)
	// messageSeqs[i] is MessageSeqs' query for 1<<i keys (store_sqlite_ids.go).
	messageSeqs [messageSeqsSizes]*sql.Stmt
	// readStates[i], unreadTotals[i] and usersDevices[i] are the recipient reads
	// for 1<<i users (store_sqlite_recipients.go).
	readStates, unreadTotals, usersDevices [recipientSizes]*sql.Stmt
}

// userChatsSQL lists a user's chats (see SQLiteStore.userChats); cond is an extra
// condition whose arguments come after the user ID. The page is chosen first, over
// narrow rows (chat, read, activity), and only its chats are joined with their row
// and last message: sorting a user's thousand chats with their last_message blobs
// and looking up every last message cost several times more.
//
// The unread count is counted for the page's chats only (unreadSQL).
func userChatsSQL(cond string) string {
	return `SELECT c.id, c.kind, c.name, c.created_by, c.created_at, c.encrypted,
			c.last_seq, c.last_message, p.read, p.act,
			lm.seq IS NOT NULL, COALESCE(lm.content, ''), lm.meta, COALESCE(lm.edited, 0), COALESCE(lm.deleted, 0),
			` + unreadSQL("c.last_seq", "p.id", "p.read", "p.uid") + `
		FROM (SELECT m.chat_id AS id, m.user_id AS uid, COALESCE(r.read, 0) AS read, MAX(c.last_ts, c.created_at) AS act
			FROM members m JOIN chats c ON c.id = m.chat_id
			LEFT JOIN read_state r ON r.chat_id = m.chat_id AND r.user_id = m.user_id
			WHERE m.user_id = ? ` + cond + `
			ORDER BY act DESC, c.id LIMIT ? OFFSET ?) p
		JOIN chats c ON c.id = p.id
		LEFT JOIN messages lm ON lm.chat_id = c.id AND lm.seq = c.last_msg_seq
		ORDER BY p.act DESC, p.id`
}

// unreadSQL is the expression of a chat's unread count (ChatSummary.Unread) for
// user: the messages after the read watermark that a person reads (Countable: not
// system events, key distributions, edits, deletes or reactions, not deleted, not
// the user's own), at most
// MaxUnread. It walks the primary key from the watermark, so it costs what is
// unread, never what was read; a chat whose last seq is not above the watermark
// costs nothing. The append path pays nothing for it.
func unreadSQL(lastSeq, chat, read, user string) string {
	return fmt.Sprintf(`CASE WHEN %[1]s > %[3]s THEN MIN((SELECT COUNT(*) FROM messages u
			WHERE u.chat_id = %[2]s AND u.seq > %[3]s AND `+countableSQL("u", "%[4]s")+`), %[5]d) ELSE 0 END`,
		lastSeq, chat, read, user, MaxUnread)
}

// countableSQL is the condition that message m (a table alias) counts as unread for
// user: Countable, and not expired (history does not return an expired message).
func countableSQL(m, user string) string {
	return fmt.Sprintf(`%[1]s.sender_id != %[2]s AND %[1]s.deleted = 0
			AND (%[1]s.expires_at = 0 OR %[1]s.expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER))
			AND %[1]s.message_type NOT IN ('system', 'encrypted_keys', 'edit', 'delete', 'react')`, m, user)
}

// queries pairs each statement with its SQL (the plan test reads them too).
func (r *readStmts) queries() []struct {
	st **sql.Stmt
	q  string
} {
	qs := []struct {
		st **sql.Stmt
		q  string
	}{
		{&r.historyNewest, `SELECT ` + msgCols + ` FROM messages WHERE chat_id = ? AND ` + notExpired + ` ORDER BY seq DESC LIMIT ?`},
		{&r.historyBefore, `SELECT ` + msgCols + ` FROM messages WHERE chat_id = ? AND seq < ? AND ` + notExpired + ` ORDER BY seq DESC LIMIT ?`},
		{&r.historyAfter, `SELECT ` + msgCols + ` FROM messages WHERE chat_id = ? AND seq > ? AND ` + notExpired + ` ORDER BY seq ASC LIMIT ?`},
		// The chat row's last seq too: the newest messages may have expired and been
		// swept, and a seq is never used twice.
		{&r.lastSeq, `SELECT MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE chat_id = ?1), 0),
			COALESCE((SELECT last_seq FROM chats WHERE id = ?1), 0))`},
		{&r.messageSeq, `SELECT seq FROM messages WHERE chat_id = ? AND message_id = ? ORDER BY seq LIMIT 1`},
		{&r.getChat, `SELECT id, kind, name, created_by, created_at, message_ttl, encrypted FROM chats WHERE id = ? AND deleted = 0`},
		{&r.members, `SELECT chat_id, user_id, role, joined_at FROM members WHERE chat_id = ? ORDER BY user_id`},
		{&r.getMember, `SELECT role, joined_at FROM members WHERE chat_id = ? AND user_id = ?`},
		{&r.membersPage, `SELECT user_id, role, joined_at FROM members WHERE chat_id = ? AND user_id > ?
			ORDER BY user_id LIMIT ?`},
		{&r.userChats, userChatsSQL("")},
		{&r.userChatsAfter, userChatsSQL(`AND (MAX(c.last_ts, c.created_at) < ? OR (MAX(c.last_ts, c.created_at) = ? AND c.id > ?))`)},
		// Unread as userChats computes it, summed without sorting, the last message or
		// its JSON: one pass over the user's memberships with two primary-key lookups
		// each, and a count of what is unread where the last seq is past the watermark.
		{&r.unreadTotal, `SELECT COALESCE(SUM(` + unreadSQL("c.last_seq", "m.chat_id", "COALESCE(r.read, 0)", "m.user_id") + `), 0)
			FROM members m JOIN chats c ON c.id = m.chat_id
			LEFT JOIN read_state r ON r.chat_id = m.chat_id AND r.user_id = m.user_id
			WHERE m.user_id = ? AND m.chat_id != ?`},
		// At most MaxUnread rows that count: the walk along the primary key stops there.
		{&r.unreadBetween, `SELECT COUNT(*) FROM (SELECT 1 FROM messages u
			WHERE u.chat_id = ?1 AND u.seq > ?2 AND u.seq <= ?3 AND ` + countableSQL("u", "?4") + ` LIMIT ` + strconv.Itoa(MaxUnread) + `)`},
		{&r.getReadState, `SELECT delivered, read FROM read_state WHERE chat_id = ? AND user_id = ?`},
		{&r.getMute, `SELECT until_ms FROM mutes WHERE chat_id = ? AND user_id = ?`},
		{&r.recipient, `SELECT c.id, c.kind, c.name, c.created_by, c.created_at, c.message_ttl, c.encrypted,
			m.user_id IS NOT NULL, mu.until_ms, COALESCE(rs.delivered, 0), COALESCE(rs.read, 0)
			FROM (SELECT 1) AS one
			LEFT JOIN chats c ON c.id = ?1 AND c.deleted = 0
			LEFT JOIN members m ON m.chat_id = ?1 AND m.user_id = ?2
			LEFT JOIN mutes mu ON mu.chat_id = ?1 AND mu.user_id = ?2
			LEFT JOIN read_state rs ON rs.chat_id = ?1 AND rs.user_id = ?2`},
		{&r.historyFloor, `SELECT seq FROM history_floors WHERE chat_id = ? AND user_id = ?`},
		{&r.devices, `SELECT device_id, platform, provider, token, updated_at FROM devices WHERE user_id = ? ORDER BY device_id`},
		{&r.blocks, `SELECT blocked, created_at FROM blocks WHERE blocker = ? ORDER BY blocked`},
	}
	for i := range r.messageSeqs {
		qs = append(qs, struct {
			st **sql.Stmt
			q  string
		}{&r.messageSeqs[i], messageSeqsSQL(1 << i)})
	}
	for i := range recipientSizes {
		qs = append(qs, []struct {
			st **sql.Stmt
			q  string
		}{
			{&r.readStates[i], readStatesSQL(1 << i)},
			{&r.unreadTotals[i], unreadTotalsSQL(1 << i)},
			{&r.usersDevices[i], usersDevicesSQL(1 << i)},
		}...)
	}
	return qs
}

func (s *SQLiteStore) prepareRead(ctx context.Context) error {
	for _, p := range s.rd.queries() {
		st, err := s.r.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.st = st
	}
	return nil
}

func (r *readStmts) close() error {
	var errs []error
	for _, p := range r.queries() {
		if *p.st != nil {
			errs = append(errs, (*p.st).Close())
		}
	}
	return errors.Join(errs...)
}

// UnreadBetween implements Store.
func (s *SQLiteStore) UnreadBetween(ctx context.Context, chatID, userID string, after, upTo uint64) (uint64, error) {
	if upTo <= after {
		return 0, nil
	}
	var n int64
	if err := s.rd.unreadBetween.QueryRowContext(ctx, chatID, after, upTo, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: unread of %s in %s: %w", userID, chatID, err)
	}
	return uint64(max(n, 0)), nil
}

// UnreadTotal implements Store.
func (s *SQLiteStore) UnreadTotal(ctx context.Context, userID, exceptChatID string) (uint64, error) {
	var n int64
	if err := s.rd.unreadTotal.QueryRowContext(ctx, userID, exceptChatID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: unread of %s: %w", userID, err)
	}
	return uint64(max(n, 0)), nil
}
