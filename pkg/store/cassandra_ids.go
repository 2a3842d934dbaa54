package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"
)

// messageSeqsParallel bounds the concurrent lookups of one MessageSeqs call.
const messageSeqsParallel = 32

// MessageSeqs implements Store: one single-partition read of message_ids per key,
// run concurrently (token-aware, so each goes straight to a replica of its key),
// so a batch costs about one round trip rather than one per key. A multi-partition
// IN would make one coordinator gather them all.
func (s *CassandraStore) MessageSeqs(ctx context.Context, keys []MessageKey) (map[MessageKey]uint64, error) {
	out := make(map[MessageKey]uint64, len(keys))
	var mu sync.Mutex // guards out
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(messageSeqsParallel)
	seen := make(map[MessageKey]struct{}, len(keys))
	for _, k := range keys {
		if _, dup := seen[k]; dup || k.ChatID == "" || k.MessageID == "" {
			continue
		}
		seen[k] = struct{}{}
		g.Go(func() error {
			var seq int64
			err := s.sess.Query(cqlMessageSeq, k.ChatID, k.MessageID).WithContext(gctx).Idempotent(true).Scan(&seq)
			switch {
			case errors.Is(err, gocql.ErrNotFound):
				return nil
			case err != nil:
				return fmt.Errorf("cassandra: message seq %s/%s: %w", k.ChatID, k.MessageID, err)
			}
			mu.Lock()
			out[k] = uint64(seq)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
