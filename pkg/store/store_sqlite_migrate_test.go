package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

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
