package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The full-text index (search_fts, a contentless FTS5 table) is fed in bulk, not
// per message: issue 17's profile had the per-batch index writes (a search_docs
// row with its (chat, seq) index and an FTS5 insert for every message, a new
// FTS5 segment for every persister batch) at about a third of the persister's
// SQLite CPU.
//
// Every searchable message (protocol.Searchable) gets a document ID when it is
// stored: messages.doc_id, from the counter search_state.next_doc, in the same
// INSERT as the row. search_state.indexed is the indexer's watermark: the
// documents below it are in search_fts in their current state (a document exists
// for a message that has text and is not deleted: hasDoc), those from it up are
// not in search_fts at all. Indexing the pending documents is one statement,
// INSERT INTO search_fts ... SELECT from messages, which reads each message's
// current text, so an edit or delete of a message not indexed yet costs the index
// nothing. Changes to an indexed message (edit, delete, erase, expiry, chat
// deletion) update search_fts at once, in the transaction that makes them.
//
// The pending documents are indexed in the transaction of the append that brings
// them to sqliteIndexBatch, and by Search before it reads (indexPending), so a
// search finds every message stored before it began: the index is off the
// per-message path without making search eventually consistent. Both run on the
// writer connection, so the watermark is read and moved under SQLite's write lock.

// sqliteIndexBatch is how many documents wait for the index before an append
// indexes them. Tests set it to 1 to index every append.
var sqliteIndexBatch int64 = 1000

// The statements of search_state that appends run, prepared once (appendStmts.ops).
const (
	sqlDocState    = `SELECT next_doc, indexed FROM search_state WHERE id = 1`
	sqlSetDocState = `UPDATE search_state SET next_doc = ?, indexed = ? WHERE id = 1`
)

// hasDoc reports whether a message in this state has a document in the index
// (once the indexer has passed its doc_id): the indexer's SQL condition is the same.
func hasDoc(content string, deleted bool) bool { return !deleted && content != "" }

// docIDs is one write transaction's copy of search_state, read on first use.
type docIDs struct {
	loaded, moved bool
	next, indexed int64
}

// docState returns the transaction's copy of search_state.
func (a *opApplier) docState(ctx context.Context) (*docIDs, error) {
	if !a.docs.loaded {
		if err := a.scan(ctx, sqlDocState, nil,
			&a.docs.next, &a.docs.indexed); err != nil {
			return nil, fmt.Errorf("search index: state: %w", err)
		}
		a.docs.loaded = true
	}
	return &a.docs, nil
}

// peekDoc returns the document ID the next stored searchable message gets;
// takeDoc consumes it once the message is stored.
func (a *opApplier) peekDoc(ctx context.Context) (int64, error) {
	d, err := a.docState(ctx)
	if err != nil {
		return 0, err
	}
	return d.next, nil
}

func (a *opApplier) takeDoc() { a.docs.next++; a.docs.moved = true }

// reindex keeps the index in step with a change of the searchable message (chat,
// seq) from a state that had a document (had, see hasDoc) to one that has one
// with content (has). doc is its doc_id, 0 if it has none: a message stored
// before documents had IDs and had no text then gets one now.
func (a *opApplier) reindex(ctx context.Context, chat string, seq uint64, doc int64, had, has bool, content string) error {
	if !had && !has {
		return nil
	}
	d, err := a.docState(ctx)
	if err != nil {
		return err
	}
	if doc == 0 {
		if !has {
			return nil
		}
		if _, err := a.exec(ctx, `UPDATE messages SET doc_id = ? WHERE chat_id = ? AND seq = ?`, d.next, chat, seq); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		a.takeDoc() // at or above the watermark: the indexer reads it
		return nil
	}
	if doc >= d.indexed {
		return nil // not indexed yet: the indexer reads its current state
	}
	if _, queued := a.byID[doc]; queued {
		delete(a.byID, doc) // not in search_fts yet
	} else if had {
		if _, err := a.exec(ctx, `DELETE FROM search_fts WHERE rowid = ?`, doc); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
	}
	if has {
		if a.byID == nil {
			a.byID = map[int64]string{}
		}
		a.byID[doc] = content
	}
	return nil
}

// indexIfDue indexes the pending documents if there are sqliteIndexBatch of
// them, and writes search_state if the transaction moved it.
func (a *opApplier) indexIfDue(ctx context.Context) error {
	if !a.docs.loaded {
		return nil
	}
	if a.docs.next-a.docs.indexed >= sqliteIndexBatch {
		if err := indexRange(ctx, a.tx, a.docs.indexed, a.docs.next); err != nil {
			return err
		}
		a.docs.indexed, a.docs.moved = a.docs.next, true
	}
	if !a.docs.moved {
		return nil
	}
	if _, err := a.exec(ctx, sqlSetDocState, a.docs.next, a.docs.indexed); err != nil {
		return fmt.Errorf("search index: state: %w", err)
	}
	return nil
}

// indexRange adds the documents from, up to to (excluded), to the index in their
// current state, in one statement: FTS5 writes one segment for it.
func indexRange(ctx context.Context, tx *sql.Tx, from, to int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO search_fts (rowid, content)
		SELECT doc_id, content FROM messages INDEXED BY messages_by_doc
		WHERE doc_id >= ? AND doc_id < ? AND deleted = 0 AND content != ''`, from, to); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// indexPending indexes every pending document, so a search that follows finds
// every message stored before. It costs a look at search_state on the read pool
// when nothing is pending.
func (s *SQLiteStore) indexPending(ctx context.Context) error {
	var pending bool
	if err := s.r.QueryRowContext(ctx, `SELECT next_doc > indexed FROM search_state WHERE id = 1`).Scan(&pending); err != nil {
		return fmt.Errorf("sqlite: search index: %w", err)
	}
	if !pending {
		return nil
	}
	return s.inTx(ctx, "search index", func(tx *sql.Tx) error {
		var next, indexed int64
		if err := tx.QueryRowContext(ctx, `SELECT next_doc, indexed FROM search_state WHERE id = 1`).Scan(&next, &indexed); err != nil {
			return err
		}
		if next <= indexed {
			return nil // an append indexed them meanwhile
		}
		if err := indexRange(ctx, tx, indexed, next); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE search_state SET indexed = ? WHERE id = 1`, next)
		return err
	})
}

// indexedDocs is the SQL condition that a messages row (unqualified columns) has a
// document in search_fts: below the watermark and hasDoc.
const indexedDocs = `doc_id < (SELECT indexed FROM search_state WHERE id = 1) AND deleted = 0 AND content != ''`
