package store

import "errors"

// ErrNotFound is returned when a chat, member or message does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrNotSupported is returned by a backend for an optional feature it does not have
// (full-text search on Cassandra: docs/search.md).
var ErrNotSupported = errors.New("store: not supported by this backend")

// ErrBadSearch is returned (wrapped) by Store.Search for query text with no word to
// look for, or longer than MaxSearchBytes.
var ErrBadSearch = errors.New("store: bad search query")
