package gateway

import (
	"context"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// chatFlags knows which chats are end-to-end encrypted, so that the edge refuses a
// message type such a chat does not take (protocol.CheckEncryption) before it is
// stored in NATTER_IN. The flag is set when a chat is created and never changes, so
// answers are cached; the sequencer checks again with its own view, so a send the
// edge could not check (store down) is still refused there.
type chatFlags struct {
	st    store.Store
	cache *expirable.LRU[string, bool]
}

func newChatFlags(st store.Store, size int, ttl time.Duration) *chatFlags {
	return &chatFlags{st: st, cache: expirable.NewLRU[string, bool](size, nil, ttl)}
}

// encrypted reports whether chat is end-to-end encrypted; known is false when the
// chat could not be read (it does not exist, or the store failed).
func (f *chatFlags) encrypted(ctx context.Context, chat string) (enc, known bool) {
	if enc, ok := f.cache.Get(chat); ok {
		return enc, true
	}
	c, err := f.st.GetChat(ctx, chat)
	if err != nil {
		return false, false
	}
	f.cache.Add(chat, c.Encrypted)
	return c.Encrypted, true
}

// checkType refuses messageType in chat when protocol.CheckEncryption does; an
// unknown chat is left to the membership check and the sequencer.
func (f *chatFlags) checkType(ctx context.Context, chat, messageType string) error {
	enc, known := f.encrypted(ctx, chat)
	if !known {
		return nil
	}
	if perr := protocol.CheckEncryption(enc, messageType); perr != nil {
		return perr
	}
	return nil
}
