package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

var _ PeopleStore = (*SQLiteStore)(nil)

// sqliteMaxArgs bounds the parameters of one IN (...) list, well under SQLite's
// limit (32766).
const sqliteMaxArgs = 500

// PutProfile implements PeopleStore.
func (s *SQLiteStore) PutProfile(ctx context.Context, p Profile) error {
	if err := ValidateProfile(p); err != nil {
		return err
	}
	at := p.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO profiles (user_id, display_name, avatar, group_adds, updated_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
		avatar = excluded.avatar, group_adds = excluded.group_adds, updated_at = excluded.updated_at`,
		p.UserID, p.DisplayName, p.Avatar, p.GroupAdds, at.UnixMilli()); err != nil {
		return fmt.Errorf("sqlite: put profile of %s: %w", p.UserID, err)
	}
	return nil
}

// Profiles implements PeopleStore.
func (s *SQLiteStore) Profiles(ctx context.Context, userIDs []string) ([]Profile, error) {
	if len(userIDs) > MaxProfileBatch {
		return nil, fmt.Errorf("sqlite: profiles: %d users, the limit is %d", len(userIDs), MaxProfileBatch)
	}
	var out []Profile
	err := inChunks(dedupe(userIDs), func(chunk []string) error {
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, display_name, avatar, group_adds, updated_at FROM profiles
			WHERE user_id IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p Profile
			var at int64
			if err := rows.Scan(&p.UserID, &p.DisplayName, &p.Avatar, &p.GroupAdds, &at); err != nil {
				return err
			}
			p.UpdatedAt = time.UnixMilli(at).UTC()
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: profiles: %w", err)
	}
	return out, nil
}

// Block implements PeopleStore in one transaction.
func (s *SQLiteStore) Block(ctx context.Context, b Block) (bool, error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("sqlite: block %s by %s: %w", b.Blocked, b.Blocker, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var exists, n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM blocks WHERE blocker = ? AND blocked = ?`, b.Blocker, b.Blocked).Scan(&exists); err != nil {
		return fail(err)
	}
	if exists > 0 {
		return false, nil
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM blocks WHERE blocker = ?`, b.Blocker).Scan(&n); err != nil {
		return fail(err)
	}
	if n >= MaxBlocks {
		return false, ErrTooManyBlocks
	}
	at := b.CreatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO blocks (blocker, blocked, created_at) VALUES (?, ?, ?)`,
		b.Blocker, b.Blocked, at.UnixMilli()); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return true, nil
}

