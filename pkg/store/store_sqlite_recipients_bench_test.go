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

// fillRecipients stores what the notifier's large-chat pass reads: chats "g0"..
// "g2" whose members are users "u0000".. (g0 all n, g1 every second, g2 every
// third), messages from several senders in each, read states for most members
// (some past the last message, some behind, some delivered only) and one or two
// devices for every third user. It returns the users.
func fillRecipients(tb testing.TB, s *SQLiteStore, n int) []string {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
	}
	for g := range 3 {
		chat := fmt.Sprintf("g%d", g)
		var ms []Member
		for i, u := range users {
			if i%(g+1) == 0 {
				ms = append(ms, Member{ChatID: chat, UserID: u, Role: RoleMember, JoinedAt: now})
			}
		}
		_, _, err := s.CreateChat(ctx, Chat{ID: chat, Kind: KindGroup, CreatedBy: users[0], CreatedAt: now}, ms)
		require.NoError(tb, err)
		var msgs []protocol.Message
		for seq := 1; seq <= 12; seq++ {
			msgs = append(msgs, protocol.Message{ChatID: chat, Seq: uint64(seq), MessageID: fmt.Sprintf("%s-%d", chat, seq),
				SenderID: users[(seq*7)%n], Content: "x", MessageType: protocol.TypeText, Timestamp: now.UnixMilli()})
		}
		require.NoError(tb, s.AppendMessages(ctx, msgs))
		for i, m := range ms {
			if i%5 != 4 {
				_, err := s.SetReadState(ctx, chat, m.UserID, uint64(i%13), uint64(i%13)*uint64(i%2))
				require.NoError(tb, err)
			}
		}
	}
	for i, u := range users {
		if i%3 == 0 {
			require.NoError(tb, s.PutDevice(ctx, Device{UserID: u, DeviceID: "phone", Platform: "android", Provider: "fcm", Token: "t-" + u}))
		}
		if i%6 == 0 {
			require.NoError(tb, s.PutDevice(ctx, Device{UserID: u, DeviceID: "tablet", Platform: "ios", Provider: "apns", Token: "t2-" + u}))
		}
	}
	return users
}

// BenchmarkSQLiteRecipientReads is one batch of the notifier's large-chat pass:
// the read states, unread totals and devices of 500 members of a chat. Run with
// go test ./pkg/store -run '^$' -bench SQLiteRecipientReads -benchmem
func BenchmarkSQLiteRecipientReads(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "recipients.db"))
	require.NoError(b, err)
	defer s.Close()
	users := fillRecipients(b, s, 500)
	b.Run("ReadStates", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.ReadStates(ctx, "g0", users); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnreadTotals", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.UnreadTotals(ctx, users, "g0"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UsersDevices", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.UsersDevices(ctx, users); err != nil {
				b.Fatal(err)
			}
		}
	})
}
