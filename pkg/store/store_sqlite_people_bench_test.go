package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// BenchmarkSQLiteSharesChat measures the consent rule's bulk question for a bulk
// add of 10,000 users (gateway/consent.go): which of them share a chat with the
// adder, who is in 50 chats, one of them of 5,000 members. Reported per added user
// (ns/user): the cost a bulk add pays instead of a round trip per user.
func BenchmarkSQLiteSharesChat(b *testing.B) {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now()
	for c := range 50 {
		size := 10
		if c == 0 {
			size = 5000
		}
		ms := []store.Member{{UserID: "adder", Role: store.RoleAdmin, JoinedAt: now}}
		for i := range size {
			ms = append(ms, store.Member{UserID: fmt.Sprintf("c%du%d", c, i), Role: store.RoleMember, JoinedAt: now})
		}
		id := fmt.Sprintf("chat%d", c)
		for i := range ms {
			ms[i].ChatID = id
		}
		if _, _, err := s.CreateChat(ctx, store.Chat{ID: id, Kind: store.KindGroup, CreatedBy: "adder", CreatedAt: now}, ms); err != nil {
			b.Fatal(err)
		}
	}
	others := make([]string, 10_000)
	for i := range others {
		others[i] = fmt.Sprintf("c0u%d", i) // half share chat0 with the adder, half are strangers
	}
	b.ResetTimer()
	for range b.N {
		got, err := s.SharesChat(ctx, "adder", others)
		if err != nil || len(got) != 5000 {
			b.Fatalf("%d shared, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(others)), "ns/user")
}
