package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

// TestSQLiteMigration3Backfills: a database written by a binary before migration 3
// (message operations, search) is upgraded in place: its messages become searchable
// and its chats keep their last message.
func TestSQLiteMigration3Backfills(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE schema_version (version INTEGER NOT NULL)`)
	require.NoError(t, err)
	for i, m := range sqliteMigrations[:2] {
		_, err = db.Exec(m)
		require.NoError(t, err)
		_, err = db.Exec(`INSERT INTO schema_version (version) VALUES (?)`, i+1)
		require.NoError(t, err)
	}
	_, err = db.Exec(`INSERT INTO chats (id, kind, created_by, created_at, last_seq, last_ts, last_message)
		VALUES ('c', 'group', 'alice', 1, 2, 20, '{"chatId":"c","seq":2,"messageId":"m2","senderId":"alice","content":"second word","messageType":"text"}');
		INSERT INTO members (chat_id, user_id, role, joined_at) VALUES ('c', 'alice', 'admin', 1);
		INSERT INTO messages (chat_id, seq, message_id, sender_id, content, message_type, ts)
			VALUES ('c', 1, 'm1', 'alice', 'first word', 'text', 10), ('c', 2, 'm2', 'alice', 'second word', 'text', 20),
			('c', 3, 'm3', 'alice', '', 'system', 30)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	got, err := s.Search(ctx, "alice", SearchQuery{Text: "word"})
	require.NoError(t, err)
	require.Len(t, got, 2, "old messages are indexed")
	chats, err := s.UserChats(ctx, "alice", 0, 0)
	require.NoError(t, err)
	require.Equal(t, "second word", chats[0].LastMessage.Content)
	require.EqualValues(t, 20, chats[0].LastActivity.UnixMilli())
}

// TestSQLiteMigration10KeepsTheIndex: a database from before the search index was
// fed in bulk keeps its index: its messages are found, an edit of one replaces its
// words, and an old message that had no text becomes searchable when edited.
func TestSQLiteMigration10KeepsTheIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE schema_version (version INTEGER NOT NULL)`)
	require.NoError(t, err)
	for i, m := range sqliteMigrations[:9] {
		_, err = db.Exec(m)
		require.NoError(t, err)
		_, err = db.Exec(`INSERT INTO schema_version (version) VALUES (?)`, i+1)
		require.NoError(t, err)
	}
	// As the binary before migration 10 stored them: a document for m1 and m2, none
	// for m3 (no text).
	_, err = db.Exec(`INSERT INTO chats (id, kind, created_by, created_at, last_seq, last_ts) VALUES ('c', 'group', 'alice', 1, 3, 30);
		INSERT INTO members (chat_id, user_id, role, joined_at) VALUES ('c', 'alice', 'admin', 1);
		INSERT INTO messages (chat_id, seq, message_id, sender_id, content, message_type, ts)
			VALUES ('c', 1, 'm1', 'alice', 'first word', 'text', 10), ('c', 2, 'm2', 'alice', 'second word', 'text', 20),
			('c', 3, 'm3', 'alice', '', 'text', 30);
		INSERT INTO search_docs (id, chat_id, seq) VALUES (7, 'c', 1), (9, 'c', 2);
		INSERT INTO search_fts (rowid, content) VALUES (7, 'first word'), (9, 'second word');`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	found := func(q string) (seqs []uint64) {
		got, err := s.Search(ctx, "alice", SearchQuery{Text: q})
		require.NoError(t, err)
		for _, m := range got {
			seqs = append(seqs, m.Seq)
		}
		return seqs
	}
	require.Equal(t, []uint64{2, 1}, found("word"), "the old index is kept")
	edit := func(seq uint64, ref, text string) protocol.Message {
		return protocol.Message{ChatID: "c", Seq: seq, MessageID: "e" + ref, SenderID: "alice", MessageType: protocol.TypeEdit,
			RefID: ref, Content: text, Timestamp: int64(seq) * 10}
	}
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{edit(4, "m1", "changed text"), edit(5, "m3", "late word")}))
	require.Equal(t, []uint64{3, 2}, found("word"))
	require.Equal(t, []uint64{1}, found("changed"))
	var next, indexed int64
	require.NoError(t, s.r.QueryRow(`SELECT next_doc, indexed FROM search_state`).Scan(&next, &indexed))
	require.EqualValues(t, 11, next, "IDs go on after the highest old one (m3 took 10)")
	require.Equal(t, next, indexed)
}
