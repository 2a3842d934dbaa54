package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
)

// storedMsg is a message as read from its row.
type storedMsg struct {
	protocol.Message
	hasOps bool // operations reference it: read message_ops
}

// indexRow is one row of chat_buckets: seqs lo..hi of one block live in bucket.
type indexRow struct {
	bucket int64
	lo, hi int64
}

// History implements Store. It seeks the bucket index to the cursor's block and
// reads, block by block in the page's direction, only the buckets the index names
// for the seqs it still needs (see readBlock), so empty buckets are never read;
// then it brings the page to its current state (see currentState).
func (s *CassandraStore) History(ctx context.Context, chatID string, q HistoryQuery) ([]protocol.Message, error) {
	limit := clampLimit(q.Limit)
	fwd := q.Dir == Forward
	lo, hi := int64(0), int64(math.MaxInt64) // wanted seqs, inclusive
	switch {
	case fwd && q.After >= math.MaxInt64:
		return nil, nil
	case fwd:
		lo = int64(q.After) + 1
	case q.Before == 1:
		return nil, nil
	case q.Before > 0 && q.Before <= math.MaxInt64:
		hi = int64(q.Before) - 1
	}
	if chatID == "" {
		return nil, nil
	}
	stmt, from := cqlIndexBackward, hi/seqBlock
	if fwd {
		stmt, from = cqlIndexForward, lo/seqBlock
	}
	// A busy chat has a row or two per block, a sparse one up to one per message:
	// a page of about limit rows serves both without reading far ahead.
	pageSize := min(max(limit+16, 32), 2*seqBlock)
	iter := s.sess.Query(stmt, chatID, from).WithContext(ctx).Idempotent(true).PageSize(pageSize).Iter()
	var out []storedMsg
	var rows []indexRow
	block := int64(-1)
	var blk, bucket, mn, mx int64
	var pending []string // static: the same on every row
	flush := func() error {
		page, err := s.readBlock(ctx, chatID, fwd, block, rows, lo, hi, limit-len(out))
		out = append(out, page...)
		rows = rows[:0]
		return err
	}
	for len(out) < limit && iter.Scan(&blk, &bucket, &mn, &mx, &pending) {
		if blk != block && len(rows) > 0 {
			if err := flush(); err != nil {
				iter.Close()
				return nil, fmt.Errorf("cassandra: history %s: %w", chatID, err)
			}
			if len(out) >= limit {
				break
			}
		}
		block = blk
		if mn == 0 || mx == 0 {
			// Not expected (a row's first write sets both), but a null register can
			// only cost reads: take the row as covering its whole block.
			mn, mx = blk*seqBlock, blk*seqBlock+seqBlock-1
		}
		rows = append(rows, indexRow{bucket: bucket, lo: mn, hi: mx})
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: history %s: read bucket index: %w", chatID, err)
	}
	if len(out) < limit && len(rows) > 0 {
		if err := flush(); err != nil {
			return nil, fmt.Errorf("cassandra: history %s: %w", chatID, err)
		}
	}
	msgs, err := s.currentState(ctx, chatID, out, pending, q.Viewer)
	if err != nil {
		return nil, fmt.Errorf("cassandra: history %s: %w", chatID, err)
	}
	return msgs, nil
}

// maxWave bounds the bucket reads History sends at once for one block.
const maxWave = 16

