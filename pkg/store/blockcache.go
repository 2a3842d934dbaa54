package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// blockCacheSize bounds the block lists one BlockCache holds.
const blockCacheSize = 100_000

// BlockLister is what BlockCache reads: PeopleStore.Blocks.
type BlockLister interface {
	Blocks(ctx context.Context, blocker string) ([]Block, error)
}

// BlockCache holds block lists (blocker → the users they block) read from a
// BlockLister (a PeopleStore), each trusted for a TTL: a block made through another process
// applies here within that time. The gateway, the sequencer and the notifier each
// hold one. Safe for concurrent use.
type BlockCache struct {
	st  BlockLister
	lru *expirable.LRU[string, map[string]struct{}]
	// forgets counts Forget and Purge calls: a list read while one happened may
	// predate the change, so it is returned but not cached.
	forgets atomic.Uint64
}

// NewBlockCache returns a cache of st's block lists, each kept for ttl.
func NewBlockCache(st BlockLister, ttl time.Duration) *BlockCache {
	return &BlockCache{st: st, lru: expirable.NewLRU[string, map[string]struct{}](blockCacheSize, nil, ttl)}
}

// Of returns the set of users blocker blocks. The set is shared: do not change it.
func (b *BlockCache) Of(ctx context.Context, blocker string) (map[string]struct{}, error) {
	if set, ok := b.lru.Get(blocker); ok {
		return set, nil
	}
	forgets := b.forgets.Load()
	bs, err := b.st.Blocks(ctx, blocker)
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", blocker, err)
	}
	set := make(map[string]struct{}, len(bs))
	for _, x := range bs {
		set[x.Blocked] = struct{}{}
	}
	if b.forgets.Load() == forgets {
		b.lru.Add(blocker, set)
	}
	return set, nil
}

// Blocks reports whether blocker blocks blocked.
func (b *BlockCache) Blocks(ctx context.Context, blocker, blocked string) (bool, error) {
	set, err := b.Of(ctx, blocker)
	if err != nil {
		return false, err
	}
	_, yes := set[blocked]
	return yes, nil
}

// Forget drops blocker's cached list (after a change made through this process,
// or announced: pkg/blockchanges).
func (b *BlockCache) Forget(blocker string) {
	b.forgets.Add(1)
	b.lru.Remove(blocker)
}

// Purge drops every cached list (announcements of changes may have been lost).
func (b *BlockCache) Purge() {
	b.forgets.Add(1)
	b.lru.Purge()
}
