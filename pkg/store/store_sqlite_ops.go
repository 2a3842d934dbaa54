package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/natter-chat/natter/pkg/protocol"
)

// opApplier applies operation events (edit, delete, react) to the messages they
// reference, inside one AppendMessages transaction, and keeps the search index in
// step with each message's current state.
//
// Statements that find messages by message_id or ref_id name their index (INDEXED
// BY): without statistics SQLite's planner prefers a scan of the chat's primary-key
// range, which costs the whole chat per operation.
//
// Persisters may store a chat's messages out of order (two instances race), so every
// rule is order-independent: an edit applies only if its seq is above the edit_seq
// the message shows, a delete is final, a reaction row keeps the seq of the event
// that set it and only a higher one replaces it, and a message stored after its
// operations picks them up when it is inserted (catchUp).
//
// It prepares each statement once per transaction: a batch of hundreds of messages
// would otherwise parse the same SQL for every message.
type opApplier struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// Search documents to write (flush): fresh ones by message, others by their
	// search_docs id.
	fresh map[docKey]string
	byID  map[int64]string
}

func newOpApplier(tx *sql.Tx) *opApplier { return &opApplier{tx: tx, stmts: map[string]*sql.Stmt{}} }

// stmt returns q prepared in the transaction.
func (a *opApplier) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := a.stmts[q]; st != nil {
		return st, nil
	}
	st, err := a.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	a.stmts[q] = st
	return st, nil
}

