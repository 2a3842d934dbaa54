package store

import "errors"

// ErrNotFound is returned when a chat, member or message does not exist.
var ErrNotFound = errors.New("store: not found")
