package gateway

import (
	"encoding/json"
	"slices"

	"github.com/natter-chat/natter/pkg/protocol"
)

// capPage trims a history page, ordered from its cursor outward (as
// history.Reader.Page returns it), to the messages whose JSON encodings fit in
// maxBytes together, always keeping the first: the page's frame or body then stays
// near maxBytes whatever its messages hold, where 500 messages at the content and
// meta limits would be over 10 MiB. limit is the page size the query asked for
// (already defaulted). hasMore is true when the store had a full page or the page
// was trimmed, so a client that pages until hasMore is false sees every message.
// maxBytes <= 0 trims nothing.
//
// The kept messages are copied out, so the trimmed ones are not held in memory by
// the page while it waits for a slow client (conn.sendPaced).
func capPage(msgs []protocol.Message, limit, maxBytes int) (page []protocol.Message, hasMore bool) {
	hasMore = len(msgs) >= limit
	if maxBytes <= 0 || len(msgs) == 0 {
		return nonNil(msgs), hasMore
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
