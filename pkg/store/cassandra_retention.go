package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Retention and deletion on Cassandra (lifecycle.go, docs/privacy.md).
//
// Expiry is native: every row an expiring message writes (messages, message_ids,
// message_search, its operations' message_ops rows and has_ops marks, the chat's
// last_message cell) carries the message's TTL, rounded up to the second, and reads
// hide a message from its expires_at on, so it is gone exactly on time and its rows
// within the second after. What stays: the chat_buckets index rows (min/max seq of a
// bucket, a few bytes each), so a history read that reaches a fully expired bucket
// reads one empty partition, and the tombstones the TTL leaves, which compaction
// drops after gc_grace_seconds (docs/privacy.md has the costs).
//
// Deletions use plain DELETEs: their timestamp (now, in microseconds) is above the
// synthetic seq timestamps of the registers (cassandra_migrations.go), so a late
// write of a deleted chat's register or an erased user's watermark stays hidden.

// Lifecycle statements.
const (
	cqlSetLastMessageTTL  = `UPDATE chat_buckets USING TIMESTAMP ? AND TTL ? SET last_message = ? WHERE chat_id = ?`
	cqlSetMessageTTL      = `UPDATE chats SET message_ttl = ? WHERE chat_id = ?`
	cqlIsDeleted          = `SELECT chat_id FROM deleted_chats WHERE chat_id = ?`
	cqlMarkChatDeleted    = `INSERT INTO deleted_chats (chat_id, deleted_at) VALUES (?, ?)`
	cqlRaiseFloor         = `UPDATE history_floors USING TIMESTAMP ? SET seq = ? WHERE user_id = ? AND chat_id = ?`
	cqlGetFloor           = `SELECT seq FROM history_floors WHERE user_id = ? AND chat_id = ?`
	cqlChatBuckets        = `SELECT bucket FROM chat_buckets WHERE chat_id = ?`
	cqlBucketIDs          = `SELECT message_id FROM messages WHERE chat_id = ? AND bucket = ?`
	cqlDelMessages        = `DELETE FROM messages WHERE chat_id = ? AND bucket = ?`
	cqlDelMessageID       = `DELETE FROM message_ids WHERE chat_id = ? AND message_id = ?`
	cqlDelMessageOps      = `DELETE FROM message_ops WHERE chat_id = ? AND message_id = ?`
	cqlDelSearchPart      = `DELETE FROM message_search WHERE chat_id = ? AND part = ?`
	cqlDelChatPartition   = `DELETE FROM chats WHERE chat_id = ?`
	cqlDelChatBuckets     = `DELETE FROM chat_buckets WHERE chat_id = ?`
	cqlDelChatMutes       = `DELETE FROM mutes WHERE chat_id = ?`
	cqlDelReadState       = `DELETE FROM read_state WHERE user_id = ? AND chat_id = ?`
	cqlDelFloor           = `DELETE FROM history_floors WHERE user_id = ? AND chat_id = ?`
	cqlDelUserReads       = `DELETE FROM read_state WHERE user_id = ?`
	cqlDelUserFloors      = `DELETE FROM history_floors WHERE user_id = ?`
	cqlDelProfile         = `DELETE FROM profiles WHERE user_id = ?`
	cqlDelDeviceKeys      = `DELETE FROM device_keys WHERE user_id = ?`
	cqlDelOneTimeKeys     = `DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ?`
	cqlDelUserInvitations = `DELETE FROM invitations WHERE user_id = ?`
	cqlEraseMessage       = `UPDATE messages USING TTL ? SET content = null, meta = null, has_ops = true
		WHERE chat_id = ? AND bucket = ? AND seq = ?`
	cqlEraseDeleteOp = `INSERT INTO message_ops (chat_id, message_id, kind, emoji, user_id, seq) VALUES (?, ?, 'delete', '', ?, ?) USING TTL ?`
	cqlEraseEditText = `UPDATE message_ops SET content = null
		WHERE chat_id = ? AND message_id = ? AND kind = 'edit' AND emoji = '' AND user_id = ? AND seq = ?`
	cqlEraseEditTerms = `DELETE FROM message_search USING TIMESTAMP ? WHERE chat_id = ? AND part = ? AND seq = ? AND op_seq = ?`
	cqlEraseReaction  = `UPDATE message_ops USING TIMESTAMP ? SET present = false
		WHERE chat_id = ? AND message_id = ? AND kind = 'react' AND emoji = ? AND user_id = ? AND seq = 0`
	cqlEraseLastMessage = `DELETE last_message FROM chat_buckets USING TIMESTAMP ? WHERE chat_id = ?`
)

