package sequencer

import (
	"context"

	"github.com/natter-chat/natter/pkg/history"
	"github.com/natter-chat/natter/pkg/store"
)

// Store is what the sequencer uses of the store (pkg/store's Store has it all):
// a chat's state when it first sequences in it (last seq, chat, members), the
// exactly-once check of message IDs, the membership, name, TTL and deletion
// changes its system events make, the referenced messages of operations and
// replies (through a history.Reader) and block lists (through a
// store.BlockCache). Each method's contract is store.Store's.
type Store interface {
	history.Store
	store.BlockLister

	MessageSeqs(ctx context.Context, keys []store.MessageKey) (map[store.MessageKey]uint64, error)
	GetChat(ctx context.Context, chatID string) (store.Chat, error)
	Members(ctx context.Context, chatID string) ([]store.Member, error)
	AddMember(ctx context.Context, m store.Member) error
	RemoveMember(ctx context.Context, chatID, userID string) error
	AddMembers(ctx context.Context, chatID string, ms []store.Member) error
	RemoveMembers(ctx context.Context, chatID string, userIDs []string) error
	RenameChat(ctx context.Context, chatID, name string) error
	SetMessageTTL(ctx context.Context, chatID string, seconds int64) error
	DeleteChat(ctx context.Context, chatID string) error
}

var _ Store = store.Store(nil)
