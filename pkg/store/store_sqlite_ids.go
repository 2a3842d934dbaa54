package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MessageSeqs implements Store: one indexed lookup per key (messages_by_id, the
// prepared MessageSeq statement), without a transaction (a key stored meanwhile
// may or may not be seen, as with MessageSeq). In-process, a lookup costs a few
// microseconds, less than building one statement for many keys would save.
func (s *SQLiteStore) MessageSeqs(ctx context.Context, keys []MessageKey) (map[MessageKey]uint64, error) {
	out := make(map[MessageKey]uint64, len(keys))
	for _, k := range keys {
		if _, done := out[k]; done || k.ChatID == "" || k.MessageID == "" {
			continue
		}
		var seq uint64
		err := s.rd.messageSeq.QueryRowContext(ctx, k.ChatID, k.MessageID).Scan(&seq)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("sqlite: message seq %s/%s: %w", k.ChatID, k.MessageID, err)
		default:
			out[k] = seq
		}
	}
	return out, nil
}
