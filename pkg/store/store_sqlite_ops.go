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
// step with each message's current state (store_sqlite_index.go).
//
// Statements that find messages by message_id or ref_id name their index (INDEXED
// BY): without statistics SQLite's planner prefers a scan of the chat's primary-key
// range, which costs the whole chat per operation.
//
// Persisters may store a chat's messages out of order (two instances race), so every
// rule is order-independent; the rules are protocol.ApplyOp's, applied to the state
// a message row holds (edit_seq: the seq of the edit whose text it shows;
// state_seq: the highest operation applied). A reaction row keeps the seq of the
// event that set it and only a higher one replaces it, and a message stored after
// its operations picks them up when it is inserted (catchUp).
//
// It prepares each statement once per transaction: a batch of hundreds of messages
// would otherwise parse the same SQL for every message.
type opApplier struct {
	tx    *sql.Tx
	pre   map[string]*sql.Stmt // statements prepared on the writer once (may be nil)
	stmts map[string]*sql.Stmt
	// docs is the transaction's copy of search_state; byID the documents of
	// indexed messages to write again (flush), by doc_id.
	docs docIDs
	byID map[int64]string
}

// newOpApplier returns an applier for tx; pre holds statements already prepared
// on tx's connection (appendStmts.ops), which it binds to tx instead of parsing
// them again.
func newOpApplier(tx *sql.Tx, pre map[string]*sql.Stmt) *opApplier {
	return &opApplier{tx: tx, pre: pre, stmts: map[string]*sql.Stmt{}}
}

// stmt returns q prepared in the transaction.
func (a *opApplier) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := a.stmts[q]; st != nil {
		return st, nil
	}
	if pre := a.pre[q]; pre != nil {
		st := a.tx.StmtContext(ctx, pre)
		a.stmts[q] = st
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
	case protocol.IsOperation(m.MessageType):
		op, ok := protocol.OpOf(m)
		if !ok {
			return nil // stored as sent; it changes nothing
		}
		return a.operation(ctx, m, op)
	case protocol.Referable(m.MessageType) && newest:
		return nil // its document, if it is searchable, is indexed in bulk
	case protocol.Referable(m.MessageType):
		return a.catchUp(ctx, m)
	}
	return nil
}

// operation applies op, carried by the newly stored m, to the message it
// references (protocol.ApplyOp decides), if that is stored; a message stored later
// picks op up in catchUp. What belongs to op itself is written whether or not its
// target is stored: a reaction's register (the event with the highest seq sets it),
// and a delete's removal of the target's reactions and of its edits' text.
func (a *opApplier) operation(ctx context.Context, m *protocol.Message, op protocol.Op) error {
	switch op.Type {
	case protocol.TypeReact:
		present := 1
		if op.Reaction.Remove {
			present = 0
		}
		if _, err := a.exec(ctx, `INSERT INTO reactions (chat_id, message_id, emoji, user_id, seq, present)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, message_id, emoji, user_id) DO UPDATE SET
			seq = excluded.seq, present = excluded.present WHERE excluded.seq > reactions.seq`,
			m.ChatID, m.RefID, op.Reaction.Emoji, m.SenderID, m.Seq, present); err != nil {
			return fmt.Errorf("apply react: %w", err)
		}
	case protocol.TypeDelete:
		if err := a.clearOps(ctx, m.ChatID, m.RefID); err != nil {
			return err
		}
	case protocol.TypeEdit:
		// An edit of a message that is already deleted keeps no text either.
		if _, err := a.exec(ctx, `UPDATE messages SET content = '' WHERE chat_id = ? AND seq = ?
			AND EXISTS (SELECT 1 FROM messages d INDEXED BY messages_by_ref WHERE d.chat_id = ? AND d.ref_id = ? AND d.ref_id != '' AND d.message_type = 'delete')`,
			m.ChatID, m.Seq, m.ChatID, m.RefID); err != nil {
			return fmt.Errorf("apply edit: %w", err)
		}
	}
	targets, err := a.targets(ctx, m.ChatID, m.RefID)
	if err != nil {
		return fmt.Errorf("apply %s: %w", op.Type, err)
	}
	for _, tg := range targets {
		t := tg.state
		next, _ := protocol.ApplyOp(t, op)
		if next == t {
			continue
		}
		if err := a.setState(ctx, m.ChatID, next); err != nil {
			return fmt.Errorf("apply %s: %w", op.Type, err)
		}
		if protocol.Searchable(t.MessageType) && (next.Content != t.Content || next.Deleted != t.Deleted) {
			if err := a.reindex(ctx, m.ChatID, t.Seq, tg.doc, hasDoc(t.Content, t.Deleted), hasDoc(next.Content, next.Deleted), next.Content); err != nil {
				return err
			}
		}
	}
	return nil
}

