// Package historyread holds what the two ways of reading a chat's history share:
// the WebSocket and SSE history and sync frames (the gateway) and GET
// /api/v1/chats/{id}/messages. A page is capped in bytes (CapPage), a reader's
// history floor hides what they cleared (Floor), an answer says from which seq the
// reader may still read (RetainedFrom), and REST seq cursors are parsed strictly
// (ParseCursor). Stateless: callers pass the store and the limits.
package historyread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// CapPage trims a history page, ordered from its cursor outward (as
// history.Reader.Page returns it), to the messages whose JSON encodings fit in
// maxBytes together, always keeping the first: the page's frame or body then stays
// near maxBytes whatever its messages hold, where 500 messages at the content and
// meta limits would be over 10 MiB. limit is the page size the query asked for
// (already defaulted). hasMore is true when the store had a full page or the page
// was trimmed, so a client that pages until hasMore is false sees every message.
// maxBytes <= 0 trims nothing.
//
// The kept messages are copied out, so the trimmed ones are not held in memory by
// the page while it waits for a slow client (the gateway's conn.sendPaced).
func CapPage(msgs []protocol.Message, limit, maxBytes int) (page []protocol.Message, hasMore bool) {
	hasMore = len(msgs) >= limit
	if maxBytes <= 0 || len(msgs) == 0 {
		return NonNil(msgs), hasMore
	}
	size, n := 0, 0
	for n < len(msgs) {
		b, err := json.Marshal(&msgs[n])
		if err != nil {
			break // cannot happen for a decoded message; the frame encoder would fail alike
		}
		if n > 0 && size+len(b)+1 > maxBytes {
			break
		}
		size += len(b) + 1 // and a comma
		n++
	}
	if n == len(msgs) {
		return msgs, hasMore
	}
	return slices.Clone(msgs[:n]), true
}

// NonNil returns m, or an empty slice for nil, so a page encodes as [] not null.
func NonNil(m []protocol.Message) []protocol.Message {
	if m == nil {
		return []protocol.Message{}
	}
	return m
}

// A reader's history floor: clearing a chat for oneself (POST
// /api/v1/chats/{id}/clear, gateway/retention) raises it, and history reads show
// nothing at or below it.

// FloorStore is the store call Floor makes.
type FloorStore interface {
	// HistoryFloor returns user's floor in chat (0: none), or
	// store.ErrNotSupported when the backend keeps none.
	HistoryFloor(ctx context.Context, chat, user string) (uint64, error)
}

// Floor returns user's history floor in chat (0: none, also when the store keeps
// no floors), or unavailable when the store could not answer.
func Floor(ctx context.Context, st FloorStore, chat, user string) (uint64, error) {
	floor, err := st.HistoryFloor(ctx, chat, user)
	if err != nil {
		if errors.Is(err, store.ErrNotSupported) {
			return 0, nil
		}
		return 0, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("history floor of %s: %w", chat, err))
	}
	return floor, nil
}

// RetainedFrom is the lowest seq the reader may still read, as far as a history
// answer to q (page, hasMore) shows it: above the reader's floor, and, when a
// backward page reached the start of what is left (hasMore false), its oldest
// message. 0 when nothing is known to be gone.
func RetainedFrom(floor uint64, q store.HistoryQuery, page []protocol.Message, hasMore bool) uint64 {
	var from uint64
	if floor > 0 {
		from = floor + 1
	}
	if q.Dir == store.Backward && !hasMore && len(page) > 0 && page[len(page)-1].Seq > 1 {
		from = max(from, page[len(page)-1].Seq)
	}
	return from
}

// ParseCursor reads a REST seq cursor named name ("before" or "after"): a decimal
// uint64 of at most 20 digits (after=0 means from the start), or empty for none.
// Anything else is bad_request.
func ParseCursor(name, v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || (n == 0 && name != "after") || len(v) > 20 {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "%s must be a cursor from a previous page", name)
	}
	return n, nil
}
