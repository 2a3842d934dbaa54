package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gocql/gocql"
)

// SetReadState implements Store. Each watermark is a max register (written USING
// TIMESTAMP equal to its value) so concurrent or reordered updates can never lower
// it, with no read before the write and no LWT; delivered and read go in one
// single-partition batch, which Cassandra applies atomically, so delivered >= read
// always holds. The state returned is read back after the write.
func (s *CassandraStore) SetReadState(ctx context.Context, chatID, userID string, delivered, read uint64) (ReadState, error) {
	delivered = max(delivered, read)
	if delivered > math.MaxInt64 {
		return ReadState{}, fmt.Errorf("cassandra: read state %s/%s: seq out of range", chatID, userID)
	}
	if chatID == "" || userID == "" {
		return ReadState{}, fmt.Errorf("cassandra: read state %q/%q: empty ID", chatID, userID)
	}
	d, r := int64(delivered), int64(read)
	var entries []gocql.BatchEntry
	switch {
	case r > 0 && r == d:
		entries = append(entries, entry(cqlSetReadBoth, d, d, r, userID, chatID))
	default:
		if d > 0 {
			entries = append(entries, entry(cqlSetDelivered, d, d, userID, chatID))
		}
		if r > 0 {
			entries = append(entries, entry(cqlSetRead, r, r, userID, chatID))
		}
	}
	if len(entries) > 0 {
		if err := s.run(ctx, []writeOp{{what: "read state of " + userID, chat: chatID, entries: entries}}); err != nil {
			return ReadState{}, fmt.Errorf("cassandra: read state %s/%s: %w", chatID, userID, err)
		}
	}
	rs, err := s.GetReadState(ctx, chatID, userID)
	if err != nil {
		return ReadState{}, err
	}
	// With a consistency below quorum the read may miss the write just made.
	rs.Read = max(rs.Read, read)
	rs.Delivered = max(rs.Delivered, delivered, rs.Read)
	return rs, nil
}

// GetReadState implements Store.
func (s *CassandraStore) GetReadState(ctx context.Context, chatID, userID string) (ReadState, error) {
	rs := ReadState{ChatID: chatID, UserID: userID}
	if chatID == "" || userID == "" {
		return rs, nil
	}
	var d, r int64
	err := s.sess.Query(cqlGetReadState, userID, chatID).WithContext(ctx).Idempotent(true).Scan(&d, &r)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return ReadState{}, fmt.Errorf("cassandra: read state %s/%s: %w", chatID, userID, err)
	}
	rs.Delivered, rs.Read = uint64(max(d, r)), uint64(r)
	return rs, nil
}

// SetMute implements Store. Concurrent changes of one mute resolve last write wins.
func (s *CassandraStore) SetMute(ctx context.Context, m Mute) error {
	if m.ChatID == "" || m.UserID == "" {
		return fmt.Errorf("cassandra: set mute %q/%q: empty ID", m.ChatID, m.UserID)
	}
	q := s.sess.Query(cqlDeleteMute, m.ChatID, m.UserID)
	if m.Muted {
		var until any // null: until unmuted (and clears an earlier end)
		if !m.Until.IsZero() {
			until = m.Until
		}
		q = s.sess.Query(cqlSetMute, m.ChatID, m.UserID, until)
	}
	if err := q.WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fmt.Errorf("cassandra: set mute %s/%s: %w", m.ChatID, m.UserID, err)
	}
	return nil
}

// GetMute implements Store.
func (s *CassandraStore) GetMute(ctx context.Context, chatID, userID string) (Mute, error) {
	m := Mute{ChatID: chatID, UserID: userID}
	if chatID == "" || userID == "" {
		return m, nil
	}
	var until *time.Time
	err := s.sess.Query(cqlGetMute, chatID, userID).WithContext(ctx).Idempotent(true).Scan(&until)
	if errors.Is(err, gocql.ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return Mute{}, fmt.Errorf("cassandra: get mute %s/%s: %w", chatID, userID, err)
	}
	m.Muted = true
	if until != nil {
		m.Until = until.UTC()
	}
	return m, nil
}