func (a *opApplier) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := a.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (a *opApplier) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := a.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scan runs a one-row query into dest; sql.ErrNoRows if there is none.
func (a *opApplier) scan(ctx context.Context, q string, args []any, dest ...any) error {
	st, err := a.stmt(ctx, q)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

// close releases the prepared statements.
func (a *opApplier) close() {
	for _, st := range a.stmts {
		_ = st.Close()
	}
}

// notOp is the SQL condition "message_type is protocol.Referable": not an
// operation, a system event or a key distribution.
const notOp = `message_type NOT IN ('system', 'encrypted_keys', 'edit', 'delete', 'react')`

// apply handles one newly inserted message m. newest says m's seq is above every
// other stored seq of its chat: then no operation on it can be stored yet, and the
// catch-up query is skipped (the common case: persisters store in order).
func (a *opApplier) apply(ctx context.Context, m *protocol.Message, newest bool) error {
	switch {
	case m.MessageType == protocol.TypeEdit:
		return a.edit(ctx, m)
	case m.MessageType == protocol.TypeDelete:
		return a.del(ctx, m)
	case m.MessageType == protocol.TypeReact:
		return a.react(ctx, m)
	case protocol.Referable(m.MessageType) && newest:
		if !protocol.Searchable(m.MessageType) {
			return nil // ciphertext is never indexed
		}
		return a.index(ctx, m.ChatID, m.Seq, m.Content, false, true)
	case protocol.Referable(m.MessageType):
		return a.catchUp(ctx, m)
	}
	return nil
}

func (a *opApplier) edit(ctx context.Context, m *protocol.Message) error {
	if m.RefID == "" {
		return nil
	}
	if _, err := a.exec(ctx, `UPDATE messages INDEXED BY messages_by_id SET content = ?, edited = 1, edit_seq = ?
		WHERE chat_id = ? AND message_id = ? AND sender_id = ? AND deleted = 0 AND edit_seq < ? AND `+notOp,
		m.Content, m.Seq, m.ChatID, m.RefID, m.SenderID, m.Seq); err != nil {
		return fmt.Errorf("apply edit: %w", err)
	}
	// An edit of a message that is already deleted keeps no text either.
	if _, err := a.exec(ctx, `UPDATE messages SET content = '' WHERE chat_id = ? AND seq = ?
		AND EXISTS (SELECT 1 FROM messages d INDEXED BY messages_by_ref WHERE d.chat_id = ? AND d.ref_id = ? AND d.message_type = 'delete')`,
		m.ChatID, m.Seq, m.ChatID, m.RefID); err != nil {
		return fmt.Errorf("apply edit: %w", err)
	}
	return a.touched(ctx, m.ChatID, m.RefID, m.Seq)
}

func (a *opApplier) del(ctx context.Context, m *protocol.Message) error {
	if m.RefID == "" {
		return nil
	}
	if err := a.tombstone(ctx, m.ChatID, m.RefID); err != nil {
		return err
	}
	return a.touched(ctx, m.ChatID, m.RefID, m.Seq)
}

// tombstone clears a deleted message: its content, meta, the text of its edits and
// its reactions.
func (a *opApplier) tombstone(ctx context.Context, chat, messageID string) error {
	for _, q := range []string{
		`UPDATE messages INDEXED BY messages_by_id SET deleted = 1, content = '', meta = NULL, edited = 0
			WHERE chat_id = ? AND message_id = ? AND ` + notOp,
		`UPDATE messages INDEXED BY messages_by_ref SET content = '' WHERE chat_id = ? AND ref_id = ? AND message_type = 'edit'`,
		`DELETE FROM reactions WHERE chat_id = ? AND message_id = ?`,
	} {
		if _, err := a.exec(ctx, q, chat, messageID); err != nil {
			return fmt.Errorf("apply delete: %w", err)
		}
	}
	return nil
}

func (a *opApplier) react(ctx context.Context, m *protocol.Message) error {
	ev, ok := protocol.ParseReaction(m.Meta)
	if m.RefID == "" || !ok {
		return nil // stored as sent; it changes nothing
	}
	present := 1
	if ev.Remove {
		present = 0
	}
	if _, err := a.exec(ctx, `INSERT INTO reactions (chat_id, message_id, emoji, user_id, seq, present)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, message_id, emoji, user_id) DO UPDATE SET
		seq = excluded.seq, present = excluded.present WHERE excluded.seq > reactions.seq`,
		m.ChatID, m.RefID, ev.Emoji, m.SenderID, m.Seq, present); err != nil {
		return fmt.Errorf("apply react: %w", err)
	}
	return a.touched(ctx, m.ChatID, m.RefID, m.Seq)
}

// touched records that an operation with seq was applied to messageID and brings its
// search document up to date.
func (a *opApplier) touched(ctx context.Context, chat, messageID string, seq uint64) error {
	if _, err := a.exec(ctx, `UPDATE messages INDEXED BY messages_by_id SET state_seq = MAX(state_seq, ?)
		WHERE chat_id = ? AND message_id = ? AND `+notOp, seq, chat, messageID); err != nil {
		return fmt.Errorf("apply operation: %w", err)
	}
	rows, err := a.query(ctx, `SELECT seq, content, deleted FROM messages INDEXED BY messages_by_id
		WHERE chat_id = ? AND message_id = ? AND message_type != 'encrypted' AND `+notOp, chat, messageID)
	if err != nil {
		return fmt.Errorf("apply operation: %w", err)
	}
	type doc struct {
		seq     uint64
		content string
		deleted bool
	}
	var docs []doc
	for rows.Next() {
		var d doc
		if err := rows.Scan(&d.seq, &d.content, &d.deleted); err != nil {
			rows.Close()
			return fmt.Errorf("apply operation: %w", err)
		}
		docs = append(docs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("apply operation: %w", err)
	}
	for _, d := range docs {
		if err := a.index(ctx, chat, d.seq, d.content, d.deleted, false); err != nil {
			return err
		}
	}
	return nil
}

// catchUp applies to a newly stored message m the operations stored before it
// (which happens when persisters race), then indexes it.
func (a *opApplier) catchUp(ctx context.Context, m *protocol.Message) error {
	rows, err := a.query(ctx, `SELECT seq, sender_id, message_type, content FROM messages
		WHERE chat_id = ? AND ref_id = ? AND message_type IN ('edit', 'delete', 'react') AND seq > ?
		ORDER BY seq`, m.ChatID, m.MessageID, m.Seq)
	if err != nil {
		return fmt.Errorf("catch up %s: %w", m.MessageID, err)
	}
	content, edited, deleted := m.Content, false, false
	var editSeq, stateSeq uint64
	for rows.Next() {
		var seq uint64
		var sender, typ, text string
		if err := rows.Scan(&seq, &sender, &typ, &text); err != nil {
			rows.Close()
			return fmt.Errorf("catch up %s: %w", m.MessageID, err)
		}
		stateSeq = seq
		switch typ {
		case protocol.TypeEdit:
			if sender == m.SenderID && !deleted {
				content, edited, editSeq = text, true, seq
			}
		case protocol.TypeDelete:
			deleted = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catch up %s: %w", m.MessageID, err)
	}
	if stateSeq > 0 {
		if deleted {
			if err := a.tombstone(ctx, m.ChatID, m.MessageID); err != nil {
				return err
			}
			content = ""
		} else if _, err := a.exec(ctx, `UPDATE messages SET content = ?, edited = ?, edit_seq = ?
			WHERE chat_id = ? AND seq = ?`, content, edited, editSeq, m.ChatID, m.Seq); err != nil {
			return fmt.Errorf("catch up %s: %w", m.MessageID, err)
		}
		if _, err := a.exec(ctx, `UPDATE messages SET state_seq = ? WHERE chat_id = ? AND seq = ?`,
			stateSeq, m.ChatID, m.Seq); err != nil {
			return fmt.Errorf("catch up %s: %w", m.MessageID, err)
		}
	}
	if !protocol.Searchable(m.MessageType) {
		return nil // ciphertext is never indexed
	}
	return a.index(ctx, m.ChatID, m.Seq, content, deleted, true)
}

// docKey names a message's search document before it has a search_docs id.
type docKey struct {
	chat string
	seq  uint64
}

// index makes the search document of (chat, seq) match content; a deleted or empty
// message has none. fresh says the message was just stored, so it has no document.
//
// Writes are queued and made by flush, many rows per statement, at the end of the
// transaction: FTS5 writes its pending terms to disk at every statement savepoint,
// so an INSERT per message would make an index segment per message, and the batch
// saves a statement per message besides.
func (a *opApplier) index(ctx context.Context, chat string, seq uint64, content string, deleted, fresh bool) error {
	gone := deleted || strings.TrimSpace(content) == ""
	key := docKey{chat, seq}
	if _, queued := a.fresh[key]; fresh || queued {
		if gone {
			delete(a.fresh, key)
			return nil
		}
		if a.fresh == nil {
			a.fresh = map[docKey]string{}
		}
		a.fresh[key] = content
		return nil
	}
	var id int64
	err := a.scan(ctx, `SELECT id FROM search_docs WHERE chat_id = ? AND seq = ?`, []any{chat, seq}, &id)
	switch {
	case err == nil:
		if _, queued := a.byID[id]; queued {
			delete(a.byID, id) // not in search_fts yet
		} else if _, err := a.exec(ctx, `DELETE FROM search_fts WHERE rowid = ?`, id); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		if gone {
			if _, err := a.exec(ctx, `DELETE FROM search_docs WHERE id = ?`, id); err != nil {
				return fmt.Errorf("search index: %w", err)
			}
			return nil
		}
		if a.byID == nil {
			a.byID = map[int64]string{}
		}
		a.byID[id] = content
	case err == sql.ErrNoRows:
		if !gone {
			if a.fresh == nil {
				a.fresh = map[docKey]string{}
			}
			a.fresh[key] = content
		}
	default:
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// rowsPerInsert bounds one flush statement (at most 3 parameters a row, well under
// SQLite's parameter limit).
const rowsPerInsert = 256

// flush writes the queued search documents. AppendMessages calls it before commit.
func (a *opApplier) flush(ctx context.Context) error {
	keys := make([]docKey, 0, len(a.fresh))
	for k := range a.fresh {
		keys = append(keys, k)
	}
	for len(keys) > 0 { // new search_docs rows, then their documents
		n := min(len(keys), rowsPerInsert)
		args := make([]any, 0, 2*n)
		for _, k := range keys[:n] {
			args = append(args, k.chat, k.seq)
		}
		rows, err := a.query(ctx, `INSERT INTO search_docs (chat_id, seq) VALUES (?, ?)`+strings.Repeat(", (?, ?)", n-1)+
			` RETURNING id, chat_id, seq`, args...)
		if err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		for rows.Next() {
			var id int64
			var k docKey
			if err := rows.Scan(&id, &k.chat, &k.seq); err != nil {
				rows.Close()
				return fmt.Errorf("search index: %w", err)
			}
			if a.byID == nil {
				a.byID = map[int64]string{}
			}
			a.byID[id] = a.fresh[k]
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		keys = keys[n:]
	}
	ids := make([]int64, 0, len(a.byID))
	for id := range a.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for len(ids) > 0 {
		n := min(len(ids), rowsPerInsert)
		args := make([]any, 0, 2*n)
		for _, id := range ids[:n] {
			args = append(args, id, a.byID[id])
		}
		if _, err := a.exec(ctx, `INSERT INTO search_fts (rowid, content) VALUES (?, ?)`+strings.Repeat(", (?, ?)", n-1), args...); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		ids = ids[n:]
	}
	a.fresh, a.byID = nil, nil
	return nil
}

// querier is what attachReactions reads through: a transaction or the pool.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// attachReactions sets the Reactions of msgs (any chats) from the reactions table:
// per emoji the number of users, and whether viewer is one, ordered by the earliest
// current reaction. Deleted messages and operations get none.
func attachReactions(ctx context.Context, q querier, viewer string, msgs []protocol.Message) error {
	byChat := map[string][]int{}
	for i := range msgs {
		if !msgs[i].Deleted && msgs[i].StateSeq > 0 && protocol.Referable(msgs[i].MessageType) {
			byChat[msgs[i].ChatID] = append(byChat[msgs[i].ChatID], i)
		}
	}
	for chat, idx := range byChat {
		pos := make(map[string][]int, len(idx))
		args := []any{viewer, chat}
		for _, i := range idx {
			id := msgs[i].MessageID
			if _, ok := pos[id]; !ok {
				args = append(args, id)
			}
			pos[id] = append(pos[id], i)
		}
		rows, err := q.QueryContext(ctx, `SELECT message_id, emoji, COUNT(*), MAX(user_id = ?), MIN(seq) AS first
			FROM reactions WHERE chat_id = ? AND present = 1 AND message_id IN (?`+strings.Repeat(", ?", len(args)-3)+`)
			GROUP BY message_id, emoji ORDER BY message_id, first, emoji`, args...)
		if err != nil {
			return fmt.Errorf("reactions: %w", err)
		}
		for rows.Next() {
			var id string
			var r protocol.Reaction
			var first uint64
			if err := rows.Scan(&id, &r.Emoji, &r.Count, &r.Me, &first); err != nil {
				rows.Close()
				return fmt.Errorf("reactions: %w", err)
			}
			for _, i := range pos[id] {
				msgs[i].Reactions = append(msgs[i].Reactions, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reactions: %w", err)
		}
	}
	return nil
}
