package store

import "context"

// RecipientStore reads what notifications need for many users at once. The
// notifier's large-chat path asks it once per batch of members (notifier.batch-size)
// instead of three times per member: one read of the batch's read states, then, for
// the members with something unread, one of their unread totals (badges) and one of
// their devices.
//
// Each call takes at most MaxBulkMembers user IDs; an ID that is not a valid user ID,
// or a user with nothing stored, is simply absent from the answer.
type RecipientStore interface {
	// ReadStates returns the read state in chat of each of userIDs, as
	// GetReadState returns it; a user without one (zeros) may be absent.
	ReadStates(ctx context.Context, chatID string, userIDs []string) (map[string]ReadState, error)
	// UnreadTotals returns UnreadTotal(user, exceptChatID) of each of userIDs whose
	// total is not 0.
	UnreadTotals(ctx context.Context, userIDs []string, exceptChatID string) (map[string]uint64, error)
	// UsersDevices returns the devices of each of userIDs that has any, each user's
	// in the order of Devices.
	UsersDevices(ctx context.Context, userIDs []string) (map[string][]Device, error)
	// Recipient returns, in one read where the store can, what GetChat, GetMember,
	// GetMute and GetReadState return for chatID and userID: what a notification
	// of one user about one chat decides on. A chat that does not exist (or was
	// deleted) is a zero Chat, not an error.
	Recipient(ctx context.Context, chatID, userID string) (Recipient, error)
}

// Recipient is one user's standing in one chat, as a notification reads it.
type Recipient struct {
	Chat   Chat      // as GetChat returns it; zero (no ID) when it finds none
	Member bool      // GetMember finds userID
	Mute   Mute      // as GetMute returns it
	Read   ReadState // as GetReadState returns it
}
