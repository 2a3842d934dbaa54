package store

import (
	"context"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Searcher is the optional full-text search of a store (docs/search.md): a side
// interface, checked where it is needed (s.(store.Searcher)), so a backend without
// full-text search implements Store without a stub. Both backends here implement it
// (SQLite with FTS5, Cassandra with SAI).
type Searcher interface {
	// Search returns the messages of userID's current chats that match q, newest
	// first (timestamp, then chat ID, then seq, all descending), in their current
	// state: edited text is found by its new words, deleted messages and
	// operations, system messages and chats userID has left are never found.
	// ErrBadSearch (wrapped) for text with no word or over MaxSearchBytes.
	Search(ctx context.Context, userID string, q SearchQuery) ([]protocol.Message, error)
}

var (
	_ Searcher = (*SQLiteStore)(nil)
	_ Searcher = (*CassandraStore)(nil)
)

// SearchQuery is a full-text search over the chats a user is a member of.
type SearchQuery struct {
	// Text is what to find: words (case- and accent-insensitive), all of which a
	// message must contain; the last word also matches as a prefix. Required.
	Text string
	// ChatID restricts the search to one chat; empty searches all the user's chats.
	ChatID string
	// Before continues after a previous page: only messages older than this one
	// (by timestamp, then chat ID, then seq). Zero: from the newest.
	Before SearchCursor
	// Limit is 1..MaxSearch; 0 means DefaultSearch.
	Limit int
}

// SearchCursor names the last message of a search page.
type SearchCursor struct {
	Timestamp int64 // ms since the epoch
	ChatID    string
	Seq       uint64
}

// Search page sizes and the longest query text, in bytes.
const (
	DefaultSearch  = 20
	MaxSearch      = 100
	MaxSearchBytes = 256
)
