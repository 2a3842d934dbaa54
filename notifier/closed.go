package notifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/nats-io/nats.go/jetstream"
)

// closedWindows remembers, per window key, what this instance learned when it
// handled the window's close: the revision of the marker the server left when its
// TTL ran out, and the chat seq the window's notification was decided on.
//
// The marker's revision opens the next window of the same user and chat with one
// conditional write (reopen). A window key that existed before ends in such a
// marker, and the bucket's Create finds that out the long way: a write that fails
// (the key has a last revision), a read of the key, then the write again, on top of
// the read openWindow makes first to see whether the window is open. That is four
// JetStream round trips per window, and on a server busy with a backend's load each
// took 10–40 ms (docs/performance.md, "The notifier behind its log"). Knowing the
// marker's revision, the window is written once, expecting that revision as the
// key's last: it succeeds only if the key is unchanged since it closed, which is
// exactly when no window is open. A marker's revision is used once.
//
// The decided seq folds messages the notifier reaches only later (it is behind the
// log) into that notification instead of opening a window for them. A notification
// is built when its window closes, from the chat's newest message in NATTER_LOG at
// that moment (lastMessage), not from the message that opened the window: its count
// and preview include every message sequenced until then, also those the log
// consumer has not handed to a worker yet. Once that decision is made (sent, or none
// due: read, nothing countable, expired), a later log message of the chat with a seq
// at or below it is treated as if it had arrived while the window was open. Without
// this, a notifier that fell behind did not catch up while the load lasted: windows
// close in real time, so by the time a worker reached a chat's next message in the
// backlog its window had closed, and every message opened a window again and got a
// notification of its own.
//
// Entries live closedTTL and at most closedSize are kept; one that is gone only
// costs a window opened as before. Instances share the window consumer, so each
// knows the windows whose close it handled; the others are opened as before.
type closedWindows struct {
	mu  sync.Mutex // orders each entry's read and write
	lru *expirable.LRU[string, closedWindow]
}

// closedWindow is what closedWindows knows of one window key.
type closedWindow struct {
	marker  uint64 // revision of the close marker; 0: unknown, or used
	decided uint64 // chat seq the notification was decided on; 0: none
}

// Sizing of closedWindows; package variables so tests can change them.
var (
	closedSize = 100_000
	closedTTL  = 10 * time.Minute
)

func newClosedWindows() *closedWindows {
	return &closedWindows{lru: expirable.NewLRU[string, closedWindow](closedSize, nil, closedTTL)}
}

// update applies f to key's entry (the zero entry if none) and stores it.
func (c *closedWindows) update(key string, f func(*closedWindow)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, _ := c.lru.Peek(key)
	f(&w)
	c.lru.Add(key, w)
}

// closed records that key's window closed with a marker at revision rev.
func (c *closedWindows) closed(key string, rev uint64) {
	c.update(key, func(w *closedWindow) { w.marker = rev })
}

// take returns and forgets the revision of key's close marker; 0 if not known.
func (c *closedWindows) take(key string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.lru.Peek(key)
	if !ok || w.marker == 0 {
		return 0
	}
	rev := w.marker
	w.marker = 0
	c.lru.Add(key, w)
	return rev
}

// cover records that a notification of key's window was decided on chat seq seq;
// a later, older decision does not lower it.
func (c *closedWindows) cover(key string, seq uint64) {
	c.update(key, func(w *closedWindow) { w.decided = max(w.decided, seq) })
}

// covers reports whether a notification of key's window was decided on chat seq
// seq or a later one.
func (c *closedWindows) covers(key string, seq uint64) bool {
	w, ok := c.lru.Peek(key)
	return ok && seq <= w.decided
}

// errWindowChanged is reopen's answer when the key changed since its marker.
var errWindowChanged = errors.New("window key changed since it closed")

// reopen opens key's window (TTL ttl) with one write that expects rev, the revision
// of its close marker, to be the key's last. errWindowChanged: the key changed
// meanwhile (another window, or another marker).
func (n *Notifier) reopen(ctx context.Context, key string, rev uint64, ttl time.Duration) error {
	_, err := n.deps.JS.Publish(ctx, "$KV."+WindowBucket+"."+key, nil,
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errWindowChanged
	}
	if err != nil {
		return fmt.Errorf("reopen window %s: %w", key, err)
	}
	return nil
}
