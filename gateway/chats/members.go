package chats

import (
	"context"
	"errors"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Adding and removing members, one at a time (members.go) or in bulk
// (members_bulk.go), and the invitations an add becomes when the added user's
// consent (consent.go) asks for one (invite.go):
//
//	POST   /api/v1/chats/{id}/members         {"userId","role?"}: add, or change a role (admins)
//	POST   /api/v1/chats/{id}/members         {"userIds","role?"}: add up to 1,000 (admins)
//	DELETE /api/v1/chats/{id}/members/{uid}   remove a member (admins; oneself: leave)
//	DELETE /api/v1/chats/{id}/members         the same with a body {"userId"}, or {"userIds"} for up to 1,000
//
// Each change is a system event published through Changes; the sequencer applies
// it to the store in log order (the gateway's chats.go says why).

// addMemberRequest is the body of POST /api/v1/chats/{id}/members.
type addMemberRequest struct {
	UserID string `json:"userId"`
	// UserIDs adds several members at once (members_bulk.go), instead of UserID.
	UserIDs []string `json:"userIds"`
	// Role is "member" (the default) or "admin".
	Role string `json:"role"`
}

// AddMember is POST /api/v1/chats/{id}/members: add a user, or change a member's
// role; with userIds, a bulk add (members_bulk.go).
func (s *Service) AddMember(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req addMemberRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.UserIDs != nil {
		s.addMembers(w, r, id, chat, req)
		return
	}
	if err := protocol.ValidID("user", req.UserID); err != nil {
		s.fail(w, err)
		return
	}
	switch req.Role {
	case "":
		req.Role = store.RoleMember
	case store.RoleMember, store.RoleAdmin:
	default:
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, `role must be "member" or "admin"`))
		return
	}
	if err := s.deps.Limits.TakeMemberAdds(id.UserID, id.Service, 1); err != nil {
		s.fail(w, err)
		return
	}
	if _, err := AdminOf(ctx, s.deps.Members, s.deps.Store, chat, id); err != nil {
		s.fail(w, err)
		return
	}
	ev := protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: req.UserID, Role: req.Role, By: id.UserID}
	status := http.StatusCreated
	existing, err := s.deps.Store.GetMember(ctx, chat, req.UserID)
	switch {
	case err == nil && existing.Role == req.Role:
		httpx.WriteJSON(w, http.StatusOK, chatchange.Answer{ChatID: chat, Member: &existing})
		return
	case err == nil:
		if existing.Role == store.RoleAdmin && s.lastAdmin(ctx, w, chat, req.UserID) {
			return
		}
		ev.Event, status = protocol.EventRoleChanged, http.StatusOK
	case errors.Is(err, store.ErrNotFound):
		if err := s.RoomFor(ctx, chat, 1); err != nil {
			s.fail(w, err)
			return
		}
		if s.inviteInstead(w, r, id, chat, req) {
			return
		}
	default:
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	ch, err := s.deps.Changes.Announce(ctx, chat, id.UserID, ev)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.deps.Members.Forget(chat, req.UserID)
	ch.Member = &store.Member{ChatID: chat, UserID: req.UserID, Role: req.Role, JoinedAt: existing.JoinedAt}
	if mb, err := s.deps.Store.GetMember(ctx, chat, req.UserID); err == nil && ch.Seq > 0 {
		ch.Member = &mb
	}
	chatchange.Write(w, status, ch)
}

// lastAdmin refuses (409, written to w) a change that would leave chat without an
// admin while it has other members (LastAdmin).
func (s *Service) lastAdmin(ctx context.Context, w http.ResponseWriter, chat, leaving string) bool {
	if err := LastAdmin(ctx, s.deps.Store, chat, leaving); err != nil {
		s.fail(w, err)
		return true
	}
	return false
}

// removeMemberRequest is the body of DELETE /api/v1/chats/{id}/members (without
// {uid} in the path).
type removeMemberRequest struct {
	UserID string `json:"userId"`
	// UserIDs removes several members at once (members_bulk.go), instead of UserID.
	UserIDs []string `json:"userIds"`
}

// RemoveMember is DELETE /api/v1/chats/{id}/members[/{uid}]: remove a member;
// naming oneself, leave; with userIds, a bulk removal (members_bulk.go).
func (s *Service) RemoveMember(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	target := r.PathValue("uid")
	if target == "" {
		var req removeMemberRequest
		if err := s.deps.Body.Decode(w, r, &req); err != nil {
			s.fail(w, err)
			return
		}
		if req.UserIDs != nil {
			s.removeMembers(w, r, id, chat, req)
			return
		}
		target = req.UserID
	}
	if err := protocol.ValidID("user", target); err != nil {
		s.fail(w, err)
		return
	}
	if target == id.UserID {
		s.LeaveChat(w, r, id, chat) // leave.go
		return
	}
	if _, err := AdminOf(ctx, s.deps.Members, s.deps.Store, chat, id); err != nil {
		s.fail(w, err)
		return
	}
	mb, err := s.deps.Store.GetMember(ctx, chat, target)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, protocol.Errorf(protocol.CodeNotFound, "%s is not a member of chat %s", target, chat))
			return
		}
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	// A user admin making the call stays an admin, but a service (chats:admin) is
	// no member: removing the only admin would leave the members without one.
	// Checked whoever calls, as for every path that can remove an admin (leave.go).
	if mb.Role == store.RoleAdmin && s.lastAdmin(ctx, w, chat, target) {
		return
	}
	ch, err := s.deps.Changes.Announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: target, By: id.UserID})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.deps.Members.Forget(chat, target)
	chatchange.Write(w, http.StatusOK, ch)
}
