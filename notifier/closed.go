package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/nats-io/nats.go/jetstream"
)

// closedWindows remembers, per window key, the revision of the marker the server
// left when the window closed (its TTL ran out) and this instance handled, so that
// the next window of the same user and chat is opened with one conditional write.
//
// A window key that existed before ends in such a marker, and the bucket's Create
// finds that out the long way: a write that fails (the key has a last revision), a
// read of the key, then the write again, on top of the read openWindow makes first
// to see whether the window is open. That is four JetStream round trips per window,
// and on a server busy with a backend's load each took 10–40 ms (docs/performance.md,
// "The notifier behind its log"). Knowing the marker's revision, the window is
// written once, expecting that revision as the key's last: it succeeds only if the
// key is unchanged since it closed, which is exactly when no window is open.
//
// Entries are used once. Markers handled by another instance (they share the window
// consumer) are not known here: those windows are opened as before.
type closedWindows struct {
	lru *expirable.LRU[string, uint64]
}

func newClosedWindows() *closedWindows {
	return &closedWindows{lru: expirable.NewLRU[string, uint64](coveredSize, nil, coveredTTL)}
}

// closed records that key's window closed with a marker at revision rev.
func (c *closedWindows) closed(key string, rev uint64) { c.lru.Add(key, rev) }

// take returns and forgets the revision of key's close marker, if known.
func (c *closedWindows) take(key string) (uint64, bool) {
	rev, ok := c.lru.Peek(key)
	if ok {
		c.lru.Remove(key)
	}
	return rev, ok
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
