package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

// appendPerMessage is AppendMessages as it was before it wrote chat rows and read
// states once per batch: a statement of each per message. It is the reference the
// test below holds AppendMessages to.
func (s *SQLiteStore) appendPerMessage(ctx context.Context, msgs []protocol.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO messages
		(chat_id, seq, message_id, sender_id, content, message_type, ts, reply_to, ref_id, meta, doc_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer ins.Close()
	last, err := tx.PrepareContext(ctx, `UPDATE chats SET last_seq = ?, last_ts = ? WHERE id = ? AND last_seq < ?`)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer last.Close()
	lastBoth, err := tx.PrepareContext(ctx, `UPDATE chats SET last_seq = ?, last_ts = ?, last_msg_seq = ?, last_message = ?
		WHERE id = ? AND last_seq < ?`)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer lastBoth.Close()
	lastMsg, err := tx.PrepareContext(ctx, `UPDATE chats SET last_msg_seq = ?, last_message = ?
		WHERE id = ? AND last_msg_seq < ?`)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer lastMsg.Close()
	ops := newOpApplier(tx, nil)
	defer ops.close()
	own, err := tx.PrepareContext(ctx, `INSERT INTO read_state (chat_id, user_id, delivered, read)
		VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET
		delivered = MAX(delivered, excluded.delivered), read = MAX(read, excluded.read)`)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer own.Close()
	for i := range msgs {
		m := &msgs[i]
		var doc any
		if protocol.Searchable(m.MessageType) {
			if doc, err = ops.peekDoc(ctx); err != nil {
				return err
			}
		}
		res, err := ins.ExecContext(ctx, m.ChatID, m.Seq, m.MessageID, m.SenderID, m.Content,
			m.MessageType, m.Timestamp, m.ReplyTo, m.RefID, nullJSON(m.Meta), doc)
		if err != nil {
			return fmt.Errorf("sqlite: append %s/%d: %w", m.ChatID, m.Seq, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // already stored
		}
		if doc != nil {
			ops.takeDoc()
		}
		// newest: m is above the chat's last seq, so nothing referencing it can be
		// stored yet (an operation always has a higher seq than its target).
		var newest bool
		if protocol.IsOperation(m.MessageType) {
			res, err = last.ExecContext(ctx, m.Seq, m.Timestamp, m.ChatID, m.Seq)
		} else {
			body, _ := json.Marshal(m)
			res, err = lastBoth.ExecContext(ctx, m.Seq, m.Timestamp, m.Seq, body, m.ChatID, m.Seq)
			if n, _ := res.RowsAffected(); err == nil && n == 0 {
				_, err = lastMsg.ExecContext(ctx, m.Seq, body, m.ChatID, m.Seq)
			}
		}
		if err != nil {
			return fmt.Errorf("sqlite: append %s/%d: last message: %w", m.ChatID, m.Seq, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			newest = true
		}
		if err := ops.apply(ctx, m, newest); err != nil {
			return fmt.Errorf("sqlite: append %s/%d: %w", m.ChatID, m.Seq, err)
		}
		// One's own message counts as delivered and read.
		if _, err := own.ExecContext(ctx, m.ChatID, m.SenderID, m.Seq, m.Seq); err != nil {
			return fmt.Errorf("sqlite: append %s/%d: sender read state: %w", m.ChatID, m.Seq, err)
		}
	}
	if err := ops.flush(ctx); err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append: commit: %w", err)
	}
	return nil
}

func dumpDB(t *testing.T, db *sql.DB) map[string][]string {
	out := map[string][]string{}
	for name, q := range map[string]string{
		"chats":      `SELECT id, last_seq, last_ts, last_msg_seq, COALESCE(last_message, '') FROM chats ORDER BY id`,
		"read_state": `SELECT chat_id, user_id, delivered, read FROM read_state ORDER BY chat_id, user_id`,
		"messages":   `SELECT chat_id, seq, message_id, content, edited, deleted, edit_seq, state_seq FROM messages ORDER BY chat_id, seq`,
		"reactions":  `SELECT chat_id, message_id, emoji, user_id, seq, present FROM reactions ORDER BY 1,2,3,4`,
		// What the index finds (the test's texts are "text N" and "edited").
		"search": `SELECT m.chat_id, m.seq FROM search_fts f JOIN messages m ON m.doc_id = f.rowid
			WHERE search_fts MATCH 'text OR edited' ORDER BY 1,2`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], fmt.Sprintf("%v", vals))
		}
		rows.Close()
	}
	return out
}