// Unblock implements PeopleStore.
func (s *SQLiteStore) Unblock(ctx context.Context, blocker, blocked string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM blocks WHERE blocker = ? AND blocked = ?`, blocker, blocked)
	if err != nil {
		return false, fmt.Errorf("sqlite: unblock %s by %s: %w", blocked, blocker, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: unblock %s by %s: %w", blocked, blocker, err)
	}
	return n > 0, nil
}

// Blocks implements PeopleStore.
func (s *SQLiteStore) Blocks(ctx context.Context, blocker string) ([]Block, error) {
	rows, err := s.rd.blocks.QueryContext(ctx, blocker)
	if err != nil {
		return nil, fmt.Errorf("sqlite: blocks of %s: %w", blocker, err)
	}
	defer rows.Close()
	var out []Block
	for rows.Next() {
		b := Block{Blocker: blocker}
		var at int64
		if err := rows.Scan(&b.Blocked, &at); err != nil {
			return nil, fmt.Errorf("sqlite: blocks of %s: %w", blocker, err)
		}
		b.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: blocks of %s: %w", blocker, err)
	}
	return out, nil
}

// Blockers implements PeopleStore.
func (s *SQLiteStore) Blockers(ctx context.Context, blocked string) ([]string, error) {
	out, err := s.strings(ctx, `SELECT blocker FROM blocks WHERE blocked = ?`, blocked)
	if err != nil {
		return nil, fmt.Errorf("sqlite: blockers of %s: %w", blocked, err)
	}
	return out, nil
}

// SharesChat implements PeopleStore: user's chat IDs in one query, then the chats
// of the users asked about (members_by_user), a chunk at a time, intersected here.
// The cost follows the users asked about and their chats, not the size of user's
// chats (BenchmarkSQLiteSharesChat).
func (s *SQLiteStore) SharesChat(ctx context.Context, user string, others []string) (map[string]bool, error) {
	fail := func(err error) (map[string]bool, error) {
		return nil, fmt.Errorf("sqlite: chats shared with %s: %w", user, err)
	}
	out := map[string]bool{}
	others = dedupe(others)
	if len(others) == 0 {
		return out, nil
	}
	mine, err := s.strings(ctx, `SELECT chat_id FROM members WHERE user_id = ?`, user)
	if err != nil {
		return fail(err)
	}
	if len(mine) == 0 {
		return out, nil
	}
	mineSet := make(map[string]struct{}, len(mine))
	for _, c := range mine {
		mineSet[c] = struct{}{}
	}
	err = inChunks(others, func(chunk []string) error {
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, chat_id FROM members INDEXED BY members_by_user
			WHERE user_id IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u, c string
			if err := rows.Scan(&u, &c); err != nil {
				return err
			}
			if _, ok := mineSet[c]; ok {
				out[u] = true
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// PutInvitation implements PeopleStore in one transaction.
func (s *SQLiteStore) PutInvitation(ctx context.Context, inv Invitation) (bool, error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("sqlite: invite %s to %s: %w", inv.UserID, inv.ChatID, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var exists, n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invitations WHERE user_id = ? AND chat_id = ?`, inv.UserID, inv.ChatID).Scan(&exists); err != nil {
		return fail(err)
	}
	if exists == 0 {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invitations WHERE user_id = ?`, inv.UserID).Scan(&n); err != nil {
			return fail(err)
		}
		if n >= MaxInvitations {
			return false, ErrTooManyInvitations
		}
	}
	at := inv.CreatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO invitations (user_id, chat_id, invited_by, role, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, chat_id) DO UPDATE SET invited_by = excluded.invited_by, role = excluded.role, created_at = excluded.created_at`,
		inv.UserID, inv.ChatID, inv.InvitedBy, inv.Role, at.UnixMilli()); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return exists == 0, nil
}

// Invitations implements PeopleStore.
func (s *SQLiteStore) Invitations(ctx context.Context, userID string) ([]Invitation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT chat_id, invited_by, role, created_at FROM invitations
		WHERE user_id = ? ORDER BY created_at DESC, chat_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: invitations of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []Invitation
	for rows.Next() {
		inv := Invitation{UserID: userID}
		var at int64
		if err := rows.Scan(&inv.ChatID, &inv.InvitedBy, &inv.Role, &at); err != nil {
			return nil, fmt.Errorf("sqlite: invitations of %s: %w", userID, err)
		}
		inv.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: invitations of %s: %w", userID, err)
	}
	return out, nil
}

// GetInvitation implements PeopleStore.
func (s *SQLiteStore) GetInvitation(ctx context.Context, userID, chatID string) (Invitation, error) {
	inv := Invitation{UserID: userID, ChatID: chatID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT invited_by, role, created_at FROM invitations WHERE user_id = ? AND chat_id = ?`,
		userID, chatID).Scan(&inv.InvitedBy, &inv.Role, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Invitation{}, ErrNotFound
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("sqlite: invitation of %s to %s: %w", userID, chatID, err)
	}
	inv.CreatedAt = time.UnixMilli(at).UTC()
	return inv, nil
}

// DeleteInvitation implements PeopleStore.
func (s *SQLiteStore) DeleteInvitation(ctx context.Context, userID, chatID string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM invitations WHERE user_id = ? AND chat_id = ?`, userID, chatID)
	if err != nil {
		return false, fmt.Errorf("sqlite: delete invitation of %s to %s: %w", userID, chatID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: delete invitation of %s to %s: %w", userID, chatID, err)
	}
	return n > 0, nil
}

// strings runs a query of one text column on the read pool.
func (s *SQLiteStore) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// dedupe returns ss without repeats, in first-seen order.
func dedupe(ss []string) []string {
	seen := make(map[string]struct{}, len(ss))
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

// inChunks calls fn with ss in chunks of at most sqliteMaxArgs.
func inChunks(ss []string, fn func([]string) error) error {
	for len(ss) > 0 {
		n := min(len(ss), sqliteMaxArgs)
		if err := fn(ss[:n]); err != nil {
			return err
		}
		ss = ss[n:]
	}
	return nil
}
