package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// BenchmarkSQLiteAppend measures the persister's store write: one AppendMessages
// call per batch, as the persister makes it. ns/op is per batch; msgs/s is the
// store's write rate. Run with go test -bench SQLiteAppend -benchmem ./pkg/store/
func BenchmarkSQLiteAppend(b *testing.B) {
	for _, tc := range []struct{ batch, chats int }{{1, 1}, {100, 100}, {500, 100}, {500, 1}} {
		b.Run(fmt.Sprintf("batch=%d/chats=%d", tc.batch, tc.chats), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for c := 0; c < tc.chats; c++ {
				id := fmt.Sprintf("chat-%d", c)
				if _, _, err := s.CreateChat(ctx, Chat{ID: id, Kind: KindDirect, CreatedBy: "u1", CreatedAt: time.Now()},
					[]Member{{ChatID: id, UserID: "u1", Role: RoleMember}, {ChatID: id, UserID: "u2", Role: RoleMember}}); err != nil {
					b.Fatal(err)
				}
			}
			seq := make([]uint64, tc.chats)
			batch := make([]protocol.Message, tc.batch)
			content := strings.Repeat("x", 100)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i := range batch {
					c := i % tc.chats
					seq[c]++
					batch[i] = protocol.Message{ChatID: fmt.Sprintf("chat-%d", c), Seq: seq[c], MessageID: fmt.Sprintf("m-%d-%d", c, seq[c]),
						SenderID: "u1", Content: content, MessageType: protocol.TypeText, Timestamp: time.Now().UnixMilli()}
				}
				if err := s.AppendMessages(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*tc.batch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