// ttlOf is the TTL, in seconds, of m's rows: 0 (none) for a message that does not
// expire, else the time left until m.ExpiresAt rounded up, at least 1 (a message
// that expired before it was stored is written to vanish at once; reads hide it
// already).
func ttlOf(m *protocol.Message) int {
	if m.ExpiresAt == 0 {
		return 0
	}
	left := m.ExpiresAt - time.Now().UnixMilli()
	return int(max(1, (left+999)/1000))
}

// longerTTL is the TTL of a cell that must live as long as both a and b (0: forever).
func longerTTL(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	return max(a, b)
}

// unsetZero is v, or no cell for 0.
func unsetZero(v int64) any {
	if v == 0 {
		return gocql.UnsetValue
	}
	return v
}

// lastMessageEntry writes lastMsg (encoded as body) as chat's last message, a
// register with timestamp = its seq; an expiring one with its TTL.
func lastMessageEntry(lastMsg *protocol.Message, body []byte, chatID string) gocql.BatchEntry {
	if ttl := ttlOf(lastMsg); ttl > 0 {
		return entry(cqlSetLastMessageTTL, int64(lastMsg.Seq), ttl, body, chatID)
	}
	return entry(cqlSetLastMessage, int64(lastMsg.Seq), body, chatID)
}

// refuseDeleted returns ErrChatDeleted if chatID names a deleted chat.
func (s *CassandraStore) refuseDeleted(ctx context.Context, chatID string) error {
	var id string
	err := s.sess.Query(cqlIsDeleted, chatID).WithContext(ctx).Idempotent(true).Scan(&id)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("cassandra: create chat %s: %w", chatID, err)
	}
	return ErrChatDeleted
}

// SetMessageTTL implements Store.
func (s *CassandraStore) SetMessageTTL(ctx context.Context, chatID string, seconds int64) error {
	if _, err := s.GetChat(ctx, chatID); err != nil {
		return err
	}
	if err := s.sess.Query(cqlSetMessageTTL, seconds, chatID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fmt.Errorf("cassandra: message ttl of %s: %w", chatID, err)
	}
	return nil
}

// ClearHistory implements Store. The floor is a max register (timestamp = seq).
func (s *CassandraStore) ClearHistory(ctx context.Context, chatID, userID string, seq uint64) (uint64, error) {
	if seq > 1<<62 {
		return 0, fmt.Errorf("cassandra: clear history %s/%s: seq out of range", chatID, userID)
	}
	if err := s.sess.Query(cqlRaiseFloor, int64(seq), int64(seq), userID, chatID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return 0, fmt.Errorf("cassandra: clear history %s/%s: %w", chatID, userID, err)
	}
	floor, err := s.HistoryFloor(ctx, chatID, userID)
	if err != nil {
		return 0, err
	}
	if _, err := s.SetReadState(ctx, chatID, userID, floor, floor); err != nil {
		return 0, err
	}
	return floor, nil
}

// HistoryFloor implements Store.
func (s *CassandraStore) HistoryFloor(ctx context.Context, chatID, userID string) (uint64, error) {
	var seq int64
	err := s.sess.Query(cqlGetFloor, userID, chatID).WithContext(ctx).Idempotent(true).Scan(&seq)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("cassandra: history floor %s/%s: %w", chatID, userID, err)
	}
	return uint64(max(seq, 0)), nil
}

