package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/gocql/gocql"
)

var _ PeopleStore = (*CassandraStore)(nil)

const (
	cqlPutProfile    = `INSERT INTO profiles (user_id, display_name, avatar, group_adds, updated_at) VALUES (?, ?, ?, ?, ?)`
	cqlProfiles      = `SELECT user_id, display_name, avatar, group_adds, updated_at FROM profiles WHERE user_id IN ?`
	cqlHasBlock      = `SELECT created_at FROM blocks WHERE blocker = ? AND blocked = ?`
	cqlCountBlocks   = `SELECT COUNT(*) FROM blocks WHERE blocker = ?`
	cqlPutBlock      = `INSERT INTO blocks (blocker, blocked, created_at) VALUES (?, ?, ?)`
	cqlPutBlockedBy  = `INSERT INTO blocks_by_blocked (blocked, blocker) VALUES (?, ?)`
	cqlDelBlock      = `DELETE FROM blocks WHERE blocker = ? AND blocked = ?`
	cqlDelBlockedBy  = `DELETE FROM blocks_by_blocked WHERE blocked = ? AND blocker = ?`
	cqlBlocks        = `SELECT blocked, created_at FROM blocks WHERE blocker = ?`
	cqlBlockers      = `SELECT blocker FROM blocks_by_blocked WHERE blocked = ?`
	cqlUserChatIDs   = `SELECT chat_id FROM user_chats WHERE user_id = ?`
	cqlMemberIDs     = `SELECT user_id FROM chats WHERE chat_id = ?`
	cqlGetInvitation = `SELECT invited_by, role, created_at FROM invitations WHERE user_id = ? AND chat_id = ?`
	cqlCountInvites  = `SELECT COUNT(*) FROM invitations WHERE user_id = ?`
	cqlPutInvitation = `INSERT INTO invitations (user_id, chat_id, invited_by, role, created_at) VALUES (?, ?, ?, ?, ?)`
	cqlInvitations   = `SELECT chat_id, invited_by, role, created_at FROM invitations WHERE user_id = ?`
	cqlDelInvitation = `DELETE FROM invitations WHERE user_id = ? AND chat_id = ?`
)

// cassandraInChunk is the most keys one IN query names.
const cassandraInChunk = 100

// sharesByUserMax is the most others for which SharesChat reads each one's chat
// list; above it, it reads the members of the user's chats instead.
const sharesByUserMax = 64

// PutProfile implements PeopleStore.
func (s *CassandraStore) PutProfile(ctx context.Context, p Profile) error {
	if err := ValidateProfile(p); err != nil {
		return err
	}
	at := p.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if err := s.sess.Query(cqlPutProfile, p.UserID, p.DisplayName, p.Avatar, p.GroupAdds, at).
		WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fmt.Errorf("cassandra: put profile of %s: %w", p.UserID, err)
	}
	return nil
}

// Profiles implements PeopleStore, one IN query per cassandraInChunk users.
func (s *CassandraStore) Profiles(ctx context.Context, userIDs []string) ([]Profile, error) {
	if len(userIDs) > MaxProfileBatch {
		return nil, fmt.Errorf("cassandra: profiles: %d users, the limit is %d", len(userIDs), MaxProfileBatch)
	}
	var out []Profile
	users := dedupe(userIDs)
	for len(users) > 0 {
		n := min(len(users), cassandraInChunk)
		iter := s.sess.Query(cqlProfiles, users[:n]).WithContext(ctx).Idempotent(true).Iter()
		var p Profile
		for iter.Scan(&p.UserID, &p.DisplayName, &p.Avatar, &p.GroupAdds, &p.UpdatedAt) {
			p.UpdatedAt = p.UpdatedAt.UTC()
			out = append(out, p)
			p = Profile{}
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("cassandra: profiles: %w", err)
		}
		users = users[n:]
	}
	return out, nil
}

