package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// benchChat opens a store holding one chat of n messages.
func benchChat(b *testing.B, n int) *store.SQLiteStore {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	batch := make([]protocol.Message, 0, 1000)
	for i := 1; i <= n; i++ {
		batch = append(batch, protocol.Message{ChatID: "c", Seq: uint64(i), MessageID: fmt.Sprintf("m%d", i),
			SenderID: "alice", Content: "hello world", MessageType: protocol.TypeText, Timestamp: int64(i)})
		if len(batch) == cap(batch) || i == n {
			if err := s.AppendMessages(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return s
}

// BenchmarkSQLiteOperationInBigChat compares storing one message with storing one
// operation (which also updates its target, the search index and reactions) in a
// chat of 20 000 messages: an operation must cost about what a message costs, not
// grow with the chat (store_sqlite_ops.go names its indexes for that). message_seq
// is the lookup the sequencer makes for every operation and reply.
// Run with go test -bench SQLiteOperationInBigChat ./pkg/store/
func BenchmarkSQLiteOperationInBigChat(b *testing.B) {
	const size = 20_000
	ctx := context.Background()
	react, _ := json.Marshal(protocol.ReactionEvent{Emoji: "👍"})
	for _, kind := range []string{"text", "edit", "delete", "react"} {
		b.Run(kind, func(b *testing.B) {
			s := benchChat(b, size)
			seq := uint64(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				seq++
				m := protocol.Message{ChatID: "c", Seq: seq, MessageID: fmt.Sprintf("x%d", i), SenderID: "alice",
					MessageType: kind, RefID: fmt.Sprintf("m%d", 1+i%size), Timestamp: int64(seq)}
				switch kind {
				case "text":
					m.RefID, m.Content = "", "another message"
				case "edit":
					m.Content = "edited text"
				case "react":
					m.Meta = react
				}
				if err := s.AppendMessages(ctx, []protocol.Message{m}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("message_seq", func(b *testing.B) {
		s := benchChat(b, size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.MessageSeq(ctx, "c", fmt.Sprintf("m%d", 1+i%size)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
