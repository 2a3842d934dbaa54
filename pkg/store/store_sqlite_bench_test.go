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

// BenchmarkSQLiteUnreadCount is a notification's unread count of a user who has
// not read backlog messages of a group: paging History forward from the watermark
// and counting what is Countable (what the notifier did for every notification, and
// still does while the persister has not stored the chat's newest message), against
// one UnreadBetween. Both give the same count (storetest's UnreadBetween).
//
//	go test ./pkg/store -run '^$' -bench SQLiteUnreadCount -benchmem
func BenchmarkSQLiteUnreadCount(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "unread.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	content := strings.Repeat("x", 100)
	for _, backlog := range []int{10, 100, 1000} {
		chat := fmt.Sprintf("g%d", backlog)
		if _, _, err := s.CreateChat(ctx, Chat{ID: chat, Kind: "group", CreatedBy: "alice", CreatedAt: t0}, []Member{
			{ChatID: chat, UserID: "alice", Role: RoleAdmin, JoinedAt: t0}, {ChatID: chat, UserID: "bob", Role: RoleMember, JoinedAt: t0}}); err != nil {
			b.Fatal(err)
		}
		msgs := make([]protocol.Message, backlog)
		for i := range msgs {
			msgs[i] = protocol.Message{ChatID: chat, Seq: uint64(i + 1), MessageID: fmt.Sprintf("m%d", i+1), SenderID: "alice",
				Content: content, MessageType: protocol.TypeText, Timestamp: t0.Add(time.Duration(i) * time.Second).UnixMilli()}
		}
		if err := s.AppendMessages(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		last := uint64(backlog)
		b.Run(fmt.Sprintf("backlog=%d/pages", backlog), func(b *testing.B) {
			for b.Loop() {
				var n, read uint64
				for n < MaxUnread && read < last {
					page, err := s.History(ctx, chat, HistoryQuery{Dir: Forward, After: read, Limit: MaxPage})
					if err != nil {
						b.Fatal(err)
					}
					for i := range page {
						if page[i].Seq <= last && Countable(&page[i], "bob") {
							n++
						}
					}
					if len(page) < MaxPage {
						break
					}
					read = page[len(page)-1].Seq
				}
				if n != last {
					b.Fatalf("counted %d, want %d", n, last)
				}
			}
		})
		b.Run(fmt.Sprintf("backlog=%d/count", backlog), func(b *testing.B) {
			for b.Loop() {
				n, err := s.UnreadBetween(ctx, chat, "bob", 0, last)
				if err != nil || n != last {
					b.Fatalf("counted %d, %v; want %d", n, err, last)
				}
			}
		})
	}
}
