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

// BenchmarkSQLiteNotificationReads is the store reads the notifier makes for one
// notification of a direct chat: "single" the seven single reads it made (the
// mute, the membership, the read state, the unread count, the badge, the chat and
// the devices), "recipient" the four it makes since the first four are one
// (Recipient). The store holds 2,000 direct chats of 20 messages each, as the backend
// bench's 2,000 chats; each op reads for the next chat's recipient. "commits"
// appends a message to another chat before each notification, untimed: every
// commit makes the read connections drop their page cache (a WAL read transaction
// that finds the database changed starts from an empty cache), which is what the
// notifier meets while the persister writes. The sub-benchmarks per call show what
// each read costs.
//
//	go test ./pkg/store -run '^$' -bench SQLiteNotificationReads -benchmem
func BenchmarkSQLiteNotificationReads(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "notify.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const chats, msgs = 2000, 20
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	content := strings.Repeat("x", 100)
	batch := make([]protocol.Message, 0, 500)
	for c := range chats {
		id, a, r := fmt.Sprintf("d%d", c), fmt.Sprintf("u%d", c), fmt.Sprintf("u%d", (c+1)%chats)
		if _, _, err := s.CreateChat(ctx, Chat{ID: id, Kind: KindDirect, CreatedBy: a, CreatedAt: t0},
			[]Member{{ChatID: id, UserID: a, Role: RoleMember, JoinedAt: t0}, {ChatID: id, UserID: r, Role: RoleMember, JoinedAt: t0}}); err != nil {
			b.Fatal(err)
		}
		for i := range msgs {
			batch = append(batch, protocol.Message{ChatID: id, Seq: uint64(i + 1), MessageID: fmt.Sprintf("m%d-%d", c, i+1), SenderID: a,
				Content: content, MessageType: protocol.TypeText, Timestamp: t0.Add(time.Duration(i) * time.Second).UnixMilli()})
		}
		if len(batch) >= 480 {
			if err := s.AppendMessages(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.AppendMessages(ctx, batch); err != nil {
		b.Fatal(err)
	}
	recipient := func(c int) (chat, uid string) { return fmt.Sprintf("d%d", c), fmt.Sprintf("u%d", (c+1)%chats) }
	calls := []struct {
		name string
		call func(chat, uid string) error
	}{
		{"mute", func(chat, uid string) error { _, err := s.GetMute(ctx, chat, uid); return err }},
		{"member", func(chat, uid string) error { _, err := s.GetMember(ctx, chat, uid); return err }},
		{"readstate", func(chat, uid string) error { _, err := s.GetReadState(ctx, chat, uid); return err }},
		{"unread", func(chat, uid string) error { _, err := s.UnreadBetween(ctx, chat, uid, 0, msgs); return err }},
		{"badge", func(chat, uid string) error { _, err := s.UnreadTotal(ctx, uid, chat); return err }},
		{"chat", func(chat, uid string) error { _, err := s.GetChat(ctx, chat); return err }},
		{"devices", func(chat, uid string) error { _, err := s.Devices(ctx, uid); return err }},
	}
	// What the notifier reads since Recipient: one read for the chat, membership,
	// mute and read state.
	combined := []struct {
		name string
		call func(chat, uid string) error
	}{
		{"recipient", func(chat, uid string) error { _, err := s.Recipient(ctx, chat, uid); return err }},
		calls[3], calls[4], calls[6], // unread, badge, devices
	}
	extra := uint64(msgs)
	commit := func(c int) {
		extra++
		chat := fmt.Sprintf("d%d", (c+chats/2)%chats)
		if err := s.AppendMessages(ctx, []protocol.Message{{ChatID: chat, Seq: extra, MessageID: fmt.Sprintf("x%d", extra),
			SenderID: "u0", Content: content, MessageType: protocol.TypeText, Timestamp: t0.UnixMilli()}}); err != nil {
			b.Fatal(err)
		}
	}
	for _, set := range []struct {
		name  string
		calls []struct {
			name string
			call func(chat, uid string) error
		}
	}{{"single", calls}, {"recipient", combined}} {
		for _, commits := range []bool{false, true} {
			b.Run(fmt.Sprintf("all/reads=%s/commits=%v", set.name, commits), func(b *testing.B) {
				c := 0
				for b.Loop() {
					c = (c + 1) % chats
					if commits {
						b.StopTimer()
						commit(c)
						b.StartTimer()
					}
					chat, uid := recipient(c)
					for _, call := range set.calls {
						if err := call.call(chat, uid); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
	for _, call := range append(calls, combined[0]) {
		b.Run(call.name, func(b *testing.B) {
			c := 0
			for b.Loop() {
				c = (c + 1) % chats
				if err := call.call(recipient(c)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
