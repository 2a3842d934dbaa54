package notifier

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// coveredWindows remembers, per user and chat, the newest message a closed window's
// notification was decided on, so that a message the notifier reaches only later
// (it is behind the log) is folded into that notification instead of opening a
// window of its own.
//
// A notification is built when its window closes, from the chat's newest message in
// NATTER_LOG at that moment (lastMessage), not from the message that opened the
// window: its count and preview include every message sequenced until then, also
// those the log consumer has not handed to a worker yet. Once that decision is made
// (sent, or none due: read, nothing countable, expired), a later log message of the
// chat with a seq at or below the covered one is treated as if it had arrived while
// the window was open: it was part of what was decided on.
//
// Without this, a notifier that fell behind its log consumer did not catch up while
// the load lasted: windows close in real time, so by the time a worker reached a
// chat's next message in the backlog its window had closed, and every message opened
// a window again (a read and a write in the window bucket, tens of ms each on a busy
// server) and got a notification of its own (docs/performance.md, "The notifier
// behind its log").
//
// Entries live coveredTTL and at most coveredSize are kept; one that is gone only
// costs a window as before. Instances share the window consumer, so each remembers
// the notifications it decided; messages that go to another instance open windows
// as before.
type coveredWindows struct {
	mu  sync.Mutex // orders cover's read and write
	lru *expirable.LRU[string, uint64]
}

// Sizing of coveredWindows; package variables so tests can change them.
var (
	coveredSize = 100_000
	coveredTTL  = 10 * time.Minute
)

func newCoveredWindows() *coveredWindows {
	return &coveredWindows{lru: expirable.NewLRU[string, uint64](coveredSize, nil, coveredTTL)}
}

// covers reports whether a notification of key's window was decided on chat seq
// seq or a later one.
func (c *coveredWindows) covers(key string, seq uint64) bool {
	s, ok := c.lru.Peek(key)
	return ok && seq <= s
}

// cover records that a notification of key's window was decided on chat seq seq.
func (c *coveredWindows) cover(key string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.lru.Peek(key); ok && s >= seq {
		return
	}
	c.lru.Add(key, seq)
}