// TestSQLiteAppendMatchesPerMessage stores the same random batches (text, edits,
// deletes, reactions, system messages, a chat that does not exist, shuffled batches,
// duplicates and messages from the future) with AppendMessages and with the per-message
// reference, and requires identical tables and search results. Rounds index the
// search documents at every append, every few appends, or only when searched, so
// edits and deletes meet both indexed and pending documents.
func TestSQLiteAppendMatchesPerMessage(t *testing.T) {
	ctx := context.Background()
	defer func(n int64) { sqliteIndexBatch = n }(sqliteIndexBatch)
	for round := 0; round < 21; round++ {
		sqliteIndexBatch = []int64{1, 7, 1000}[round%3]
		r := rand.New(rand.NewPCG(uint64(round), 7))
		a, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "a.db"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "b.db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*SQLiteStore{a, b} {
			for c := 0; c < 3; c++ {
				id := fmt.Sprintf("c%d", c)
				if _, _, err := s.CreateChat(ctx, Chat{ID: id, Kind: KindGroup, CreatedBy: "u1", CreatedAt: time.Unix(1, 0)},
					[]Member{{ChatID: id, UserID: "u1", Role: RoleAdmin}, {ChatID: id, UserID: "u2", Role: RoleMember}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		var all []protocol.Message
		seq := map[string]uint64{}
		for i := 0; i < 120; i++ {
			chat := fmt.Sprintf("c%d", r.IntN(4)) // c3 does not exist
			seq[chat]++
			m := protocol.Message{ChatID: chat, Seq: seq[chat], MessageID: fmt.Sprintf("m%d", i), SenderID: fmt.Sprintf("u%d", 1+r.IntN(3)),
				Content: fmt.Sprintf("text %d", i), MessageType: protocol.TypeText, Timestamp: int64(1000 + i)}
			var prev []protocol.Message
			for _, p := range all {
				if p.ChatID == chat && p.MessageType == protocol.TypeText {
					prev = append(prev, p)
				}
			}
			if len(prev) > 0 {
				tgt := prev[r.IntN(len(prev))]
				switch r.IntN(8) {
				case 0:
					m.MessageType, m.RefID, m.SenderID, m.Content = protocol.TypeEdit, tgt.MessageID, tgt.SenderID, "edited"
				case 1:
					m.MessageType, m.RefID, m.Content = protocol.TypeDelete, tgt.MessageID, ""
				case 2:
					m.MessageType, m.RefID, m.Content = protocol.TypeReact, tgt.MessageID, ""
					m.Meta, _ = json.Marshal(protocol.ReactionEvent{Emoji: ":+1:", Remove: r.IntN(3) == 0})
				case 3:
					m.MessageType, m.Content = protocol.TypeSystem, ""
					m.Meta = json.RawMessage(`{"event":"chat_renamed","name":"x"}`)
				}
			}
			all = append(all, m)
		}
		// Batches of random size, shuffled a little (persisters race), with duplicates.
		for len(all) > 0 {
			n := 1 + r.IntN(min(len(all), 25))
			batch := append([]protocol.Message(nil), all[:n]...)
			all = all[n:]
			if r.IntN(3) == 0 {
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			}
			if r.IntN(4) == 0 && len(all) > 0 {
				// a message from the future first, then it comes again later
				batch = append(batch, all[r.IntN(len(all))])
			}
			if r.IntN(4) == 0 {
				batch = append(batch, batch[r.IntN(len(batch))])
			}
			if err := a.appendPerMessage(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if err := b.AppendMessages(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []*SQLiteStore{a, b} {
			if err := s.indexPending(ctx); err != nil {
				t.Fatal(err)
			}
		}
		da, db := dumpDB(t, a.w), dumpDB(t, b.w)
		if !reflect.DeepEqual(da, db) {
			for k := range da {
				if !reflect.DeepEqual(da[k], db[k]) {
					t.Errorf("round %d: %s differs:\nold %v\nnew %v", round, k, da[k], db[k])
				}
			}
			t.FailNow()
		}
		a.Close()
		b.Close()
	}
}

// TestSQLiteWriterSyncsEveryCommit: the persister acks NATS once AppendMessages
// returns, so the writer must fsync each commit (synchronous=FULL = 2); WAL mode's
// NORMAL (1) could lose acked commits on a power cut.
func TestSQLiteWriterSyncsEveryCommit(t *testing.T) {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "natter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode int
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 {
		t.Fatalf("writer synchronous pragma is %d, want 2 (FULL)", mode)
	}
}

// TestSQLiteCheckpointsInTheBackground: the writer leaves checkpoints to the
// background checkpointer (its wal_autocheckpoint is only a backstop), which
// copies the WAL into the database file without a write.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	defer func(d time.Duration) { sqliteCheckpointEvery = d }(sqliteCheckpointEvery)
	sqliteCheckpointEvery = 10 * time.Millisecond
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "natter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pages int
	if err := s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != sqliteWALBackstop {
		t.Fatalf("writer wal_autocheckpoint is %d pages, want the backstop %d", pages, sqliteWALBackstop)
	}
	if _, _, err := s.CreateChat(ctx, Chat{ID: "c", Kind: KindGroup, CreatedBy: "u1", CreatedAt: time.Unix(1, 0)},
		[]Member{{ChatID: "c", UserID: "u1", Role: RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(ctx, []protocol.Message{{ChatID: "c", Seq: 1, MessageID: "m1", SenderID: "u1",
		Content: "hello", MessageType: protocol.TypeText, Timestamp: 1}}); err != nil {
		t.Fatal(err)
	}
	// The checkpointer has copied every frame when a NOOP checkpoint of ours (it
	// copies nothing) reports as many frames copied as in the log.
	require.Eventually(t, func() bool {
		var busy, log, done int
		require.NoError(t, s.w.QueryRow(`PRAGMA wal_checkpoint(NOOP)`).Scan(&busy, &log, &done))
		return log > 0 && log == done
	}, 10*time.Second, 10*time.Millisecond, "WAL not checkpointed in the background")
}
