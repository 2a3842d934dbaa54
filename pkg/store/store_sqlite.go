package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"

	_ "modernc.org/sqlite" // pure-Go SQLite driver: no cgo in the binary
)

// SQLiteStore is the embedded Store: one SQLite file in WAL mode. Writes go through a
// single connection (SQLite has one writer at a time anyway), reads through a pool.
type SQLiteStore struct {
	w   *sql.DB // one connection: every write
	r   *sql.DB // read pool
	ck  *checkpointer
	app appendStmts
	rd  readStmts
}

var _ Store = (*SQLiteStore)(nil)

// sqliteMigrations are applied in order; the index+1 is the schema version. Never edit
// a released entry: append a new one.
var sqliteMigrations = []string{
	`CREATE TABLE messages (
		chat_id TEXT NOT NULL, seq INTEGER NOT NULL, message_id TEXT NOT NULL,
		sender_id TEXT NOT NULL, content TEXT NOT NULL, message_type TEXT NOT NULL,
		ts INTEGER NOT NULL, reply_to TEXT NOT NULL DEFAULT '', ref_id TEXT NOT NULL DEFAULT '',
		meta BLOB, PRIMARY KEY (chat_id, seq)) WITHOUT ROWID;
	CREATE INDEX messages_by_id ON messages (chat_id, message_id);
	CREATE TABLE chats (
		id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
		created_by TEXT NOT NULL, created_at INTEGER NOT NULL,
		last_seq INTEGER NOT NULL DEFAULT 0, last_ts INTEGER NOT NULL DEFAULT 0,
		last_message BLOB) WITHOUT ROWID;
	CREATE TABLE members (
		chat_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
		joined_at INTEGER NOT NULL, PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;
	CREATE INDEX members_by_user ON members (user_id, chat_id);
	CREATE TABLE read_state (
		chat_id TEXT NOT NULL, user_id TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
		read INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;`,
	// 2: per-user chat mutes (notifier). until_ms 0 means until unmuted.
	`CREATE TABLE mutes (
		chat_id TEXT NOT NULL, user_id TEXT NOT NULL, until_ms INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;`,
	// 3: message operations (store_sqlite_ops.go), the chat list's last message in
	// its current state, and full-text search (store_sqlite_search.go).
	// edit_seq: seq of the edit whose text the message shows; state_seq: highest seq
	// of any operation applied to it. last_msg_seq: the chat's last message that is
	// not an operation. search_docs maps the FTS5 rowid to (chat, seq).
	`ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE messages ADD COLUMN edit_seq INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE messages ADD COLUMN state_seq INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX messages_by_ref ON messages (chat_id, ref_id) WHERE ref_id != '';
	CREATE TABLE reactions (
		chat_id TEXT NOT NULL, message_id TEXT NOT NULL, emoji TEXT NOT NULL, user_id TEXT NOT NULL,
		seq INTEGER NOT NULL, present INTEGER NOT NULL,
		PRIMARY KEY (chat_id, message_id, emoji, user_id)) WITHOUT ROWID;
	ALTER TABLE chats ADD COLUMN last_msg_seq INTEGER NOT NULL DEFAULT 0;
	UPDATE chats SET last_msg_seq = last_seq;
	CREATE TABLE search_docs (id INTEGER PRIMARY KEY, chat_id TEXT NOT NULL, seq INTEGER NOT NULL,
		UNIQUE (chat_id, seq));
	CREATE VIRTUAL TABLE search_fts USING fts5(content, content='', contentless_delete=1,
		tokenize='unicode61 remove_diacritics 2');
	INSERT INTO search_docs (chat_id, seq) SELECT chat_id, seq FROM messages
		WHERE content != '' AND message_type NOT IN ('system', 'edit', 'delete', 'react');
	INSERT INTO search_fts (rowid, content) SELECT d.id, m.content FROM search_docs d
		JOIN messages m ON m.chat_id = d.chat_id AND m.seq = d.seq;`,
	// 4: messages_by_ref without the partial condition, so statements can name it
	// (INDEXED BY) with a bound ref_id: the planner cannot prove a parameter is not ''.
	`DROP INDEX messages_by_ref;
	CREATE INDEX messages_by_ref ON messages (chat_id, ref_id);`,
	// 5: push devices (store_sqlite_devices.go); a provider token belongs to one device.
	`CREATE TABLE devices (
		user_id TEXT NOT NULL, device_id TEXT NOT NULL, platform TEXT NOT NULL,
		provider TEXT NOT NULL, token TEXT NOT NULL, updated_at INTEGER NOT NULL,
		PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;
	CREATE UNIQUE INDEX devices_by_token ON devices (provider, token);`,
	// 6: profiles, blocks and group invitations (store_sqlite_people.go).
	`CREATE TABLE profiles (
		user_id TEXT PRIMARY KEY, display_name TEXT NOT NULL DEFAULT '', avatar TEXT NOT NULL DEFAULT '',
		group_adds TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL) WITHOUT ROWID;
	CREATE TABLE blocks (
		blocker TEXT NOT NULL, blocked TEXT NOT NULL, created_at INTEGER NOT NULL,
		PRIMARY KEY (blocker, blocked)) WITHOUT ROWID;
	CREATE INDEX blocks_by_blocked ON blocks (blocked, blocker);
	CREATE TABLE invitations (
		user_id TEXT NOT NULL, chat_id TEXT NOT NULL, invited_by TEXT NOT NULL, role TEXT NOT NULL,
		created_at INTEGER NOT NULL, PRIMARY KEY (user_id, chat_id)) WITHOUT ROWID;`,
	// 7: end-to-end encryption (docs/e2ee.md): the key directory
	// (store_sqlite_keys.go) and the encrypted flag of a chat.
	`CREATE TABLE device_keys (
		user_id TEXT NOT NULL, device_id TEXT NOT NULL, identity_key TEXT NOT NULL,
		spk_id INTEGER NOT NULL, spk_key TEXT NOT NULL, spk_sig TEXT NOT NULL,
		revoked INTEGER NOT NULL DEFAULT 0, announced INTEGER NOT NULL DEFAULT 0,
		updated_at INTEGER NOT NULL, PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;
	CREATE TABLE one_time_keys (
		user_id TEXT NOT NULL, device_id TEXT NOT NULL, key_id INTEGER NOT NULL, key TEXT NOT NULL,
		PRIMARY KEY (user_id, device_id, key_id)) WITHOUT ROWID;
	ALTER TABLE chats ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;`,
	// 8: retention and deletion (store_sqlite_lifecycle.go). expires_at: ms since
	// the epoch, 0 never; the partial index is what the sweeper walks. chats.deleted
	// keeps a deleted chat's ID reserved; history_floors are per-user "clear history".
	`ALTER TABLE messages ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX messages_by_expiry ON messages (expires_at) WHERE expires_at > 0;
	ALTER TABLE chats ADD COLUMN message_ttl INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE chats ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE history_floors (
		chat_id TEXT NOT NULL, user_id TEXT NOT NULL, seq INTEGER NOT NULL,
		PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;`,
	// 9: a chat's admins without its members (store_sqlite_admins.go): the
	// last-admin rule reads them on every removal of an admin.
	`CREATE INDEX members_admins ON members (chat_id, user_id) WHERE role = 'admin';`,
	// 10: the search index fed in bulk (store_sqlite_index.go). A message's document
	// ID moves into its row (doc_id), which replaces search_docs and its per-message
	// (chat_id, seq) index; search_state holds the ID counter and the indexer's
	// watermark (everything stored so far is indexed).
	`ALTER TABLE messages ADD COLUMN doc_id INTEGER;
	UPDATE messages SET doc_id = d.id FROM search_docs d WHERE d.chat_id = messages.chat_id AND d.seq = messages.seq;
	CREATE UNIQUE INDEX messages_by_doc ON messages (doc_id) WHERE doc_id IS NOT NULL;
	DROP TABLE search_docs;
	CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 1), next_doc INTEGER NOT NULL, indexed INTEGER NOT NULL);
	INSERT INTO search_state (id, next_doc, indexed) SELECT 1, COALESCE(MAX(doc_id), 0) + 1, COALESCE(MAX(doc_id), 0) + 1 FROM messages;`,
	// 11: messages_by_ref holds operations only (ref_id != ''), as migration 3 had it:
	// the full index of migration 4 wrote an entry for every message, a B-tree insert
	// per message for nothing (issue 17). Statements that name it (INDEXED BY) say
	// ref_id != '' in so many words, which is what lets the planner use a partial index.
	`DROP INDEX messages_by_ref;
	CREATE INDEX messages_by_ref ON messages (chat_id, ref_id) WHERE ref_id != '';`,
}

