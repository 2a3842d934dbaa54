// Package memberstate serves what each member keeps about a chat of theirs: the
// read and delivered watermarks of its members (GET /api/v1/chats/{id}/receipts,
// receipts.go) and their own mute of its notifications (GET and PUT
// /api/v1/chats/{id}/mute, mute.go).
package memberstate

import (
	"context"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Store is the part of the store memberstate uses.
type Store interface {
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]store.Member, error)
	GetReadState(ctx context.Context, chatID, userID string) (store.ReadState, error)
	SetMute(ctx context.Context, m store.Mute) error
	GetMute(ctx context.Context, chatID, userID string) (store.Mute, error)
}

// Chats checks a caller's membership, asking the store (a removal takes effect
// at once). Both return nil or a *protocol.Error: not_member, or unavailable.
type Chats interface {
	// CheckMember checks that user is a member of chat.
	CheckMember(ctx context.Context, chat, user string) error
	// MemberOf checks chat's ID, then that user is a member of it and that it
	// still exists (not_member when it does not).
	MemberOf(ctx context.Context, chat, user string) error
}

// Deps are what memberstate needs from the gateway.
type Deps struct {
	Store Store
	Chats Chats
	// Body bounds JSON request bodies (gateway.max-body-bytes, body-timeout).
	Body httpx.Body
}

// Config is the gateway settings memberstate follows.
type Config struct {
	// ReceiptsMaxMembers is gateway.receipts-max-members: in bigger chats a
	// receipts listing holds only the caller's own watermarks.
	ReceiptsMaxMembers int
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

// access checks that chat is an ID and user a member of it now.
func (s *Service) access(ctx context.Context, chat, user string) error {
	if err := protocol.ValidID("chat", chat); err != nil {
		return err
	}
	return s.deps.Chats.CheckMember(ctx, chat, user)
}