// target is a message an operation may change: its state and its doc_id (0: none).
type target struct {
	state protocol.OpState
	doc   int64
}

// targets returns the stored messages of chat with messageID that operations may
// change (not system messages nor operations), in their current state.
func (a *opApplier) targets(ctx context.Context, chat, messageID string) ([]target, error) {
	rows, err := a.query(ctx, `SELECT seq, sender_id, message_type, content, edited, deleted, edit_seq, state_seq, COALESCE(doc_id, 0)
		FROM messages INDEXED BY messages_by_id WHERE chat_id = ? AND message_id = ? AND `+notOp, chat, messageID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []target
	for rows.Next() {
		var tg target
		t := &tg.state
		if err := rows.Scan(&t.Seq, &t.SenderID, &t.MessageType, &t.Content, &t.Edited, &t.Deleted, &t.EditSeq, &t.StateSeq, &tg.doc); err != nil {
			return nil, err
		}
		out = append(out, tg)
	}
	return out, rows.Err()
}

// setState stores s as the current state of chat's message at s.Seq; a deleted
// message loses its meta too.
func (a *opApplier) setState(ctx context.Context, chat string, s protocol.OpState) error {
	_, err := a.exec(ctx, `UPDATE messages SET content = ?, edited = ?, deleted = ?, edit_seq = ?, state_seq = ?,
		meta = CASE WHEN ? THEN NULL ELSE meta END WHERE chat_id = ? AND seq = ?`,
		s.Content, s.Edited, s.Deleted, s.EditSeq, s.StateSeq, s.Deleted, chat, s.Seq)
	return err
}

// clearOps removes what a deleted message's operations left: the text of its edits
// and its reactions.
func (a *opApplier) clearOps(ctx context.Context, chat, messageID string) error {
	for _, q := range []string{
		`UPDATE messages INDEXED BY messages_by_ref SET content = '' WHERE chat_id = ? AND ref_id = ? AND ref_id != '' AND message_type = 'edit'`,
		`DELETE FROM reactions WHERE chat_id = ? AND message_id = ?`,
	} {
		if _, err := a.exec(ctx, q, chat, messageID); err != nil {
			return fmt.Errorf("apply delete: %w", err)
		}
	}
	return nil
}

// catchUp applies to a newly stored message m the operations stored before it
// (which happens when persisters race), by the same rules (protocol.ApplyOp). Its
// document, new in this transaction, is not indexed yet: the indexer reads the
// state this leaves.
func (a *opApplier) catchUp(ctx context.Context, m *protocol.Message) error {
	rows, err := a.query(ctx, `SELECT seq, sender_id, message_type, content, meta FROM messages
		INDEXED BY messages_by_ref WHERE chat_id = ? AND ref_id = ? AND ref_id != '' AND message_type IN ('edit', 'delete', 'react') AND seq > ?
		ORDER BY seq`, m.ChatID, m.MessageID, m.Seq)
	if err != nil {
		return fmt.Errorf("catch up %s: %w", m.MessageID, err)
	}
	state := protocol.OpStateOf(m)
	stored := state
	for rows.Next() {
		e := protocol.Message{RefID: m.MessageID}
		var meta []byte
		if err := rows.Scan(&e.Seq, &e.SenderID, &e.MessageType, &e.Content, &meta); err != nil {
			rows.Close()
			return fmt.Errorf("catch up %s: %w", m.MessageID, err)
		}
		e.Meta = meta
		if op, ok := protocol.OpOf(&e); ok {
			state, _ = protocol.ApplyOp(state, op)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catch up %s: %w", m.MessageID, err)
	}
	if state != stored {
		if err := a.setState(ctx, m.ChatID, state); err != nil {
			return fmt.Errorf("catch up %s: %w", m.MessageID, err)
		}
		if state.Deleted {
			if err := a.clearOps(ctx, m.ChatID, m.MessageID); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowsPerInsert bounds one flush statement (2 parameters a row, well under
// SQLite's parameter limit).
const rowsPerInsert = 256

// flush writes the documents of indexed messages that changed, many rows per
// statement (FTS5 writes its pending terms at every statement), then indexes the
// pending documents if they are due (indexIfDue). AppendMessages calls it before
// commit.
func (a *opApplier) flush(ctx context.Context) error {
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
	a.byID = nil
	return a.indexIfDue(ctx)
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