// sqliteWriterCacheKiB is the writer connection's page cache, in KiB.
const sqliteWriterCacheKiB = 32 << 10

// sqliteWriterSync is the writer's synchronous pragma. Only the benchmark changes it,
// to measure what FULL costs against NORMAL.
var sqliteWriterSync = "FULL"

// OpenSQLite opens (creating if needed) the SQLite database at path and applies
// pending migrations. The directory is created with mode 0700.
func OpenSQLite(ctx context.Context, path string) (*SQLiteStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
	}
	// The writer commits with synchronous=FULL: in WAL mode NORMAL syncs the WAL only
	// at checkpoints, so a power cut could lose commits the persister has already
	// acked to JetStream, after which NATTER_LOG may drop them (docs/guarantees.md,
	// "Durability of the store"). The read pool never writes and keeps NORMAL.
	dsn := func(sync string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(" + sync + ")", "busy_timeout(10000)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		return "file:" + path + "?" + q.Encode()
	}
	// The writer checkpoints only as a backstop: store_sqlite_checkpoint.go. Its
	// page cache holds a persister batch's dirty pages (500 messages over as many
	// chats touch about 2,500 pages): with SQLite's default 2 MiB, a batch spilled
	// pages into the WAL before its commit and wrote them there again at the
	// commit. Batches of 2,000 over 10,000 or 30,000 chats cost the same with 64 MiB
	// (BenchmarkSQLitePersist), so 32 MiB stays.
	w, err := sql.Open("sqlite", dsn(sqliteWriterSync)+"&_txlock=immediate&"+url.Values{"_pragma": {
		fmt.Sprintf("wal_autocheckpoint(%d)", sqliteWALBackstop), fmt.Sprintf("journal_size_limit(%d)", sqliteWALLimit),
		fmt.Sprintf("cache_size(-%d)", sqliteWriterCacheKiB)}}.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn("NORMAL")+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	// Keep every read connection (the default keeps 2 idle): a closed one loses its
	// prepared statements and page cache, and a new one opens the file again.
	r.SetMaxIdleConns(4)
	s := &SQLiteStore{w: w, r: r}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, explainOpenError(path, err)
	}
	if err := s.prepareAppend(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepareRead(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.ck, err = startCheckpointer(dsn(sqliteWriterSync)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// explainOpenError names path in err, the first error from a new database file,
// and says what to do about the usual causes.
func explainOpenError(path string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "file is not a database"), strings.Contains(msg, "malformed"):
		return fmt.Errorf("sqlite: %s is not a usable SQLite database: %w (restore it from a backup or move it away; set store.sqlite-path)", path, err)
	case strings.Contains(msg, "unable to open database file"), strings.Contains(msg, "readonly"), strings.Contains(msg, "read-only"):
		return fmt.Errorf("sqlite: cannot open %s for writing: %w (check the file's and its directory's permissions and free space)", path, err)
	}
	return fmt.Errorf("sqlite: %s: %w", path, err)
}

func (s *SQLiteStore) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: migrate: read version: %w", err)
	}
	if v > len(sqliteMigrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this binary knows (%d): run a newer natter", v, len(sqliteMigrations))
	}
	for i := v; i < len(sqliteMigrations); i++ {
		if _, err := tx.ExecContext(ctx, sqliteMigrations[i]); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, i+1); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
	}
	return tx.Commit()
}

