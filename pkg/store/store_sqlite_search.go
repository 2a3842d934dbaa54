package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"

	"github.com/natter-chat/natter/pkg/protocol"
)

// maxSearchTerms caps the words of one query.
const maxSearchTerms = 16

// searchWords splits a query's text into its words (runs of letters and digits, as
// both backends' tokenizers split them), at most maxSearchTerms. It returns
// ErrBadSearch (wrapped) for text over MaxSearchBytes or with no word.
func searchWords(text string) ([]string, error) {
	if len(text) > MaxSearchBytes {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBadSearch, MaxSearchBytes)
	}
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: no word to search for", ErrBadSearch)
	}
	if len(words) > maxSearchTerms {
		words = words[:maxSearchTerms]
	}
	return words, nil
}

// pageSize is q.Limit within 1..MaxSearch, DefaultSearch for 0.
func (q SearchQuery) pageSize() int {
	if q.Limit <= 0 {
		return DefaultSearch
	}
	return min(q.Limit, MaxSearch)
}

// ftsQuery turns free text into an FTS5 query that cannot use FTS5's syntax: each
// word (a run of letters and digits, as the unicode61 tokenizer splits them) becomes
// a quoted phrase, the last one also a prefix; all must match.
func ftsQuery(text string) (string, error) {
	words, err := searchWords(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + w + `"`) // letters and digits only: nothing to escape
		if i == len(words)-1 {
			b.WriteByte('*')
		}
	}
	return b.String(), nil
}

// Search implements Store with SQLite's FTS5 (unicode61 tokenizer, diacritics
// removed): the index holds each message's current text (store_sqlite_index.go).
// It first indexes the documents still pending, so it finds every message stored
// before it began.
func (s *SQLiteStore) Search(ctx context.Context, userID string, q SearchQuery) ([]protocol.Message, error) {
	match, err := ftsQuery(q.Text)
	if err != nil {
		return nil, err
	}
	if err := s.indexPending(ctx); err != nil {
		return nil, err
	}
	limit := q.pageSize()
	cursor := q.Before != (SearchCursor{})
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+prefixed("m.", msgCols)+`
		FROM search_fts f
		JOIN messages m INDEXED BY messages_by_doc ON m.doc_id = f.rowid
		JOIN members mb ON mb.chat_id = m.chat_id AND mb.user_id = ?
		WHERE search_fts MATCH ? AND (? = '' OR m.chat_id = ?) AND m.deleted = 0 AND m.message_type != 'encrypted'
			AND (m.expires_at = 0 OR m.expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER))
			AND (NOT ? OR (m.ts, m.chat_id, m.seq) < (?, ?, ?))
		ORDER BY m.ts DESC, m.chat_id DESC, m.seq DESC LIMIT ?`,
		userID, match, q.ChatID, q.ChatID, cursor, q.Before.Timestamp, q.Before.ChatID, q.Before.Seq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	msgs, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	if err := attachReactions(ctx, tx, userID, msgs); err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	return msgs, nil
}

// prefixed qualifies each column of a comma-separated list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}
