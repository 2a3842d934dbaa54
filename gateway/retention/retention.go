// Package retention is the retention and deletion of chats over REST (docs/protocol.md, "Retention and
// deletion"; docs/privacy.md):
//
//	PUT    /api/v1/chats/{id}/ttl    {"messageTtl": seconds}: disappearing messages
//	                                 (group admins, either member of a direct chat)
//	POST   /api/v1/chats/{id}/clear  {"seq"?}: clear one's own history up to seq
//	                                 (default: everything so far) (members)
//	DELETE /api/v1/chats/{id}        delete a group for everyone (admins)
//
// A TTL change and a deletion are chat changes (gateway/chats.go): sequenced system events
// (message_ttl_changed, chat_deleted) that the sequencer applies to the store, in
// order with the conversation. Clearing is one user's own view and changes no one
// else's: it raises that user's history floor, below which history, sync and the
// unread count no longer show anything to them.
package retention

import (
	"context"
	"fmt"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Store is the part of the store retention uses.
type Store interface {
	Members(ctx context.Context, chatID string) ([]store.Member, error)
	ClearHistory(ctx context.Context, chatID, userID string, seq uint64) (uint64, error)
}

// History tells a chat's last seq, the unpersisted log tail included (a
// *history.Reader).
type History interface {
	LastSeq(ctx context.Context, chat string) (uint64, error)
}

// Chats checks a caller's rights in a chat, asking the store. Each returns a
// *protocol.Error for a refusal: invalid_id, not_member (also for a chat that
// does not exist), unavailable; AdminChat also conflict (a direct chat) and
// forbidden (not an admin).
type Chats interface {
	// CheckMember checks that user is a member of chat (an ID) now.
	CheckMember(ctx context.Context, chat, user string) error
	// MemberChat is CheckMember that also returns the chat.
	MemberChat(ctx context.Context, chat, user string) (store.Chat, error)
	// AdminChat checks that chat is a group id administers (or that id is a
	// chats:admin service) and returns it; on a refusal the chat is returned too
	// when it was read.
	AdminChat(ctx context.Context, chat string, id auth.Identity) (store.Chat, error)
}

// Groups is the gateway's chat-change path.
type Groups interface {
	// Announce publishes ev as a system message of chat sent by actor and waits
	// (at most gateway.publish-timeout) for it to be sequenced: Seq is 0 in the
	// answer if it was not in time. An error means nothing changed.
	Announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatchange.Answer, error)
	// Forget drops a cached membership after a change through this gateway.
	Forget(chat, user string)
}

// Deps are what retention needs from the gateway.
type Deps struct {
	Store   Store
	History History
	Chats   Chats
	Groups  Groups
	// Body bounds JSON request bodies (gateway.max-body-bytes, body-timeout).
	Body httpx.Body
}

// Service serves the retention routes. It is safe for concurrent use.
type Service struct {
	deps Deps
	log  *zap.Logger
}

// New returns the service.
func New(deps Deps, log *zap.Logger) *Service { return &Service{deps: deps, log: log} }

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }

// access checks that chat is an ID and user a member of it now.
func (s *Service) access(ctx context.Context, chat, user string) error {
	if err := protocol.ValidID("chat", chat); err != nil {
		return err
	}
	return s.deps.Chats.CheckMember(ctx, chat, user)
}

// ttlRequest is the body of PUT /api/v1/chats/{id}/ttl.
type ttlRequest struct {
	// MessageTTL is in seconds: 0 turns disappearing messages off, else
	// store.MinMessageTTL..store.MaxMessageTTL. Required.
	MessageTTL *int64 `json:"messageTtl"`
}

// PutTTL serves PUT /api/v1/chats/{id}/ttl.
func (s *Service) PutTTL(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req ttlRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.MessageTTL == nil {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "messageTtl is required: seconds, or 0 to turn disappearing messages off"))
		return
	}
	ttl := *req.MessageTTL
	if ttl != 0 && (ttl < store.MinMessageTTL || ttl > store.MaxMessageTTL) {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "messageTtl must be 0 (off) or %d..%d seconds", store.MinMessageTTL, store.MaxMessageTTL))
		return
	}
	c, err := s.ttlChanger(ctx, chat, id)
	if err != nil {
		s.fail(w, err)
		return
	}
	if c.MessageTTL == ttl {
		httpx.WriteJSON(w, http.StatusOK, chatchange.Answer{ChatID: chat, MessageTTL: &ttl})
		return
	}
	ch, err := s.deps.Groups.Announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventMessageTTLChanged, MessageTTL: ttl, By: id.UserID})
	if err != nil {
		s.fail(w, err)
		return
	}
	ch.MessageTTL = &ttl
	chatchange.Write(w, http.StatusOK, ch)
}

// ttlChanger checks that id may change chat's message TTL: an admin of a group
// (or a chats:admin service), either member of a direct chat.
func (s *Service) ttlChanger(ctx context.Context, chat string, id auth.Identity) (store.Chat, error) {
	if !id.ChatAdmin {
		c, err := s.deps.Chats.MemberChat(ctx, chat, id.UserID)
		if err != nil {
			return c, err
		}
		if c.Kind == store.KindDirect {
			return c, nil
		}
	}
	return s.deps.Chats.AdminChat(ctx, chat, id)
}

// clearRequest is the body of POST /api/v1/chats/{id}/clear (optional).
type clearRequest struct {
	// Seq clears up to and including this seq; absent or 0: up to the chat's
	// last seq now. A seq past the last is taken as the last.
	Seq uint64 `json:"seq"`
}

// clearAnswer is the answer to a clear.
type clearAnswer struct {
	ChatID string `json:"chatId"`
	// Floor is the caller's history floor now: nothing at or below it is shown to
	// them again (retainedFrom is Floor+1).
	Floor        uint64 `json:"floor"`
	RetainedFrom uint64 `json:"retainedFrom"`
}

// Clear serves POST /api/v1/chats/{id}/clear.
func (s *Service) Clear(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req clearRequest
	if r.ContentLength != 0 {
		if err := s.deps.Body.Decode(w, r, &req); err != nil {
			s.fail(w, err)
			return
		}
	}
	if err := s.access(ctx, chat, id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	last, err := s.deps.History.LastSeq(ctx, chat)
	if err != nil {
		s.fail(w, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("last seq of %s: %w", chat, err)))
		return
	}
	seq := last
	if req.Seq > 0 {
		seq = min(req.Seq, last)
	}
	floor, err := s.deps.Store.ClearHistory(ctx, chat, id.UserID, seq)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, clearAnswer{ChatID: chat, Floor: floor, RetainedFrom: floor + 1})
}

// Delete serves DELETE /api/v1/chats/{id}.
func (s *Service) Delete(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	c, err := s.deps.Chats.AdminChat(ctx, chat, id)
	if err != nil {
		if c.Kind == store.KindDirect {
			err = protocol.Errorf(protocol.CodeConflict, "a direct chat cannot be deleted: clear its history for yourself (POST /api/v1/chats/%s/clear)", chat)
		}
		s.fail(w, err)
		return
	}
	members, err := s.deps.Store.Members(ctx, chat)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	ch, err := s.deps.Groups.Announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventChatDeleted, By: id.UserID})
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, m := range members {
		s.deps.Groups.Forget(chat, m.UserID)
	}
	s.log.Info("chat deleted", zap.String("chat_id", chat), zap.String("by", id.UserID), zap.Int("members", len(members)), zap.Uint64("seq", ch.Seq))
	chatchange.Write(w, http.StatusOK, ch)
}
