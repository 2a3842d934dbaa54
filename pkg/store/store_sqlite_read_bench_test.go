package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// benchReadChats is how many direct chats BenchmarkSQLiteRead's store holds
// (NATTER_BENCH_CHATS overrides it); each user is in benchChatsPerUser of them, as in
// the 1M-chat bench run (2,000 users in ~1,000 chats each), so the user count follows.
const (
	benchReadChats    = 100_000
	benchChatsPerUser = 1000
	benchMsgsPerChat  = 4
)

// fillReadBench writes chats direct chats straight into s's tables, in one
// transaction: two members each, benchMsgsPerChat messages, a read state per member
// somewhere between 0 and the last seq. It returns the number of users.
func fillReadBench(tb testing.TB, s *SQLiteStore, chats int) int {
	ctx := context.Background()
	users := max(2*chats/benchChatsPerUser, 2)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	prep := func(q string) func(args ...any) {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			tb.Fatal(err)
		}
		return func(args ...any) {
			if _, err := st.ExecContext(ctx, args...); err != nil {
				tb.Fatal(err)
			}
		}
	}
	chat := prep(`INSERT INTO chats (id, kind, created_by, created_at, last_seq, last_ts, last_msg_seq, last_message)
		VALUES (?, 'direct', ?, ?, ?, ?, ?, ?)`)
	member := prep(`INSERT INTO members (chat_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)`)
	message := prep(`INSERT INTO messages (chat_id, seq, message_id, sender_id, content, message_type, ts)
		VALUES (?, ?, ?, ?, ?, 'text', ?)`)
	read := prep(`INSERT INTO read_state (chat_id, user_id, delivered, read) VALUES (?, ?, ?, ?)`)
	rnd := rand.New(rand.NewPCG(1, 2))
	content := strings.Repeat("x", 100)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for j := range chats {
		id := benchChatID(j)
		a := j % users
		b := (a + 1 + (j/users)%(users-1)) % users
		ua, ub := benchUserID(a), benchUserID(b)
		ts := t0 + int64(j)*1000
		var last protocol.Message
		for seq := 1; seq <= benchMsgsPerChat; seq++ {
			sender := ua
			if seq%2 == 0 {
				sender = ub
			}
			last = protocol.Message{ChatID: id, Seq: uint64(seq), MessageID: id + "-" + strconv.Itoa(seq), SenderID: sender,
				Content: content, MessageType: protocol.TypeText, Timestamp: ts + int64(seq)}
			message(id, seq, last.MessageID, sender, content, last.Timestamp)
		}
		body, _ := json.Marshal(last)
		chat(id, ua, ts, benchMsgsPerChat, last.Timestamp, benchMsgsPerChat, body)
		for _, u := range []string{ua, ub} {
			member(id, u, ts)
			r := rnd.IntN(benchMsgsPerChat + 1)
			read(id, u, r, r)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
	return users
}

func benchChatID(j int) string { return fmt.Sprintf("chat-%07d", j) }
func benchUserID(i int) string { return fmt.Sprintf("user-%05d", i) }

// BenchmarkSQLiteRead measures the hot reads on a store of benchReadChats direct
// chats (NATTER_BENCH_CHATS), each op on a random chat or user. Badge/UserChatsPages
// is the notifier's badge as it was (pages of 500 of UserChats until a short page),
// Badge/UnreadTotal as it is. Run with
// go test ./pkg/store -run '^$' -bench SQLiteRead -benchmem
func BenchmarkSQLiteRead(b *testing.B) {
	ctx := context.Background()
	chats := benchReadChats
	if v, err := strconv.Atoi(os.Getenv("NATTER_BENCH_CHATS")); err == nil && v > 0 {
		chats = v
	}
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "read.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now()
	users := fillReadBench(b, s, chats)
	b.Logf("%d chats, %d users, filled in %v", chats, users, time.Since(t0).Round(time.Millisecond))
	rnd := rand.New(rand.NewPCG(3, 4))
	anyChat := func() (string, string) {
		j := rnd.IntN(chats)
		return benchChatID(j), benchUserID(j % users)
	}
	for _, bc := range []struct {
		name string
		op   func() error
	}{
		{"GetMember", func() error {
			c, u := anyChat()
			_, err := s.GetMember(ctx, c, u)
			return err
		}},
		{"Members", func() error {
			c, _ := anyChat()
			_, err := s.Members(ctx, c)
			return err
		}},
		{"LastSeq", func() error {
			c, _ := anyChat()
			_, err := s.LastSeq(ctx, c)
			return err
		}},
		{"GetReadState", func() error {
			c, u := anyChat()
			_, err := s.GetReadState(ctx, c, u)
			return err
		}},
		{"HistoryNewest", func() error {
			c, _ := anyChat()
			_, err := s.History(ctx, c, HistoryQuery{Limit: 50})
			return err
		}},
		{"HistoryForward", func() error {
			c, _ := anyChat()
			_, err := s.History(ctx, c, HistoryQuery{Dir: Forward, After: 1, Limit: 50})
			return err
		}},
		{"UserChats100", func() error {
			_, err := s.UserChats(ctx, benchUserID(rnd.IntN(users)), 100, 0)
			return err
		}},
		{"Badge/UserChatsPages", func() error {
			u := benchUserID(rnd.IntN(users))
			for off := 0; off < 2000; off += 500 {
				cs, err := s.UserChats(ctx, u, 500, off)
				if err != nil || len(cs) < 500 {
					return err
				}
			}
			return nil
		}},
		{"Badge/UnreadTotal", func() error {
			c, u := anyChat()
			_, err := s.UnreadTotal(ctx, u, c)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