// appendStmts are AppendMessages' statements, prepared once on the writer (each
// transaction binds them to its connection with Tx.StmtContext instead of parsing the
// SQL again per batch).
type appendStmts struct {
	insert, chatState, setLast, setBoth, setLastMsg, ownRead *sql.Stmt
	// ops are opApplier's statements that every append runs, by their SQL.
	ops map[string]*sql.Stmt
}

func (s *SQLiteStore) prepareAppend(ctx context.Context) error {
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		// A (chat, seq) stored already is skipped (a retried batch), and so is a
		// message whose (chat, messageId) is stored under another seq: the
		// sequencer never sequences an ID twice (sequencer/ids.go), this is the
		// second net.
		{&s.app.insert, `INSERT OR IGNORE INTO messages
			(chat_id, seq, message_id, sender_id, content, message_type, ts, reply_to, ref_id, meta, expires_at, doc_id)
			SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
			WHERE NOT EXISTS (SELECT 1 FROM messages INDEXED BY messages_by_id
				WHERE chat_id = ?1 AND message_id = ?3 AND seq <> ?2)`},
		{&s.app.chatState, `SELECT last_seq, last_msg_seq FROM chats WHERE id = ?`},
		{&s.app.setLast, `UPDATE chats SET last_seq = ?, last_ts = ? WHERE id = ? AND last_seq < ?`},
		{&s.app.setBoth, `UPDATE chats SET last_seq = ?, last_ts = ?, last_msg_seq = ?, last_message = ?
			WHERE id = ? AND last_seq < ?`},
		{&s.app.setLastMsg, `UPDATE chats SET last_msg_seq = ?, last_message = ? WHERE id = ? AND last_msg_seq < ?`},
		{&s.app.ownRead, `INSERT INTO read_state (chat_id, user_id, delivered, read)
			VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET
			delivered = MAX(delivered, excluded.delivered), read = MAX(read, excluded.read)`},
	} {
		st, err := s.w.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.st = st
	}
	s.app.ops = map[string]*sql.Stmt{}
	for _, q := range []string{sqlDocState, sqlSetDocState} {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		s.app.ops[q] = st
	}
	return nil
}

