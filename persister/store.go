package persister

import (
	"context"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Store is what the persister uses of the store (pkg/store's Store has it all):
// it appends what the log holds, erases the chats a chat_deleted event names,
// sweeps expired messages, and pings a store that failed a write. Each method's
// contract is store.Store's.
type Store interface {
	AppendMessages(ctx context.Context, msgs []protocol.Message) error
	DeleteChat(ctx context.Context, chatID string) error
	SweepExpired(ctx context.Context, now time.Time, limit int) (int, error)
	Ping(ctx context.Context) error
}

var _ Store = store.Store(nil)
