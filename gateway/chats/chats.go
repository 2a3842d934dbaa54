// Package chats serves a caller's chats over REST (docs/protocol.md, "Chats and
// members"): creating a chat (create.go), the reads (reads.go), sending
// (send.go), renaming a group (rename.go), leaving one (leave.go) and its members
// (members.go, members_bulk.go, with consent.go and invite.go).
//
//	POST  /api/v1/chats                   create a direct chat or a group
//	GET   /api/v1/chats                   the caller's chats by last activity, paged by ?cursor=
//	GET   /api/v1/chats/{id}              a chat and the first page of its members
//	GET   /api/v1/chats/{id}/members      its members, paged: ?after=&limit=
//	GET   /api/v1/chats/{id}/messages     its history, paged: ?before= or ?after=
//	POST  /api/v1/chats/{id}/messages     send a message (a service: as a bot or the system)
//	PATCH /api/v1/chats/{id}              {"name"}: rename a group (admins)
//	POST  /api/v1/chats/{id}/leave        leave a group (members)
//	POST, DELETE /api/v1/chats/{id}/members[/{uid}]   add, remove, change roles (admins; members.go)
//
// Rights are checked against the store, not the gateway's edge cache of
// memberships, so a removal takes effect at once on every gateway. Every change
// but creation is a system event published through Changes.
package chats

import (
	"context"
	"errors"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// ChatGetter is the store call MemberOf makes.
type ChatGetter interface {
	GetChat(ctx context.Context, chatID string) (store.Chat, error)
}

// Store is the part of the store the chat reads use.
type Store interface {
	ChatGetter
	UserChats(ctx context.Context, userID string, limit, offset int) ([]store.ChatSummary, error)
	UserChatsBefore(ctx context.Context, userID string, cursor store.ChatListCursor, limit int) ([]store.ChatSummary, error)
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]store.Member, error)
	// HistoryFloor is the reader's floor (historyread.Floor).
	HistoryFloor(ctx context.Context, chatID, userID string) (uint64, error)
	// ChatAdmins returns up to limit admins of chat (LeavesNoAdmin).
	ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error)
	// The member changes (members.go, members_bulk.go, invite.go).
	GetMember(ctx context.Context, chatID, userID string) (store.Member, error)
	MembersAmong(ctx context.Context, chatID string, userIDs []string) ([]store.Member, error)
	MemberCount(ctx context.Context, chatID string) (int, error)
	PutInvitation(ctx context.Context, inv store.Invitation) (bool, error)
	// Creating a chat (create.go).
	CreateChat(ctx context.Context, chat store.Chat, members []store.Member) (stored store.Chat, created bool, err error)
	Members(ctx context.Context, chatID string) ([]store.Member, error)
	// The consent rule's reads (LoadConsent).
	ConsentStore
}

// Large is what the large-chat watch knows of a chat (gateway/largechat).
type Large interface {
	// MemberCount is the member count the sequencer keeps for a large chat; ok
	// is false for a chat that is not large.
	MemberCount(chat string) (count int, ok bool)
	// Mark marks a new chat of members members large, before its first message.
	Mark(ctx context.Context, chat string, members int) error
}

// History reads a chat's messages (history.Reader).
type History interface {
	Page(ctx context.Context, chat string, q store.HistoryQuery) ([]protocol.Message, error)
}

// Members checks a membership against the store and refreshes the gateway's
// cached answer (the gateway's member cache).
type Members interface {
	// CheckFresh returns user's membership of chat now, or a *protocol.Error:
	// not_member, or unavailable.
	CheckFresh(ctx context.Context, chat, user string) (store.Member, error)
	// IsMember is the edge cache's answer (a removal on another gateway shows
	// within its TTL; the sequencer holds the authoritative view): nil, or
	// not_member, or unavailable.
	IsMember(ctx context.Context, chat, user string) error
	// Forget drops the cached membership (after user left or was removed here).
	Forget(chat, user string)
}

