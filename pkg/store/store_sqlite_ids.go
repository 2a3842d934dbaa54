package store

import (
	"context"
	"fmt"
	"strings"
)

// messageSeqsChunk is how many keys one MessageSeqs query names (two parameters
// each, well under SQLite's limit of 32766).
const messageSeqsChunk = 256

// MessageSeqs implements Store: one query per 256 keys, a row-value IN over the
// messages_by_id index (INDEXED BY: SQLite fails the query rather than scan if it
// could not use it). One lookup statement per key cost more than the sequencer's
// whole decision (BenchmarkSequencerThroughput, docs/performance.md).
func (s *SQLiteStore) MessageSeqs(ctx context.Context, keys []MessageKey) (map[MessageKey]uint64, error) {
	out := make(map[MessageKey]uint64, len(keys))
	var sb strings.Builder
	args := make([]any, 0, 2*min(len(keys), messageSeqsChunk))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), messageSeqsChunk)]
		keys = keys[len(chunk):]
		sb.Reset()
		args = args[:0]
		sb.WriteString(`SELECT chat_id, message_id, MIN(seq) FROM messages INDEXED BY messages_by_id
			WHERE (chat_id, message_id) IN (VALUES `)
		for i, k := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?)")
			args = append(args, k.ChatID, k.MessageID)
		}
		sb.WriteString(`) GROUP BY chat_id, message_id`)
		if err := s.messageSeqsQuery(ctx, sb.String(), args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *SQLiteStore) messageSeqsQuery(ctx context.Context, q string, args []any, out map[MessageKey]uint64) error {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: message seqs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k MessageKey
		var seq uint64
		if err := rows.Scan(&k.ChatID, &k.MessageID, &seq); err != nil {
			return fmt.Errorf("sqlite: message seqs: %w", err)
		}
		out[k] = seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: message seqs: %w", err)
	}
	return nil
}
