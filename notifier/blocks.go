package notifier

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/natter-chat/natter/pkg/store"
)

// Blocking (docs/protocol.md, "Blocking"): a user's message never causes a
// notification to someone who blocks them, and a notification of a window another
// sender opened does not preview a blocked sender's message.

// BlockCacheTTL is how long the notifier trusts a block list it read: a new block
// stops notifications within this time.
var BlockCacheTTL = 2 * time.Second

// blockCache holds block lists (blocker → the users they block). Safe for
// concurrent use.
type blockCache struct {
	st  store.PeopleStore
	lru *expirable.LRU[string, map[string]struct{}]
}

func newBlockCache(st store.PeopleStore) *blockCache {
	return &blockCache{st: st, lru: expirable.NewLRU[string, map[string]struct{}](100_000, nil, BlockCacheTTL)}
}

// blocks reports whether blocker blocks blocked.
func (b *blockCache) blocks(ctx context.Context, blocker, blocked string) (bool, error) {
	set, ok := b.lru.Get(blocker)
	if !ok {
		bs, err := b.st.Blocks(ctx, blocker)
		if err != nil {
			return false, fmt.Errorf("blocks of %s: %w", blocker, err)
		}
		set = make(map[string]struct{}, len(bs))
		for _, x := range bs {
			set[x.Blocked] = struct{}{}
		}
		b.lru.Add(blocker, set)
	}
	_, yes := set[blocked]
	return yes, nil
}