// Limits are the REST buckets the chat routes charge. Each returns nil or
// rate_limited (counted by the gateway).
type Limits interface {
	// TakePost charges one post of user (a service's when service is set).
	TakePost(user string, service bool) error
	// TakeMemberAdds charges n member adds by user (a service has a larger
	// bucket).
	TakeMemberAdds(user string, service bool, n int) error
	// TakeInvites charges n invitations by user.
	TakeInvites(user string, n int) error
	// TakeChatCreate charges a chat creation and members member adds by user,
	// all or nothing; cancel gives them back (the creation was refused).
	TakeChatCreate(user string, service bool, members int) (cancel func(), err error)
}

// Deps are what the chat routes need from the gateway.
type Deps struct {
	Store   Store
	History History
	Members Members
	// Limits are the REST buckets every route that adds charges.
	Limits Limits
	// Sends, Rules and Media are the path of a REST send (send.go).
	Sends Sends
	Rules SendRules
	Media Media
	// Changes publishes the changes to a group (rename.go, leave.go,
	// members.go).
	Changes Changes
	// Large counts and marks large chats (RoomFor, create.go); Invitations
	// tells invitees.
	Large       Large
	Invitations Invitations
	// Blocks refuses a direct chat with a user who blocks the creator.
	Blocks Blocks
	// Body bounds JSON request bodies (gateway.max-body-bytes, body-timeout).
	Body httpx.Body
}

// Config is the gateway settings the chat reads follow.
type Config struct {
	// HistoryPageBytes is gateway.history-page-bytes: a page of messages is cut
	// to about this many bytes (historyread.CapPage).
	HistoryPageBytes int
	// MaxGroupMembers is gateway.max-group-members (RoomFor).
	MaxGroupMembers int
	// ConsentDirectAdds is gateway.consent-direct-adds (Consent).
	ConsentDirectAdds bool
	// LargeChatThreshold: a chat created with more members is marked large
	// (gateway/largechat); 0 never.
	LargeChatThreshold int
}

// Service serves the routes. It is safe for concurrent use.
type Service struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
}

// New returns the service.
func New(cfg Config, deps Deps, log *zap.Logger) *Service {
	return &Service{cfg: cfg, deps: deps, log: log}
}

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }

// Response is a chat with its members: the answer of GET /api/v1/chats/{id} and
// of POST /api/v1/chats.
type Response struct {
	store.Chat
	Members []store.Member `json:"members"`
	// Invited are the users named at creation who were invited instead of added
	// (the gateway's consent.go): they join when they accept.
	Invited []string `json:"invited,omitempty"`
	// MembersNext, when set, is the cursor of the next page of members (GET
	// /api/v1/chats/{id}/members?after=): the chat has more than one page.
	MembersNext string `json:"membersNext,omitempty"`
}

// MemberOf loads chat and user's membership, reading the store (not the edge
// cache): rights are checked against the current state. A chat that does not
// exist and one user is not in both answer not_member.
func MemberOf(ctx context.Context, members Members, st ChatGetter, chat, user string) (store.Chat, store.Member, error) {
	if err := protocol.ValidID("chat", chat); err != nil {
		return store.Chat{}, store.Member{}, err
	}
	mb, err := members.CheckFresh(ctx, chat, user)
	if err != nil {
		return store.Chat{}, store.Member{}, err
	}
	c, err := st.GetChat(ctx, chat)
	if errors.Is(err, store.ErrNotFound) {
		return store.Chat{}, store.Member{}, protocol.Errorf(protocol.CodeNotMember, "not a member of chat %s", chat)
	}
	if err != nil {
		return store.Chat{}, store.Member{}, httpx.StoreUnavailable(err)
	}
	return c, mb, nil
}

// NonNilMembers returns ms, or an empty list for nil, so it encodes as [].
func NonNilMembers(ms []store.Member) []store.Member {
	if ms == nil {
		return []store.Member{}
	}
	return ms
}

// NextMemberCursor is the cursor after page when it is full (limit members).
func NextMemberCursor(page []store.Member, limit int) string {
	if len(page) < limit || len(page) == 0 {
		return ""
	}
	return page[len(page)-1].UserID
}