// DeleteChat implements Store. It reads the chat's bucket index and each bucket's
// message IDs to find the partitions to drop: the cost grows with the chat's
// history (one partition read and one delete per bucket, two deletes per message).
// The deleted_chats row goes first, so a crash part-way leaves the chat deleted
// and a retry finishes the erasure.
func (s *CassandraStore) DeleteChat(ctx context.Context, chatID string) error {
	if chatID == "" {
		return nil
	}
	wrap := func(err error) error { return fmt.Errorf("cassandra: delete chat %s: %w", chatID, err) }
	q := func(stmt string, args ...any) error {
		return s.sess.Query(stmt, args...).WithContext(ctx).Idempotent(true).Exec()
	}
	if err := q(cqlMarkChatDeleted, chatID, time.Now().UTC()); err != nil {
		return wrap(err)
	}
	members, err := s.Members(ctx, chatID)
	if err != nil {
		return wrap(err)
	}
	lastSeq, err := s.LastSeq(ctx, chatID)
	if err != nil {
		return wrap(err)
	}
	buckets := map[int64]bool{}
	iter := s.sess.Query(cqlChatBuckets, chatID).WithContext(ctx).Idempotent(true).Iter()
	var b int64
	for iter.Scan(&b) {
		buckets[b] = true
	}
	if err := iter.Close(); err != nil {
		return wrap(err)
	}
	var ops []writeOp
	add := func(what string, stmt string, args ...any) {
		ops = append(ops, writeOp{what: what, chat: chatID, entries: []gocql.BatchEntry{entry(stmt, args...)}})
	}
	for bucket := range buckets {
		it := s.sess.Query(cqlBucketIDs, chatID, bucket).WithContext(ctx).Idempotent(true).Iter()
		var id string
		for it.Scan(&id) {
			add("message id", cqlDelMessageID, chatID, id)
			add("message operations", cqlDelMessageOps, chatID, id)
		}
		if err := it.Close(); err != nil {
			return wrap(err)
		}
		add("messages", cqlDelMessages, chatID, bucket)
	}
	for part := int64(0); part <= int64(lastSeq)/searchPart; part++ {
		add("search index", cqlDelSearchPart, chatID, part)
	}
	for _, m := range members {
		add("user_chats row", cqlDelUserChat, m.UserID, chatID)
		add("read state", cqlDelReadState, m.UserID, chatID)
		add("history floor", cqlDelFloor, m.UserID, chatID)
	}
	add("mutes", cqlDelChatMutes, chatID)
	add("members", cqlDelChatPartition, chatID)
	add("bucket index", cqlDelChatBuckets, chatID)
	if err := s.run(ctx, pack(ops)); err != nil {
		return wrap(err)
	}
	return nil
}

// EraseUser implements Store. Cassandra has no index by sender: the chats the user
// ever sent in are those of their read_state partition (a message one sends moves
// one's own watermark there) and user_chats; each is read whole, page by page,
// and the user's messages are cleared. The cost grows with those chats' histories.
func (s *CassandraStore) EraseUser(ctx context.Context, userID string) (EraseReport, error) {
	var rep EraseReport
	if userID == "" {
		return rep, nil
	}
	wrap := func(err error) error { return fmt.Errorf("cassandra: erase user %s: %w", userID, err) }
	reads, err := s.userReads(ctx, userID)
	if err != nil {
		return rep, wrap(err)
	}
	memberOf := map[string]bool{}
	iter := s.sess.Query(`SELECT chat_id FROM user_chats WHERE user_id = ?`, userID).WithContext(ctx).Idempotent(true).Iter()
	var id string
	for iter.Scan(&id) {
		memberOf[id] = true
	}
	if err := iter.Close(); err != nil {
		return rep, wrap(err)
	}
	chats := map[string]bool{}
	for c := range reads {
		chats[c] = true
	}
	for c := range memberOf {
		chats[c] = true
	}
	for chat := range chats {
		n, err := s.eraseInChat(ctx, chat, userID)
		rep.Messages += n
		if err != nil {
			return rep, wrap(err)
		}
	}
	for chat := range memberOf {
		if err := s.RemoveMember(ctx, chat, userID); err != nil {
			return rep, wrap(err)
		}
		if err := s.sess.Query(cqlDeleteMute, chat, userID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return rep, wrap(err)
		}
		rep.Chats++
	}
	for _, stmt := range []string{cqlDelUserReads, cqlDelUserFloors} {
		if err := s.sess.Query(stmt, userID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return rep, wrap(err)
		}
	}
	profiles, err := s.Profiles(ctx, []string{userID})
	if err != nil {
		return rep, wrap(err)
	}
	rep.Profile = len(profiles) > 0
	blocks, err := s.Blocks(ctx, userID)
	if err != nil {
		return rep, wrap(err)
	}
	for _, b := range blocks {
		if _, err := s.Unblock(ctx, userID, b.Blocked); err != nil {
			return rep, wrap(err)
		}
	}
	keys, err := s.DeviceKeys(ctx, userID)
	if err != nil {
		return rep, wrap(err)
	}
	for _, k := range keys {
		if err := s.sess.Query(cqlDelOneTimeKeys, userID, k.DeviceID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return rep, wrap(err)
		}
	}
	for _, stmt := range []string{cqlDelProfile, cqlDelUserInvitations, cqlDelDeviceKeys} {
		if err := s.sess.Query(stmt, userID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return rep, wrap(err)
		}
	}
	devices, err := s.Devices(ctx, userID)
	if err != nil {
		return rep, wrap(err)
	}
	for _, d := range devices {
		if _, err := s.DeleteDevice(ctx, userID, d.DeviceID); err != nil {
			return rep, wrap(err)
		}
		rep.Devices++
	}
	return rep, nil
}

