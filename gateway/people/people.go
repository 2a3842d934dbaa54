// Package people is the gateway's REST API about users rather than chats: profiles
// (profiles.go), push devices (devices.go), blocks (blocks.go) and the answers to
// group invitations (invitations.go). Its handlers see the gateway only through
// Deps: the store calls they make, a membership check, the media service's avatar
// claim, the block cache and presence watches a new block must reach at once, and
// the chat-change path an accepted invitation joins.
package people

import (
	"context"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// ProfileReader is the part of the store that reading profiles needs.
type ProfileReader interface {
	Profiles(ctx context.Context, userIDs []string) ([]store.Profile, error)
	// SharesChat: another user's profile is readable by those sharing a chat.
	SharesChat(ctx context.Context, user string, others []string) (map[string]bool, error)
}

// Store is the part of the store the people API uses.
type Store interface {
	ProfileReader
	PutProfile(ctx context.Context, p store.Profile) error
	Members(ctx context.Context, chatID string) ([]store.Member, error)

	PutDevice(ctx context.Context, d store.Device) error
	Devices(ctx context.Context, userID string) ([]store.Device, error)
	DeleteDevice(ctx context.Context, userID, deviceID string) (bool, error)

	Block(ctx context.Context, b store.Block) (created bool, err error)
	Unblock(ctx context.Context, blocker, blocked string) (bool, error)
	Blocks(ctx context.Context, blocker string) ([]store.Block, error)
	Invitations(ctx context.Context, userID string) ([]store.Invitation, error)
	DeleteInvitation(ctx context.Context, userID, chatID string) (bool, error)

	GetInvitation(ctx context.Context, userID, chatID string) (store.Invitation, error)
	GetChat(ctx context.Context, chatID string) (store.Chat, error)
	GetMember(ctx context.Context, chatID, userID string) (store.Member, error)
}

// Groups is the gateway's chat-change path, which accepting an invitation joins.
type Groups interface {
	// RoomFor returns nil if chat can take n more members, else group_full.
	RoomFor(ctx context.Context, chat string, n int) error
	// Announce publishes ev as a system message of chat sent by actor and waits
	// (at most gateway.publish-timeout) for it to be sequenced: Seq is 0 in the
	// answer if it was not in time. An error means nothing changed.
	Announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatchange.Answer, error)
	// Forget drops a cached membership after a change through this gateway.
	Forget(chat, user string)
	// TellInvitation sends an invitation frame in state to the invitee's devices.
	TellInvitation(inv store.Invitation, state string)
}

// Chats checks a caller's access to a chat.
type Chats interface {
	// MemberOf returns nil if chat is an ID of a chat user is a member of now
	// (asking the store), else a *protocol.Error: invalid_id, not_member (also for
	// a chat that does not exist), or unavailable.
	MemberOf(ctx context.Context, chat, user string) error
}

// Avatars claims an upload as an avatar (the media service).
type Avatars interface {
	// ClaimAvatar checks that mediaID is an image uploader uploaded and keeps it
	// from expiring unshared; a refusal is a *protocol.Error.
	ClaimAvatar(ctx context.Context, uploader, mediaID string) error
}

// BlockCache is this gateway's cache of block lists (store.BlockCache).
type BlockCache interface {
	// Forget drops blocker's cached list, so this gateway applies a change at once.
	Forget(blocker string)
}

// Presence is this gateway's presence watches (gateway/livestate).
type Presence interface {
	// DropBlocked ends blocked's watches of blocker's presence on this gateway.
	DropBlocked(blocker, blocked string)
}

// Deps are what the people API needs from the gateway.
type Deps struct {
	Store    Store
	Chats    Chats
	Avatars  Avatars
	Blocks   BlockCache
	Presence Presence
	Groups   Groups
	// Body bounds JSON request bodies (gateway.max-body-bytes, body-timeout).
	Body httpx.Body
}

// Config is what the people API shows of the server's settings.
type Config struct {
	// DirectAddsDefault is gateway.consent-direct-adds: whether a user who chose
	// no groupAdds may be added to groups by anyone (shown in the own profile).
	DirectAddsDefault bool
}

// Service serves the people routes. It is safe for concurrent use.
type Service struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
}

// New returns the people API.
func New(cfg Config, deps Deps, log *zap.Logger) *Service {
	return &Service{cfg: cfg, deps: deps, log: log}
}

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }
