// Package blockchanges announces changes of block lists to the roles that cache
// them (store.BlockCache), so a cache keeps a list until it changes instead of
// reading it again every few seconds: the sequencer checks the blocks of every
// message into a direct chat (sequencer/blocks.go), and that read was 3.5 % of the
// server's CPU under 1:1 load with a 2 s TTL (docs/performance.md, "Caches and
// decoding on the hot path").
//
// A gateway that changed a list announces it (Announce) on the core subject
// subjects.BlockChanges, with the blocker's ID as the payload, before it answers
// the change. A follower (Follow) takes the announcements its connection received
// before each read of the cache (Blocks), under a lock, so a message that reached
// the follower's connection after an announcement is checked against the changed
// list: NATS keeps the order of what one connection receives, and the gateway's
// announcement is flushed to the server before the client hears the answer, so
// before anything the client sends next. That order holds on one NATS server; in a
// cluster, and across a reconnect that lost announcements, the cache's TTL bounds
// how long a change can take.
package blockchanges

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
)

// flushTimeout bounds Announce's wait for the server.
const flushTimeout = 2 * time.Second

// Announce tells the followers that blocker's block list changed, and returns
// once the server has the announcement.
func Announce(nc *nats.Conn, subj subjects.Subjects, blocker string) error {
	if err := nc.Publish(subj.BlockChanges(), []byte(blocker)); err != nil {
		return fmt.Errorf("announce block change of %s: %w", blocker, err)
	}
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		return fmt.Errorf("announce block change of %s: flush: %w", blocker, err)
	}
	return nil
}

// pending is how many announcements a follower holds between two applies; more
// are dropped by the client library, and the follower then forgets every list.
const pending = 4096

// applyEvery is how often Run applies what arrived while nobody read the cache,
// so announcements do not pile up.
var applyEvery = 250 * time.Millisecond

// Follower applies announced changes to a block cache. Safe for concurrent use.
type Follower struct {
	cache *store.BlockCache
	sub   *nats.Subscription
	ch    chan *nats.Msg

	mu      sync.Mutex // held while announcements are taken from ch and applied
	dropped int        // the subscription's dropped count when last seen
}

// Follow subscribes to the announcements on nc for cache. Run must be called to
// apply them while nobody reads and to end the subscription.
func Follow(nc *nats.Conn, subj subjects.Subjects, cache *store.BlockCache) (*Follower, error) {
	f := &Follower{cache: cache, ch: make(chan *nats.Msg, pending)}
	sub, err := nc.ChanSubscribe(subj.BlockChanges(), f.ch)
	if err != nil {
		return nil, fmt.Errorf("follow block changes: %w", err)
	}
	f.sub = sub
	return f, nil
}

// apply forgets the lists of every announcement received so far, or every list
// if some were dropped.
func (f *Follower) apply() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		select {
		case m := <-f.ch:
			f.cache.Forget(string(m.Data))
			continue
		default:
		}
		break
	}
	if d, err := f.sub.Dropped(); err == nil && d != f.dropped {
		f.dropped = d
		f.cache.Purge()
	}
}

// Blocks reports whether blocker blocks blocked (store.BlockCache.Blocks), after
// applying every announcement received before the call.
func (f *Follower) Blocks(ctx context.Context, blocker, blocked string) (bool, error) {
	f.apply()
	return f.cache.Blocks(ctx, blocker, blocked)
}

// Run applies announcements every applyEvery until ctx ends, then unsubscribes.
func (f *Follower) Run(ctx context.Context) {
	t := time.NewTicker(applyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = f.sub.Unsubscribe()
			return
		case <-t.C:
			f.apply()
		}
	}
}