// eraseInChat clears userID's messages in chat (EraseUser) and returns how many
// it changed.
func (s *CassandraStore) eraseInChat(ctx context.Context, chat, userID string) (int, error) {
	var ops []writeOp
	add := func(what string, stmt string, args ...any) {
		ops = append(ops, writeOp{what: what, chat: chat, entries: []gocql.BatchEntry{entry(stmt, args...)}})
	}
	n := 0
	var after uint64
	for {
		page, err := s.History(ctx, chat, HistoryQuery{Dir: Forward, After: after, Limit: MaxPage})
		if err != nil {
			return n, err
		}
		for i := range page {
			m := &page[i]
			after = m.Seq
			if m.SenderID != userID {
				continue
			}
			seq := int64(m.Seq)
			if m.Content != "" || len(m.Meta) > 0 || (protocol.Referable(m.MessageType) && !m.Deleted) {
				n++
			}
			add("erased message", cqlEraseMessage, ttlOf(m), chat, s.bucketOf(m.Timestamp), seq)
			add("erased search terms", cqlSearchDelete, deleteForever, chat, seq/searchPart, seq)
			switch {
			case protocol.Referable(m.MessageType):
				// A delete event above the message (seq+1: operations apply to
				// earlier seqs) makes every read show it as a tombstone.
				add("erased message", cqlEraseDeleteOp, chat, m.MessageID, "", seq+1, ttlOf(m))
			case m.MessageType == protocol.TypeEdit && m.RefID != "":
				add("erased edit", cqlEraseEditText, chat, m.RefID, userID, seq)
				if target, err := s.MessageSeq(ctx, chat, m.RefID); err == nil {
					add("erased edit terms", cqlEraseEditTerms, deleteForever, chat, int64(target)/searchPart, int64(target), seq)
				} else if !errors.Is(err, ErrNotFound) {
					return n, err
				}
			}
			if m.MessageType == protocol.TypeReact && m.RefID != "" {
				if ev, ok := protocol.ParseReaction(m.Meta); ok {
					add("erased reaction", cqlEraseReaction, deleteForever, chat, m.RefID, ev.Emoji, userID)
				}
			}
		}
		if len(page) < MaxPage {
			break
		}
	}
	// The chat list's copy of the last message, if it is the user's: a tombstone
	// at its own timestamp hides it, and any later message replaces it.
	var seq, ts int64
	var body []byte
	var name *string
	err := s.sess.Query(cqlLastState, chat).WithContext(ctx).Idempotent(true).Scan(&seq, &ts, &body, &name)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return n, err
	}
	var last protocol.Message
	if len(body) > 0 && json.Unmarshal(body, &last) == nil && last.SenderID == userID {
		add("erased last message", cqlEraseLastMessage, int64(last.Seq), chat)
	}
	if err := s.run(ctx, pack(ops)); err != nil {
		return n, err
	}
	return n, nil
}

// SweepExpired implements Store: Cassandra expires rows itself (native TTLs).
func (s *CassandraStore) SweepExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	return 0, nil
}