// Block implements PeopleStore. The two rows are written blocks_by_blocked first:
// a check that reads it (consent, by the inviter) errs towards the block while
// the pair is half written. Two concurrent new blocks by one user may pass
// MaxBlocks by one.
func (s *CassandraStore) Block(ctx context.Context, b Block) (bool, error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("cassandra: block %s by %s: %w", b.Blocked, b.Blocker, err)
	}
	var at time.Time
	err := s.sess.Query(cqlHasBlock, b.Blocker, b.Blocked).WithContext(ctx).Idempotent(true).Scan(&at)
	if err == nil {
		// Make sure the reverse row exists too (a write interrupted between them).
		if err := s.sess.Query(cqlPutBlockedBy, b.Blocked, b.Blocker).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return fail(err)
		}
		return false, nil
	}
	if !errors.Is(err, gocql.ErrNotFound) {
		return fail(err)
	}
	var n int64
	if err := s.sess.Query(cqlCountBlocks, b.Blocker).WithContext(ctx).Idempotent(true).Scan(&n); err != nil {
		return fail(err)
	}
	if n >= int64(MaxBlocks) {
		return false, ErrTooManyBlocks
	}
	if at = b.CreatedAt; at.IsZero() {
		at = time.Now()
	}
	if err := s.sess.Query(cqlPutBlockedBy, b.Blocked, b.Blocker).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fail(err)
	}
	if err := s.sess.Query(cqlPutBlock, b.Blocker, b.Blocked, at).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fail(err)
	}
	return true, nil
}

// Unblock implements PeopleStore: blocks first, then blocks_by_blocked (the
// reverse of Block), so a half-done unblock still reads as a block to consent.
func (s *CassandraStore) Unblock(ctx context.Context, blocker, blocked string) (bool, error) {
	var at time.Time
	err := s.sess.Query(cqlHasBlock, blocker, blocked).WithContext(ctx).Idempotent(true).Scan(&at)
	existed := err == nil
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return false, fmt.Errorf("cassandra: unblock %s by %s: %w", blocked, blocker, err)
	}
	if err := s.sess.Query(cqlDelBlock, blocker, blocked).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return false, fmt.Errorf("cassandra: unblock %s by %s: %w", blocked, blocker, err)
	}
	if err := s.sess.Query(cqlDelBlockedBy, blocked, blocker).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return false, fmt.Errorf("cassandra: unblock %s by %s: %w", blocked, blocker, err)
	}
	return existed, nil
}

// Blocks implements PeopleStore.
func (s *CassandraStore) Blocks(ctx context.Context, blocker string) ([]Block, error) {
	iter := s.sess.Query(cqlBlocks, blocker).WithContext(ctx).Idempotent(true).Iter()
	var out []Block
	b := Block{Blocker: blocker}
	for iter.Scan(&b.Blocked, &b.CreatedAt) {
		b.CreatedAt = b.CreatedAt.UTC()
		out = append(out, b)
		b = Block{Blocker: blocker}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: blocks of %s: %w", blocker, err)
	}
	return out, nil // clustered by blocked: already ordered
}

// Blockers implements PeopleStore.
func (s *CassandraStore) Blockers(ctx context.Context, blocked string) ([]string, error) {
	out, err := s.column(ctx, cqlBlockers, blocked)
	if err != nil {
		return nil, fmt.Errorf("cassandra: blockers of %s: %w", blocked, err)
	}
	return out, nil
}

// SharesChat implements PeopleStore. With few others (sharesByUserMax) it reads
// each one's chat list (in parallel) and intersects it with user's; with many, it
// reads the members of each of user's chats once: a bulk add of thousands of users
// costs one partition read per chat of the adder, not one per added user.
func (s *CassandraStore) SharesChat(ctx context.Context, user string, others []string) (map[string]bool, error) {
	fail := func(err error) (map[string]bool, error) {
		return nil, fmt.Errorf("cassandra: chats shared with %s: %w", user, err)
	}
	out := map[string]bool{}
	others = dedupe(others)
	if len(others) == 0 {
		return out, nil
	}
	mine, err := s.column(ctx, cqlUserChatIDs, user)
	if err != nil {
		return fail(err)
	}
	mineSet := make(map[string]bool, len(mine))
	for _, c := range mine {
		mineSet[c] = true
	}
	var mu sync.Mutex // guards out and firstErr
	var firstErr error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	run := func(q, key string, each func(string)) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			vals, err := s.column(ctx, q, key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			for _, v := range vals {
				each(v)
			}
		}()
	}
	if len(others) <= sharesByUserMax {
		for _, o := range others {
			run(cqlUserChatIDs, o, func(chat string) {
				if mineSet[chat] {
					out[o] = true
				}
			})
		}
	} else {
		want := make(map[string]bool, len(others))
		for _, o := range others {
			want[o] = true
		}
		for _, chat := range mine {
			run(cqlMemberIDs, chat, func(uid string) {
				if want[uid] {
					out[uid] = true
				}
			})
		}
	}
	wg.Wait()
	if firstErr != nil {
		return fail(firstErr)
	}
	return out, nil
}

