// Package erasure is the admin API that erases an account (docs/privacy.md, "Erasing an account"):
//
//	DELETE /api/v1/admin/users/{id}   service token with the accounts:admin scope
//
// It is on the gateway's listener, as every API a backend calls, and is refused
// (403) to every other token: a user token, a service token without the scope. In
// order:
//  1. the user goes on the deny list (Deps.Deny): from then on every gateway
//     refuses their tokens and their live connections are closed, so nothing they
//     send can land after the erasure below;
//  2. they are removed from each group they are in, as a sequenced member_removed
//     event by the caller (so every member and the sequencer see it in order).
//     Where they are the only admin and others stay, the group's first other
//     member by user ID is made admin first (a role_changed event by the caller):
//     an erasure cannot be refused, and a group with members always has an admin
//     (gateway/chats, leave.go);
//  3. the store erases their data (store.LifecycleStore.EraseUser: messages become
//     tombstones with their seq kept, reactions, memberships, read states, mutes,
//     floors, push devices, profile, blocks, invitations);
//  4. their uploads are deleted from the media bucket, with their share records
//     and usage;
//  5. one audit log line records who erased whom and the counts.
//
// Presence needs no step: with every connection closed, the user's presence entry
// expires with its TTL. Repeating the call is harmless and erases what may have
// been stored meanwhile (a persister that lagged).
package erasure

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Store is the part of the store an erasure uses.
type Store interface {
	UserChatsBefore(ctx context.Context, userID string, cursor store.ChatListCursor, limit int) ([]store.ChatSummary, error)
	EraseUser(ctx context.Context, userID string) (store.EraseReport, error)
	// The last-admin rule's reads (successor): up to limit admins of chat, and a
	// page of its members by user ID.
	ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error)
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]store.Member, error)
}

// Deny is the deny list every gateway follows.
type Deny interface {
	// Put denies user's tokens on every gateway from now on, recording by.
	Put(ctx context.Context, user, by string) error
}

// Groups removes a member from a group in order with its conversation.
type Groups interface {
	// RemoveMember announces user's removal from chat by by as a sequenced
	// member_removed event (waiting at most gateway.publish-timeout for it) and
	// forgets the cached membership. An error means it was not announced.
	RemoveMember(ctx context.Context, chat, user, by string) error
	// MakeAdmin announces user's promotion to admin of chat by by as a sequenced
	// role_changed event, as RemoveMember does its removal.
	MakeAdmin(ctx context.Context, chat, user, by string) error
}

// Uploads deletes a user's media (the media service).
type Uploads interface {
	// EraseUploads deletes every upload of user and returns how many.
	EraseUploads(ctx context.Context, user string) (int, error)
}

// Deps are what an erasure needs from the gateway.
type Deps struct {
	Store   Store
	Deny    Deny
	Groups  Groups
	Uploads Uploads
}

// Service serves the erasure route. It is safe for concurrent use.
type Service struct {
	deps Deps
	log  *zap.Logger
}

// New returns the service.
func New(deps Deps, log *zap.Logger) *Service { return &Service{deps: deps, log: log} }

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }

// eraseAnswer is the answer to an erasure.
type eraseAnswer struct {
	UserID string `json:"userId"`
	store.EraseReport
	// GroupsLeft counts the groups the user was removed from by a sequenced event.
	GroupsLeft int `json:"groupsLeft"`
	// Media counts the uploads deleted.
	Media int `json:"media"`
}

// maxEraseChats bounds the chats listed for an erasure (the store's listing limit
// per page); the store's EraseUser removes every membership whatever their number.
const maxEraseChats = 100_000

// Erase serves DELETE /api/v1/admin/users/{id}.
func (s *Service) Erase(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !id.AccountsAdmin {
		s.fail(w, protocol.Errorf(protocol.CodeForbidden, "erasing an account needs a service token with the %s scope", protocol.ScopeAccountsAdmin))
		return
	}
	user := r.PathValue("id")
	if err := protocol.ValidID("user", user); err != nil {
		s.fail(w, err)
		return
	}
	// The erasure goes on if the client goes away: half an erasure helps no one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := s.deps.Deny.Put(ctx, user, id.UserID); err != nil {
		s.fail(w, protocol.Errorf(protocol.CodeUnavailable, "deny list unavailable; nothing was erased; retry").WithCause(err))
		return
	}
	ans := eraseAnswer{UserID: user}
	groups, err := s.userGroups(ctx, user)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	for _, chat := range groups {
		if err := s.successor(ctx, chat, user, id.UserID); err != nil {
			// The removal still goes ahead: an erasure is not refused. The group's
			// members then need a service (chats:admin) to name an admin.
			s.log.Warn("erasure: no successor admin named", zap.String("chat_id", chat), zap.String("user_id", user), zap.Error(err))
		}
		if err := s.deps.Groups.RemoveMember(ctx, chat, user, id.UserID); err != nil {
			// The store removes the membership below in any case; the members then
			// learn of it when the chat is next loaded.
			s.log.Warn("erasure: member_removed not announced", zap.String("chat_id", chat), zap.String("user_id", user), zap.Error(err))
			continue
		}
		ans.GroupsLeft++
	}
	rep, err := s.deps.Store.EraseUser(ctx, user)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	ans.EraseReport = rep
	if ans.Media, err = s.deps.Uploads.EraseUploads(ctx, user); err != nil {
		s.fail(w, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; the rest is erased; retry to finish").WithCause(err))
		return
	}
	s.log.Info("account erased", zap.String("audit", "account_erased"), zap.String("user_id", user), zap.String("by", id.UserID),
		zap.Int("messages", rep.Messages), zap.Int("chats", rep.Chats), zap.Int("groups_left", ans.GroupsLeft),
		zap.Int("devices", rep.Devices), zap.Bool("profile", rep.Profile), zap.Int("media", ans.Media),
		zap.Duration("took", time.Since(start)))
	httpx.WriteJSON(w, http.StatusOK, ans)
}

// successor makes another member of chat its admin, by by, when user is its only
// admin and others stay: the first member by user ID, which one page read finds (a
// group's longest-standing member would need all of its members read). Nothing is
// done otherwise: a group where user is no admin keeps its admins as they are.
func (s *Service) successor(ctx context.Context, chat, user, by string) error {
	admins, err := s.deps.Store.ChatAdmins(ctx, chat, 2)
	if err != nil || len(admins) != 1 || admins[0] != user {
		return err
	}
	page, err := s.deps.Store.MembersPage(ctx, chat, "", 2)
	if err != nil {
		return err
	}
	for _, m := range page {
		if m.UserID != user {
			return s.deps.Groups.MakeAdmin(ctx, chat, m.UserID, by)
		}
	}
	return nil
}

// userGroups lists the groups user is a member of.
func (s *Service) userGroups(ctx context.Context, user string) ([]string, error) {
	var out []string
	var cursor store.ChatListCursor
	for len(out) < maxEraseChats {
		page, err := s.deps.Store.UserChatsBefore(ctx, user, cursor, 500)
		if err != nil {
			return nil, fmt.Errorf("chats of %s: %w", user, err)
		}
		for _, c := range page {
			if c.Kind == store.KindGroup {
				out = append(out, c.ID)
			}
		}
		if len(page) < 500 {
			break
		}
		last := page[len(page)-1]
		cursor = store.ChatListCursor{Activity: last.LastActivity, ChatID: last.ID}
	}
	return out, nil
}
