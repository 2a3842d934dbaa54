package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
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

// withoutStoredIDs returns msgs without those whose (chat, MessageID) is stored
// under another seq, or appears earlier in msgs with another seq: a chat holds a message ID
// once (Store.AppendMessages). The sequencer never sequences an ID twice
// (sequencer/ids.go); this read before the write is the store's second net, one
// concurrent round of key reads per batch. It is not a transaction: two persisters
// racing to store the same ID under two seqs could both pass it.
func (s *CassandraStore) withoutStoredIDs(ctx context.Context, msgs []protocol.Message) ([]protocol.Message, error) {
	keys := make([]MessageKey, 0, len(msgs))
	first := make(map[MessageKey]uint64, len(msgs))
	for i := range msgs {
		k := MessageKey{ChatID: msgs[i].ChatID, MessageID: msgs[i].MessageID}
		if _, ok := first[k]; !ok {
			first[k] = msgs[i].Seq
		}
		keys = append(keys, k)
	}
	stored, err := s.MessageSeqs(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := msgs[:0:0]
	for i := range msgs {
		k := keys[i]
		if seq, ok := stored[k]; ok && seq != msgs[i].Seq || first[k] != msgs[i].Seq {
			continue
		}
		out = append(out, msgs[i])
	}
	return out, nil
}
