package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// messageSeqsChunk is how many keys one MessageSeqs query names (two parameters
// each, well under SQLite's limit of 32766). A power of two (messageSeqsSizes).
const messageSeqsChunk = 256

// messageSeqsSizes is how many prepared MessageSeqs statements there are: one per
// power of two up to messageSeqsChunk keys.
const messageSeqsSizes = 9 // 1, 2, 4, ..., 256

// messageSeqsSQL is the MessageSeqs query for n keys: a row-value IN over the
// messages_by_id index (INDEXED BY: SQLite fails the query rather than scan if it
// could not use it).
func messageSeqsSQL(n int) string {
	var sb strings.Builder
	sb.WriteString(`SELECT chat_id, message_id, MIN(seq) FROM messages INDEXED BY messages_by_id
			WHERE (chat_id, message_id) IN (VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?)")
	}
	sb.WriteString(`) GROUP BY chat_id, message_id`)
	return sb.String()
}

// MessageSeqs implements Store: one query per 256 keys. One lookup statement per
// key cost more than the sequencer's whole decision (BenchmarkSequencerThroughput,
// docs/performance.md). The query for k keys is the prepared statement for the next
// power of two, the last key repeated to fill it: parsing a statement of k keys on
// every call was 1.2 % of the server's CPU under 1:1 load (docs/performance.md,
// "Caches and decoding on the hot path").
func (s *SQLiteStore) MessageSeqs(ctx context.Context, keys []MessageKey) (map[MessageKey]uint64, error) {
	out := make(map[MessageKey]uint64, len(keys))
	args := make([]any, 0, 2*messageSeqsChunk)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), messageSeqsChunk)]
		keys = keys[len(chunk):]
		size := paddedSize(len(chunk))
		args = args[:0]
		for i := range 1 << size {
			k := chunk[min(i, len(chunk)-1)]
			args = append(args, k.ChatID, k.MessageID)
		}
		if err := messageSeqsQuery(ctx, s.rd.messageSeqs[size], args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func messageSeqsQuery(ctx context.Context, st *sql.Stmt, args []any, out map[MessageKey]uint64) error {
	rows, err := st.QueryContext(ctx, args...)
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
