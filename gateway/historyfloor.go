package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// A reader's history floor: clearing a chat for oneself (POST
// /api/v1/chats/{id}/clear, gateway/retention) raises it, and history reads show
// nothing at or below it.

// historyFloor returns user's history floor in chat (0: none).
func (g *Gateway) historyFloor(ctx context.Context, chat, user string) (uint64, error) {
	floor, err := g.deps.Store.HistoryFloor(ctx, chat, user)
	if err != nil {
		if errors.Is(err, store.ErrNotSupported) {
			return 0, nil
		}
		return 0, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("history floor of %s: %w", chat, err))
	}
	return floor, nil
}

// retainedFrom is the lowest seq the reader may still read, as far as a history
// answer to q (page, hasMore) shows it: above the reader's floor, and, when a
// backward page reached the start of what is left (hasMore false), its oldest
// message. 0 when nothing is known to be gone.
func retainedFrom(floor uint64, q store.HistoryQuery, page []protocol.Message, hasMore bool) uint64 {
	var from uint64
	if floor > 0 {
		from = floor + 1
	}
	if q.Dir == store.Backward && !hasMore && len(page) > 0 && page[len(page)-1].Seq > 1 {
		from = max(from, page[len(page)-1].Seq)
	}
	return from
}