func (a *appendStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{a.insert, a.chatState, a.setLast, a.setBoth, a.setLastMsg, a.ownRead} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, st := range a.ops {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// chatTail is what one AppendMessages batch does to a chat's row (last seq, last
// message that is not an operation). The batch's first message of the chat updates
// the row at once, as it always did, which tells whether the chat exists and is
// behind that message; later messages of the chat only advance the tail in memory,
// and the row is written once more when the batch ends (writeTails) if they moved it.
type chatTail struct {
	exists       bool
	lastSeq      uint64
	lastTS       int64
	lastMsg      uint64            // the row's last_msg_seq; valid with lastMsgKnown
	lastMsgKnown bool              // false only after an operation was the first message
	msg          *protocol.Message // the message that became the last message (msgMoved)
	seqMoved     bool              // lastSeq/lastTS are ahead of the row
	msgMoved     bool              // lastMsg/msg are ahead of the row
}

// readerKey is a (chat, sender) pair whose read state a batch advances.
type readerKey struct{ chat, user string }

// appendTx is one AppendMessages transaction's statements, bound to it on first use.
type appendTx struct {
	s                                       *SQLiteStore
	tx                                      *sql.Tx
	state, setLast, setBoth, setLastMsg, rd *sql.Stmt
}

func (a *appendTx) stmt(p **sql.Stmt, st *sql.Stmt) *sql.Stmt {
	if *p == nil {
		*p = a.tx.Stmt(st)
	}
	return *p
}

// first updates chat's row for m, the batch's first stored message of the chat, and
// fills t. It returns whether m is the chat's newest message.
func (a *appendTx) first(ctx context.Context, t *chatTail, m *protocol.Message) (newest bool, err error) {
	var res sql.Result
	if !protocol.Listed(m.MessageType) {
		res, err = a.stmt(&a.setLast, a.s.app.setLast).ExecContext(ctx, m.Seq, m.Timestamp, m.ChatID, m.Seq)
	} else {
		body, _ := json.Marshal(m)
		res, err = a.stmt(&a.setBoth, a.s.app.setBoth).ExecContext(ctx, m.Seq, m.Timestamp, m.Seq, body, m.ChatID, m.Seq)
		if n, _ := res.RowsAffected(); err == nil && n == 0 {
			_, err = a.stmt(&a.setLastMsg, a.s.app.setLastMsg).ExecContext(ctx, m.Seq, body, m.ChatID, m.Seq)
		} else if err == nil {
			t.lastMsg, t.lastMsgKnown = m.Seq, true
		}
	}
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		t.exists, t.lastSeq, t.lastTS = true, m.Seq, m.Timestamp
		return true, nil
	}
	// Not the newest (stored out of order) or no such chat: read the row as it is now.
	return false, a.load(ctx, t, m.ChatID)
}

// load reads chat's row into t: whether it exists, its last seq and last_msg_seq.
func (a *appendTx) load(ctx context.Context, t *chatTail, chat string) error {
	var lastSeq, lastMsg uint64
	err := a.stmt(&a.state, a.s.app.chatState).QueryRowContext(ctx, chat).Scan(&lastSeq, &lastMsg)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		t.exists = false
		return nil
	case err != nil:
		return err
	}
	if !t.exists {
		t.exists, t.lastSeq = true, lastSeq
	}
	t.lastMsg, t.lastMsgKnown = lastMsg, true
	return nil
}

