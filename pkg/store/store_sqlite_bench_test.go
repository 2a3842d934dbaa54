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
//
// sync=FULL is what Natter runs; sync=NORMAL (no fsync per commit, what it ran
// before) is there to show what the durable commit costs, measured side by side.
func BenchmarkSQLiteAppend(b *testing.B) {
	for _, tc := range []struct {
		batch, chats int
		sync         string
	}{{1, 1, "FULL"}, {1, 1, "NORMAL"}, {100, 100, "FULL"}, {100, 100, "NORMAL"},
		{500, 100, "FULL"}, {500, 100, "NORMAL"}, {500, 1, "FULL"}, {500, 1, "NORMAL"}} {
		b.Run(fmt.Sprintf("batch=%d/chats=%d/sync=%s", tc.batch, tc.chats, tc.sync), func(b *testing.B) {
			defer func(old string) { sqliteWriterSync = old }(sqliteWriterSync)
			sqliteWriterSync = tc.sync
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