// readBlock returns up to need messages of one seq block within [lo, hi], ordered
// in the page direction, from the buckets in rows (each with the exact seq range
// the block has in it). Buckets are read best-first (highest seqs for a backward
// page), in waves sized by how many seqs their ranges can still hold, until no
// unread bucket can hold a seq that would make the page. With timestamps that rise
// with seq the ranges do not overlap and this reads exactly the buckets the page
// spans; if a clock went backwards they overlap and the merge keeps it exact.
func (s *CassandraStore) readBlock(ctx context.Context, chatID string, fwd bool, block int64, rows []indexRow, lo, hi int64, need int) ([]storedMsg, error) {
	bLo, bHi := max(lo, block*seqBlock), min(hi, block*seqBlock+seqBlock-1)
	cands := make([]indexRow, 0, len(rows))
	for _, r := range rows {
		r.lo, r.hi = max(r.lo, bLo), min(r.hi, bHi)
		if r.lo <= r.hi {
			cands = append(cands, r)
		}
	}
	better := func(a, b int64) bool { return a > b } // a comes before b in the page
	if fwd {
		better = func(a, b int64) bool { return a < b }
		slices.SortFunc(cands, func(a, b indexRow) int { return cmp.Compare(a.lo, b.lo) })
	} else {
		slices.SortFunc(cands, func(a, b indexRow) int { return cmp.Compare(b.hi, a.hi) })
	}
	var got []storedMsg
	for i := 0; i < len(cands); {
		if len(got) >= need {
			edge := int64(got[need-1].Seq)
			if first := cands[i]; (fwd && first.lo > edge) || (!fwd && first.hi < edge) {
				break
			}
		}
		j, room := i, int64(need-len(got))
		for j < len(cands) && j-i < maxWave && (j == i || room > 0) {
			room -= cands[j].hi - cands[j].lo + 1
			j++
		}
		wave := make([][]storedMsg, j-i)
		errs := make([]error, j-i)
		var wg sync.WaitGroup
		for k := i; k < j; k++ {
			wg.Go(func() { wave[k-i], errs[k-i] = s.readBucket(ctx, chatID, fwd, cands[k], need) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for _, w := range wave {
			got = append(got, w...)
		}
		if j-i > 1 || i > 0 {
			slices.SortStableFunc(got, func(a, b storedMsg) int {
				if better(int64(a.Seq), int64(b.Seq)) {
					return -1
				}
				if a.Seq == b.Seq {
					return 0
				}
				return 1
			})
			// A message stored under two buckets (its timestamp changed between
			// retries) shows once.
			got = slices.CompactFunc(got, func(a, b storedMsg) bool { return a.Seq == b.Seq })
		}
		if len(got) > need {
			got = got[:need]
		}
		i = j
	}
	return got, nil
}

// readBucket reads up to limit messages of one bucket within r, in page order.
func (s *CassandraStore) readBucket(ctx context.Context, chatID string, fwd bool, r indexRow, limit int) ([]storedMsg, error) {
	stmt := cqlMessagesBackwrd
	if fwd {
		stmt = cqlMessagesForward
	}
	out := make([]storedMsg, 0, min(limit, int(r.hi-r.lo+1)))
	now := time.Now().UnixMilli()
	// Usually one query. Rows that expired but are still stored (their TTL is
	// rounded up to the second) are skipped, and the bucket is read on past them
	// for as many as were skipped.
	for lo, hi := r.lo, r.hi; lo <= hi; {
		want := limit - len(out)
		iter := s.sess.Query(stmt, chatID, r.bucket, lo, hi, want).WithContext(ctx).Idempotent(true).Iter()
		rows, edge := 0, int64(0)
		for {
			m := storedMsg{Message: protocol.Message{ChatID: chatID}}
			var seq int64
			var meta []byte
			if !iter.Scan(&seq, &m.MessageID, &m.SenderID, &m.Content, &m.MessageType, &m.Timestamp, &m.ReplyTo, &m.RefID, &meta, &m.hasOps, &m.ExpiresAt) {
				break
			}
			rows, edge = rows+1, seq
			if m.Expired(now) || m.MessageType == "" {
				// Expired: its TTL removes the row within the second. No type: what an
				// expired row's later has_ops mark left (cassandra_retention.go).
				continue
			}
			m.Seq = uint64(seq)
			if len(meta) > 0 {
				m.Meta = json.RawMessage(meta)
			}
			out = append(out, m)
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("read bucket %s: %w", time.UnixMilli(r.bucket).UTC().Format(time.RFC3339), err)
		}
		if rows < want || len(out) >= limit {
			break
		}
		if fwd {
			lo = edge + 1
		} else {
			hi = edge - 1
		}
	}
	return out, nil
}

// LastSeq implements Store.
func (s *CassandraStore) LastSeq(ctx context.Context, chatID string) (uint64, error) {
	if chatID == "" {
		return 0, nil
	}
	var seq int64
	err := s.sess.Query(cqlLastSeq, chatID).WithContext(ctx).Idempotent(true).Scan(&seq)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, fmt.Errorf("cassandra: last seq %s: %w", chatID, err)
	}
	return uint64(seq), nil
}

// MessageSeq implements Store. If messageID was stored under several seqs, it
// returns the lowest.
func (s *CassandraStore) MessageSeq(ctx context.Context, chatID, messageID string) (uint64, error) {
	if chatID == "" || messageID == "" {
		return 0, ErrNotFound
	}
	var seq int64
	err := s.sess.Query(cqlMessageSeq, chatID, messageID).WithContext(ctx).Idempotent(true).Scan(&seq)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("cassandra: message seq %s/%s: %w", chatID, messageID, err)
	}
	return uint64(seq), nil
}
