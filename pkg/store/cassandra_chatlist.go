package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
)

// userChatsReadConcurrency bounds the last-message reads of one UserChats call.
const userChatsReadConcurrency = 32

// UserChats implements Store. It reads all of the user's chats (one partition), all
// of their read state (one partition) and each chat's last message (one point read
// per chat, concurrently, plus one for a last message that operations may have
// changed), then sorts in memory: the cost grows with the number of chats the user
// is in, not with limit or offset. That is fine for the hundreds of chats people
// are in; a user in tens of thousands of chats needs an activity index.
func (s *CassandraStore) UserChats(ctx context.Context, userID string, limit, offset int) ([]ChatSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	all, err := s.allUserChats(ctx, userID)
	if err != nil {
		return nil, err
	}
	offset = max(offset, 0)
	if offset >= len(all) {
		return nil, nil
	}
	return all[offset:min(len(all), offset+limit)], nil
}

// UnreadTotal implements Store. It costs one allUserChats (a read per chat): a
// cheaper badge on Cassandra needs a per-user unread counter kept on append.
func (s *CassandraStore) UnreadTotal(ctx context.Context, userID, exceptChatID string) (uint64, error) {
	all, err := s.allUserChats(ctx, userID)
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, cs := range all {
		if cs.ID != exceptChatID {
			total += cs.Unread
		}
	}
	return total, nil
}

// userChatsBefore is Store.UserChatsBefore (cassandra_pending.go delegates to it):
// the list of UserChats after the chat that cursor names. It costs what UserChats
// costs.
func (s *CassandraStore) userChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	all, err := s.allUserChats(ctx, userID)
	if err != nil {
		return nil, err
	}
	if cursor != (ChatListCursor{}) {
		at := cursor.Activity.UnixMilli()
		i, _ := slices.BinarySearchFunc(all, cursor, func(cs ChatSummary, c ChatListCursor) int {
			if d := cmp.Compare(at, cs.LastActivity.UnixMilli()); d != 0 {
				return d // newest first
			}
			return strings.Compare(cs.ID, c.ChatID)
		})
		if i < len(all) && all[i].ID == cursor.ChatID && all[i].LastActivity.UnixMilli() == at {
			i++
		}
		all = all[i:]
	}
	return all[:min(len(all), limit)], nil
}

// allUserChats returns every chat of userID, in the order of UserChats.
func (s *CassandraStore) allUserChats(ctx context.Context, userID string) ([]ChatSummary, error) {
	if userID == "" {
		return nil, nil
	}
	var reads map[string]int64
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() { reads, readErr = s.userReads(ctx, userID) })

	var list []ChatSummary
	var known []bool // whether list[i] has the chat's metadata
	iter := s.sess.Query(cqlUserChats, userID).WithContext(ctx).Idempotent(true).Iter()
	for {
		var cs ChatSummary
		var kind *string
		if !iter.Scan(&cs.ID, &kind, &cs.Name, &cs.CreatedBy, &cs.CreatedAt, &cs.Encrypted) {
			break
		}
		if kind != nil {
			cs.Kind = *kind
		}
		cs.CreatedAt = cs.CreatedAt.UTC()
		list = append(list, cs)
		known = append(known, kind != nil)
	}
	err := iter.Close()
	wg.Wait()
	if err = errors.Join(err, readErr); err != nil {
		return nil, fmt.Errorf("cassandra: chats of %s: %w", userID, err)
	}

	errs := make([]error, len(list))
	sem := make(chan struct{}, userChatsReadConcurrency)
	for i := range list {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cs := &list[i]
			known[i], errs[i] = s.fillSummary(ctx, cs, known[i])
			cs.ReadSeq = uint64(reads[cs.ID])
			if errs[i] == nil && known[i] && cs.LastSeq > cs.ReadSeq {
				cs.Unread, errs[i] = s.unread(ctx, cs.ID, cs.ReadSeq, 0, userID)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cassandra: chats of %s: %w", userID, err)
	}
	out := make([]ChatSummary, 0, len(list))
	for i, cs := range list {
		if !known[i] {
			continue // no such chat (a member row written without one)
		}
		out = append(out, cs)
	}
	slices.SortFunc(out, func(a, b ChatSummary) int {
		if c := cmp.Compare(b.LastActivity.UnixMilli(), a.LastActivity.UnixMilli()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// unread counts chat's messages after seq read (up to seq upTo; 0: all) that are
// Countable for user, up to MaxUnread: history pages forward from the watermark, so
// it reads what is unread (in its current state, which says what was deleted),
// never what was read, and the append path pays nothing for it.
func (s *CassandraStore) unread(ctx context.Context, chat string, read, upTo uint64, user string) (uint64, error) {
	var n uint64
	for n < MaxUnread {
		page, err := s.History(ctx, chat, HistoryQuery{Dir: Forward, After: read, Limit: MaxPage})
		if err != nil {
			return 0, fmt.Errorf("unread of %s in %s: %w", user, chat, err)
		}
		for i := range page {
			if upTo != 0 && page[i].Seq > upTo {
				return min(n, MaxUnread), nil
			}
			if Countable(&page[i], user) {
				n++
			}
		}
		if len(page) < MaxPage {
			break
		}
		read = page[len(page)-1].Seq
	}
	return min(n, MaxUnread), nil
}

// UnreadBetween implements Store: history pages forward from after (unread).
func (s *CassandraStore) UnreadBetween(ctx context.Context, chatID, userID string, after, upTo uint64) (uint64, error) {
	if upTo <= after {
		return 0, nil
	}
	return s.unread(ctx, chatID, after, upTo, userID)
}

// fillSummary adds to cs the chat's last seq, activity, current name and last
// message in its current state (and the chat's metadata, if the user's row lacks
// it: known false), and reports whether the chat exists.
func (s *CassandraStore) fillSummary(ctx context.Context, cs *ChatSummary, known bool) (bool, error) {
	if !known {
		chat, err := s.GetChat(ctx, cs.ID)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		cs.Chat = chat
	}
	var seq, ts int64
	var body []byte
	var name *string
	err := s.sess.Query(cqlLastState, cs.ID).WithContext(ctx).Idempotent(true).Scan(&seq, &ts, &body, &name)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return false, fmt.Errorf("last message of %s: %w", cs.ID, err)
	}
	if name != nil {
		cs.Name = *name // renamed since the user's row was written
	}
	cs.LastSeq = uint64(seq)
	cs.LastActivity = time.UnixMilli(max(ts, cs.CreatedAt.UnixMilli())).UTC()
	if len(body) == 0 {
		return true, nil
	}
	var m protocol.Message
	if json.Unmarshal(body, &m) != nil || m.Expired(time.Now().UnixMilli()) {
		return true, nil
	}
	// Operations apply to earlier messages, and every later message is one: if
	// there are any, they may have changed it.
	if cs.LastSeq > m.Seq && protocol.Referable(m.MessageType) && m.MessageID != "" {
		ops, err := s.readOps(ctx, cs.ID, m.MessageID)
		if err != nil {
			return false, err
		}
		ops.apply(&m, "", false)
		m.StateSeq = 0
	}
	cs.LastMessage = &m
	return true, nil
}

func (s *CassandraStore) userReads(ctx context.Context, userID string) (map[string]int64, error) {
	iter := s.sess.Query(cqlUserReads, userID).WithContext(ctx).Idempotent(true).Iter()
	out := map[string]int64{}
	var chatID string
	var read int64
	for iter.Scan(&chatID, &read) {
		out[chatID] = read
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return out, nil
}