// PutInvitation implements PeopleStore. Two concurrent new invitations of one
// user may pass MaxInvitations by one.
func (s *CassandraStore) PutInvitation(ctx context.Context, inv Invitation) (bool, error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("cassandra: invite %s to %s: %w", inv.UserID, inv.ChatID, err)
	}
	_, err := s.GetInvitation(ctx, inv.UserID, inv.ChatID)
	created := errors.Is(err, ErrNotFound)
	if err != nil && !created {
		return false, err
	}
	if created {
		var n int64
		if err := s.sess.Query(cqlCountInvites, inv.UserID).WithContext(ctx).Idempotent(true).Scan(&n); err != nil {
			return fail(err)
		}
		if n >= int64(MaxInvitations) {
			return false, ErrTooManyInvitations
		}
	}
	at := inv.CreatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if err := s.sess.Query(cqlPutInvitation, inv.UserID, inv.ChatID, inv.InvitedBy, inv.Role, at).
		WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fail(err)
	}
	return created, nil
}

// Invitations implements PeopleStore.
func (s *CassandraStore) Invitations(ctx context.Context, userID string) ([]Invitation, error) {
	iter := s.sess.Query(cqlInvitations, userID).WithContext(ctx).Idempotent(true).Iter()
	var out []Invitation
	inv := Invitation{UserID: userID}
	for iter.Scan(&inv.ChatID, &inv.InvitedBy, &inv.Role, &inv.CreatedAt) {
		inv.CreatedAt = inv.CreatedAt.UTC()
		out = append(out, inv)
		inv = Invitation{UserID: userID}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: invitations of %s: %w", userID, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ChatID < out[j].ChatID
	})
	return out, nil
}

// GetInvitation implements PeopleStore.
func (s *CassandraStore) GetInvitation(ctx context.Context, userID, chatID string) (Invitation, error) {
	inv := Invitation{UserID: userID, ChatID: chatID}
	err := s.sess.Query(cqlGetInvitation, userID, chatID).WithContext(ctx).Idempotent(true).
		Scan(&inv.InvitedBy, &inv.Role, &inv.CreatedAt)
	if errors.Is(err, gocql.ErrNotFound) {
		return Invitation{}, ErrNotFound
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("cassandra: invitation of %s to %s: %w", userID, chatID, err)
	}
	inv.CreatedAt = inv.CreatedAt.UTC()
	return inv, nil
}

// DeleteInvitation implements PeopleStore.
func (s *CassandraStore) DeleteInvitation(ctx context.Context, userID, chatID string) (bool, error) {
	_, err := s.GetInvitation(ctx, userID, chatID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.sess.Query(cqlDelInvitation, userID, chatID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return false, fmt.Errorf("cassandra: delete invitation of %s to %s: %w", userID, chatID, err)
	}
	return true, nil
}

// column reads one text column of every row q (with one bound key) returns,
// skipping empty values (a chat's static row has no member).
func (s *CassandraStore) column(ctx context.Context, q, key string) ([]string, error) {
	iter := s.sess.Query(q, key).WithContext(ctx).Idempotent(true).Iter()
	var out []string
	var v string
	for iter.Scan(&v) {
		if v != "" {
			out = append(out, v)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return out, nil
}
