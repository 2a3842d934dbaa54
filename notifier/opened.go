package notifier

import (
	"sync"
	"time"
)

// openedWindows remembers the coalescing windows this instance opened, until
// shortly before the server can close them, so that the next messages of the same
// chat for the same user are folded into the window without asking the bucket.
//
// Every message to an offline recipient used to read the recipient's window key
// (one JetStream round trip) to learn that the window was open, which it almost
// always is while a chat talks: with 8 workers each waiting on that read, the
// notifier fell seconds behind a backend publishing 7,000–8,000 messages a second
// to offline users (docs/performance.md, "The notifier's open windows").
//
// An entry can only say "open" while the window certainly is: the window key is
// created with a TTL of at least the window (wholeSeconds) after the server stored
// it, which is after the moment taken before the create; nothing deletes window
// keys; and the entry ends openedMargin before that moment plus the window. Windows
// opened by another instance, or whose create found the key already there, are not
// remembered: the bucket answers for them, as before.
type openedWindows struct {
	window time.Duration
	mu     sync.Mutex // guards until, swept
	until  map[string]time.Time
	swept  time.Time
}

// openedMargin is how long before the earliest possible close an entry ends.
const openedMargin = 250 * time.Millisecond

func newOpenedWindows(window time.Duration) *openedWindows {
	return &openedWindows{window: window, until: map[string]time.Time{}}
}

// open reports whether key's window, opened by this instance, is still certainly
// open at now.
func (o *openedWindows) open(key string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.until[key]
	return ok && now.Before(u)
}

// opened records that key's window was created by a call that started at start.
// Entries past their end are dropped at most once a window, so the map holds about
// the windows opened in the last two.
func (o *openedWindows) opened(key string, start time.Time) {
	end := start.Add(o.window - openedMargin)
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if now.Sub(o.swept) >= o.window {
		for k, u := range o.until {
			if !now.Before(u) {
				delete(o.until, k)
			}
		}
		o.swept = now
	}
	if now.Before(end) {
		o.until[key] = end
	}
}

// size is how many windows are remembered (tests).
func (o *openedWindows) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.until)
}
