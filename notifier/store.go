package notifier

import (
	"context"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Store is what the notifier uses of the store (pkg/store's Store has it all):
// who is in a chat and how they set it (members, mutes, read state), the
// messages and unread counts a notification shows, the devices it is pushed to
// (and the removal of tokens a push service rejected) and block lists (through a
// store.BlockCache). Each method's contract is store.Store's.
type Store interface {
	store.BlockLister
	// RecipientStore: a large chat's member batch in three reads (large.go).
	store.RecipientStore

	GetChat(ctx context.Context, chatID string) (store.Chat, error)
	GetMember(ctx context.Context, chatID, userID string) (store.Member, error)
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]store.Member, error)
	GetMute(ctx context.Context, chatID, userID string) (store.Mute, error)
	ChatMutes(ctx context.Context, chatID string) ([]store.Mute, error)
	GetReadState(ctx context.Context, chatID, userID string) (store.ReadState, error)
	UnreadTotal(ctx context.Context, userID, exceptChatID string) (uint64, error)
	UnreadBetween(ctx context.Context, chatID, userID string, after, upTo uint64) (uint64, error)
	History(ctx context.Context, chatID string, q store.HistoryQuery) ([]protocol.Message, error)
	Devices(ctx context.Context, userID string) ([]store.Device, error)
	DeleteDeviceToken(ctx context.Context, userID, provider, token string) (bool, error)
}

var _ Store = store.Store(nil)
