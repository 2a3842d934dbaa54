package store

import "errors"

// ErrNotFound is returned when a chat, member or message does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrNotSupported is returned by a backend for an optional feature it does not have.
var ErrNotSupported = errors.New("store: not supported by this backend")

// ErrBadSearch is returned (wrapped) by Searcher.Search for query text with no word to
// look for, or longer than MaxSearchBytes.
var ErrBadSearch = errors.New("store: bad search query")

// ErrChatDeleted is CreateChat's answer for the ID of a chat that was deleted
// (DeleteChat): a deleted chat's ID is never used again.
var ErrChatDeleted = errors.New("store: chat was deleted")