// next advances t for m, a later message of the batch than the chat's first. It
// returns whether m is the chat's newest message.
func (a *appendTx) next(ctx context.Context, t *chatTail, m *protocol.Message) (newest bool, err error) {
	if !t.exists {
		return false, nil
	}
	newest = m.Seq > t.lastSeq
	if newest {
		t.lastSeq, t.lastTS, t.seqMoved = m.Seq, m.Timestamp, true
	}
	if !protocol.Listed(m.MessageType) {
		return newest, nil
	}
	if !newest && !t.lastMsgKnown {
		if err := a.load(ctx, t, m.ChatID); err != nil {
			return false, err
		}
	}
	if newest || m.Seq > t.lastMsg {
		t.lastMsg, t.lastMsgKnown, t.msg, t.msgMoved = m.Seq, true, m, true
	}
	return newest, nil
}

// AppendMessages implements Store. All of msgs go in one transaction.
//
// Per message it inserts the row and applies operations (opApplier). The chat's row
// (last seq, last message) is written by the batch's first message of each chat and
// once more at the end if later ones moved it, and the senders' read state once per
// chat and sender at the end: nothing in between reads either, so the result is the
// one a write per message gave.
func (s *SQLiteStore) AppendMessages(ctx context.Context, msgs []protocol.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer tx.Rollback()
	// ctx ending still rolls the transaction back (database/sql watches the
	// context BeginTx was given) between statements; the statements themselves run
	// uninterruptible (noInterrupt).
	ctx = noInterrupt(ctx)
	at := &appendTx{s: s, tx: tx}
	ins := tx.StmtContext(ctx, s.app.insert)
	ops := newOpApplier(tx, s.app.ops)
	defer ops.close()
	var tails map[string]*chatTail
	var reads map[readerKey]uint64
	for i := range msgs {
		m := &msgs[i]
		var doc any // a searchable message's document ID (store_sqlite_index.go)
		if protocol.Searchable(m.MessageType) {
			if doc, err = ops.peekDoc(ctx); err != nil {
				return fmt.Errorf("sqlite: append %s/%d: %w", m.ChatID, m.Seq, err)
			}
		}
		res, err := ins.ExecContext(ctx, m.ChatID, m.Seq, m.MessageID, m.SenderID, m.Content,
			m.MessageType, m.Timestamp, m.ReplyTo, m.RefID, nullJSON(m.Meta), m.ExpiresAt, doc)
		if err != nil {
			return fmt.Errorf("sqlite: append %s/%d: %w", m.ChatID, m.Seq, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // already stored (or its messageId is, under another seq)
		}
		if doc != nil {
			ops.takeDoc()
		}
		// newest: m is above the chat's last seq, so nothing referencing it can be
		// stored yet (an operation always has a higher seq than its target).
		var newest bool
		if t := tails[m.ChatID]; t != nil {
			newest, err = at.next(ctx, t, m)
		} else {
			if tails == nil {
				tails = make(map[string]*chatTail, 4)
			}
			t = &chatTail{}
			tails[m.ChatID] = t
			newest, err = at.first(ctx, t, m)
		}
		if err != nil {
			return fmt.Errorf("sqlite: append %s/%d: last message: %w", m.ChatID, m.Seq, err)
		}
		if err := ops.apply(ctx, m, newest); err != nil {
			return fmt.Errorf("sqlite: append %s/%d: %w", m.ChatID, m.Seq, err)
		}
		// One's own message counts as delivered and read (a key event is not one's own).
		if protocol.IsKeyEvent(m) {
			continue
		}
		k := readerKey{m.ChatID, m.SenderID}
		if reads == nil {
			reads = make(map[readerKey]uint64, 4)
		}
		if m.Seq > reads[k] {
			reads[k] = m.Seq
		}
	}
	if err := at.writeTails(ctx, tails); err != nil {
		return err
	}
	for k, seq := range reads {
		if _, err := at.stmt(&at.rd, s.app.ownRead).ExecContext(ctx, k.chat, k.user, seq, seq); err != nil {
			return fmt.Errorf("sqlite: append %s/%d: sender read state: %w", k.chat, seq, err)
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

// writeTails writes the chat rows that later messages of the batch moved.
func (a *appendTx) writeTails(ctx context.Context, tails map[string]*chatTail) error {
	for chat, t := range tails {
		var err error
		switch {
		case t.msgMoved && t.seqMoved:
			body, _ := json.Marshal(t.msg)
			_, err = a.stmt(&a.setBoth, a.s.app.setBoth).ExecContext(ctx, t.lastSeq, t.lastTS, t.lastMsg, body, chat, t.lastSeq)
		case t.seqMoved:
			_, err = a.stmt(&a.setLast, a.s.app.setLast).ExecContext(ctx, t.lastSeq, t.lastTS, chat, t.lastSeq)
		case t.msgMoved:
			body, _ := json.Marshal(t.msg)
			_, err = a.stmt(&a.setLastMsg, a.s.app.setLastMsg).ExecContext(ctx, t.lastMsg, body, chat, t.lastMsg)
		}
		if err != nil {
			return fmt.Errorf("sqlite: append %s/%d: last message: %w", chat, t.lastSeq, err)
		}
	}
	return nil
}

// noInterrupt is ctx for statements too short to be worth interrupting. The
// driver interrupts a statement whose context ends: for every statement run with a
// context that can end, it starts a goroutine that waits for the end and installs
// a progress handler that SQLite calls back every 1,000 steps. For the persister's
// append, several statements per message, that was a quarter of the CPU per message
// in BenchmarkSQLitePersist and 14 % of the call's in a server profile
// (docs/performance.md, "Statements that cannot be cancelled"). A context without
// Done skips both.
func noInterrupt(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

const msgCols = `chat_id, seq, message_id, sender_id, content, message_type, ts, reply_to, ref_id, meta,
	edited, deleted, state_seq, expires_at`

// notExpired is the condition that a messages row (unqualified columns) has not
// expired: 'now' is fixed for the whole statement.
const notExpired = `(expires_at = 0 OR expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER))`

func scanMessages(rows *sql.Rows) ([]protocol.Message, error) {
	defer rows.Close()
	var out []protocol.Message
	for rows.Next() {
		var m protocol.Message
		var meta []byte
		if err := rows.Scan(&m.ChatID, &m.Seq, &m.MessageID, &m.SenderID, &m.Content,
			&m.MessageType, &m.Timestamp, &m.ReplyTo, &m.RefID, &meta, &m.Edited, &m.Deleted, &m.StateSeq, &m.ExpiresAt); err != nil {
			return nil, err
		}
		if len(meta) > 0 {
			m.Meta = json.RawMessage(meta)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// History implements Store. The page and its reactions are read in one transaction,
// so they are one snapshot.
func (s *SQLiteStore) History(ctx context.Context, chatID string, q HistoryQuery) ([]protocol.Message, error) {
	limit := clampLimit(q.Limit)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: history %s: %w", chatID, err)
	}
	defer tx.Rollback()
	var rows *sql.Rows
	switch {
	case q.Dir == Forward:
		rows, err = tx.StmtContext(ctx, s.rd.historyAfter).QueryContext(ctx, chatID, q.After, limit)
	case q.Before == 0:
		rows, err = tx.StmtContext(ctx, s.rd.historyNewest).QueryContext(ctx, chatID, limit)
	default:
		rows, err = tx.StmtContext(ctx, s.rd.historyBefore).QueryContext(ctx, chatID, q.Before, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: history %s: %w", chatID, err)
	}
	msgs, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: history %s: %w", chatID, err)
	}
	if err := attachReactions(ctx, tx, q.Viewer, msgs); err != nil {
		return nil, fmt.Errorf("sqlite: history %s: %w", chatID, err)
	}
	return msgs, nil
}

func clampLimit(n int) int {
	if n <= 0 {
		return DefaultPage
	}
	if n > MaxPage {
		return MaxPage
	}
	return n
}

// LastSeq implements Store.
func (s *SQLiteStore) LastSeq(ctx context.Context, chatID string) (uint64, error) {
	var seq uint64
	err := s.rd.lastSeq.QueryRowContext(ctx, chatID).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("sqlite: last seq %s: %w", chatID, err)
	}
	return seq, nil
}

// MessageSeq implements Store.
func (s *SQLiteStore) MessageSeq(ctx context.Context, chatID, messageID string) (uint64, error) {
	var seq uint64
	err := s.rd.messageSeq.QueryRowContext(ctx, chatID, messageID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: message seq %s/%s: %w", chatID, messageID, err)
	}
	return seq, nil
}

// CreateChat implements Store.
func (s *SQLiteStore) CreateChat(ctx context.Context, chat Chat, members []Member) (Chat, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Chat{}, false, fmt.Errorf("sqlite: create chat: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO chats (id, kind, name, created_by, created_at, encrypted)
		VALUES (?, ?, ?, ?, ?, ?)`, chat.ID, chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt.UnixMilli(), chat.Encrypted)
	if err != nil {
		return Chat{}, false, fmt.Errorf("sqlite: create chat %s: %w", chat.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		tx.Rollback()
		existing, err := s.GetChat(ctx, chat.ID)
		if errors.Is(err, ErrNotFound) {
			return Chat{}, false, ErrChatDeleted // the row is a deleted chat's
		}
		return existing, false, err
	}
	for _, m := range members {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO members (chat_id, user_id, role, joined_at)
			VALUES (?, ?, ?, ?)`, chat.ID, m.UserID, m.Role, m.JoinedAt.UnixMilli()); err != nil {
			return Chat{}, false, fmt.Errorf("sqlite: create chat %s: member %s: %w", chat.ID, m.UserID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Chat{}, false, fmt.Errorf("sqlite: create chat %s: %w", chat.ID, err)
	}
	chat.CreatedAt = time.UnixMilli(chat.CreatedAt.UnixMilli()).UTC()
	return chat, true, nil
}

// GetChat implements Store.
func (s *SQLiteStore) GetChat(ctx context.Context, chatID string) (Chat, error) {
	var c Chat
	var at int64
	err := s.rd.getChat.QueryRowContext(ctx, chatID).
		Scan(&c.ID, &c.Kind, &c.Name, &c.CreatedBy, &at, &c.MessageTTL, &c.Encrypted)
	if errors.Is(err, sql.ErrNoRows) {
		return Chat{}, ErrNotFound
	}
	if err != nil {
		return Chat{}, fmt.Errorf("sqlite: get chat %s: %w", chatID, err)
	}
	c.CreatedAt = time.UnixMilli(at).UTC()
	return c, nil
}

// Members implements Store.
func (s *SQLiteStore) Members(ctx context.Context, chatID string) ([]Member, error) {
	rows, err := s.rd.members.QueryContext(ctx, chatID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: members %s: %w", chatID, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var at int64
		if err := rows.Scan(&m.ChatID, &m.UserID, &m.Role, &at); err != nil {
			return nil, fmt.Errorf("sqlite: members %s: %w", chatID, err)
		}
		m.JoinedAt = time.UnixMilli(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// GetMember implements Store.
func (s *SQLiteStore) GetMember(ctx context.Context, chatID, userID string) (Member, error) {
	m := Member{ChatID: chatID, UserID: userID}
	var at int64
	err := s.rd.getMember.QueryRowContext(ctx, chatID, userID).Scan(&m.Role, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, ErrNotFound
	}
	if err != nil {
		return Member{}, fmt.Errorf("sqlite: member %s/%s: %w", chatID, userID, err)
	}
	m.JoinedAt = time.UnixMilli(at).UTC()
	return m, nil
}

// AddMember implements Store.
func (s *SQLiteStore) AddMember(ctx context.Context, m Member) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO members (chat_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (chat_id, user_id) DO UPDATE SET role = excluded.role`,
		m.ChatID, m.UserID, m.Role, m.JoinedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlite: add member %s/%s: %w", m.ChatID, m.UserID, err)
	}
	return nil
}

// RemoveMember implements Store.
func (s *SQLiteStore) RemoveMember(ctx context.Context, chatID, userID string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM members WHERE chat_id = ? AND user_id = ?`, chatID, userID); err != nil {
		return fmt.Errorf("sqlite: remove member %s/%s: %w", chatID, userID, err)
	}
	return nil
}

// RenameChat implements Store.
func (s *SQLiteStore) RenameChat(ctx context.Context, chatID, name string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE chats SET name = ? WHERE id = ?`, name, chatID)
	if err != nil {
		return fmt.Errorf("sqlite: rename chat %s: %w", chatID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// UserChats implements Store.
func (s *SQLiteStore) UserChats(ctx context.Context, userID string, limit, offset int) ([]ChatSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.userChats(ctx, s.rd.userChats, userID, limit, offset)
}

// UserChatsBefore implements Store.
func (s *SQLiteStore) UserChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	if cursor.ChatID == "" && cursor.Activity.IsZero() {
		return s.userChats(ctx, s.rd.userChats, userID, limit, 0)
	}
	act := cursor.Activity.UnixMilli()
	return s.userChats(ctx, s.rd.userChatsAfter, userID, act, act, cursor.ChatID, limit, 0)
}

// userChats lists userID's chats with st, a statement of userChatsSQL: args are its
// condition's arguments, then limit and offset. The last message is read from the
// messages table, so it shows its current state (edited, deleted).
func (s *SQLiteStore) userChats(ctx context.Context, st *sql.Stmt, userID string, args ...any) ([]ChatSummary, error) {
	rows, err := st.QueryContext(ctx, append([]any{userID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: chats of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []ChatSummary
	for rows.Next() {
		var cs ChatSummary
		var at, act int64
		var last, lmMeta []byte
		var lmFound, lmEdited, lmDeleted bool
		var lmContent string
		if err := rows.Scan(&cs.ID, &cs.Kind, &cs.Name, &cs.CreatedBy, &at, &cs.Encrypted, &cs.LastSeq, &last, &cs.ReadSeq, &act,
			&lmFound, &lmContent, &lmMeta, &lmEdited, &lmDeleted, &cs.Unread); err != nil {
			return nil, fmt.Errorf("sqlite: chats of %s: %w", userID, err)
		}
		cs.CreatedAt = time.UnixMilli(at).UTC()
		cs.LastActivity = time.UnixMilli(act).UTC()
		if len(last) > 0 {
			var m protocol.Message
			if err := json.Unmarshal(last, &m); err == nil {
				if lmFound { // the stored row has the current state
					m.Content, m.Meta, m.Edited, m.Deleted = lmContent, nil, lmEdited, lmDeleted
					if len(lmMeta) > 0 {
						m.Meta = json.RawMessage(lmMeta)
					}
				}
				if !m.Expired(time.Now().UnixMilli()) {
					cs.LastMessage = &m
				}
			}
		}
		out = append(out, cs)
	}
	return out, rows.Err()
}

// SetReadState implements Store.
func (s *SQLiteStore) SetReadState(ctx context.Context, chatID, userID string, delivered, read uint64) (ReadState, error) {
	delivered = max(delivered, read)
	rs := ReadState{ChatID: chatID, UserID: userID}
	err := s.w.QueryRowContext(ctx, `INSERT INTO read_state (chat_id, user_id, delivered, read)
		VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET
		delivered = MAX(delivered, excluded.delivered), read = MAX(read, excluded.read)
		RETURNING delivered, read`, chatID, userID, delivered, read).Scan(&rs.Delivered, &rs.Read)
	if err != nil {
		return ReadState{}, fmt.Errorf("sqlite: read state %s/%s: %w", chatID, userID, err)
	}
	return rs, nil
}

// GetReadState implements Store.
func (s *SQLiteStore) GetReadState(ctx context.Context, chatID, userID string) (ReadState, error) {
	rs := ReadState{ChatID: chatID, UserID: userID}
	err := s.rd.getReadState.QueryRowContext(ctx, chatID, userID).Scan(&rs.Delivered, &rs.Read)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return ReadState{}, fmt.Errorf("sqlite: read state %s/%s: %w", chatID, userID, err)
	}
	return rs, nil
}

// SetMute implements Store.
func (s *SQLiteStore) SetMute(ctx context.Context, m Mute) error {
	var err error
	if !m.Muted {
		_, err = s.w.ExecContext(ctx, `DELETE FROM mutes WHERE chat_id = ? AND user_id = ?`, m.ChatID, m.UserID)
	} else {
		var until int64
		if !m.Until.IsZero() {
			until = m.Until.UnixMilli()
		}
		_, err = s.w.ExecContext(ctx, `INSERT INTO mutes (chat_id, user_id, until_ms) VALUES (?, ?, ?)
			ON CONFLICT (chat_id, user_id) DO UPDATE SET until_ms = excluded.until_ms`, m.ChatID, m.UserID, until)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set mute %s/%s: %w", m.ChatID, m.UserID, err)
	}
	return nil
}

// GetMute implements Store.
func (s *SQLiteStore) GetMute(ctx context.Context, chatID, userID string) (Mute, error) {
	m := Mute{ChatID: chatID, UserID: userID}
	var until int64
	err := s.rd.getMute.QueryRowContext(ctx, chatID, userID).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return m, nil
	}
	if err != nil {
		return Mute{}, fmt.Errorf("sqlite: get mute %s/%s: %w", chatID, userID, err)
	}
	m.muteUntil(until)
	return m, nil
}

// muteUntil sets m from a mutes row's until_ms: muted, until then (0: until unmuted).
func (m *Mute) muteUntil(until int64) {
	m.Muted = true
	if until != 0 {
		m.Until = time.UnixMilli(until).UTC()
	}
}

// Ping implements Store.
func (s *SQLiteStore) Ping(ctx context.Context) error { return s.w.PingContext(ctx) }

// Close implements Store.
func (s *SQLiteStore) Close() error {
	return errors.Join(s.ck.stop(), s.app.close(), s.rd.close(), s.r.Close(), s.w.Close())
}
