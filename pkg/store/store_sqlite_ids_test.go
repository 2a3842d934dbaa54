package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

// TestSQLiteMessageSeqsSizes: MessageSeqs answers the same whatever the number of
// keys, across the prepared statements' sizes (the last key repeated to fill one)
// and the 256-key chunks: each stored key with its seq, nothing else.
func TestSQLiteMessageSeqsSizes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "ids.db"))
	require.NoError(t, err)
	defer s.Close()
	now := time.Now().UTC()
	_, _, err = s.CreateChat(ctx, Chat{ID: "c", Kind: KindGroup, CreatedBy: "alice", CreatedAt: now},
		[]Member{{ChatID: "c", UserID: "alice", Role: RoleAdmin, JoinedAt: now}})
	require.NoError(t, err)
	var ms []protocol.Message
	for i := 1; i <= 400; i++ {
		ms = append(ms, protocol.Message{ChatID: "c", Seq: uint64(i), MessageID: fmt.Sprintf("m%d", 2*i), SenderID: "alice",
			Content: "x", MessageType: protocol.TypeText, Timestamp: now.UnixMilli()})
	}
	require.NoError(t, s.AppendMessages(ctx, ms))
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 100, 255, 256, 257, 600} {
		keys := make([]MessageKey, n)
		want := map[MessageKey]uint64{}
		for i := range keys {
			keys[i] = MessageKey{ChatID: "c", MessageID: fmt.Sprintf("m%d", i+1)} // odd IDs were never stored
			if (i+1)%2 == 0 && i+1 <= 800 {
				want[keys[i]] = uint64((i + 1) / 2)
			}
		}
		got, err := s.MessageSeqs(ctx, keys)
		require.NoError(t, err, n)
		require.Equal(t, want, got, "%d keys", n)
	}
}

// BenchmarkSQLiteMessageSeqs is the sequencer's ID prefetch of a drain of 12
// messages, none stored yet (the common case). Run with
// go test ./pkg/store -run '^$' -bench SQLiteMessageSeqs -benchmem
func BenchmarkSQLiteMessageSeqs(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "ids.db"))
	require.NoError(b, err)
	defer s.Close()
	keys := make([]MessageKey, 12)
	for i := range keys {
		keys[i] = MessageKey{ChatID: fmt.Sprintf("dm-%d", i), MessageID: fmt.Sprintf("m%d", i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.MessageSeqs(ctx, keys); err != nil {
			b.Fatal(err)
		}
	}
}
