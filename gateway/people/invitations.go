package people

import (
	"errors"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Group invitations (gateway/consent.go says when an add becomes one):
//
//	GET  /api/v1/invitations                   the caller's pending invitations
//	POST /api/v1/invitations/{chatId}/accept   join the group (a member_added event by the caller)
//	POST /api/v1/invitations/{chatId}/decline  drop the invitation
//
// Answering on one device tells the caller's other devices (an invitation frame in
// state accepted or declined).

var errServiceInvitations = protocol.Errorf(protocol.CodeForbidden, "service tokens have no invitations: answer with a user's token")

// Invitations serves GET /api/v1/invitations.
func (s *Service) Invitations(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		s.fail(w, errServiceInvitations)
		return
	}
	invs, err := s.deps.Store.Invitations(r.Context(), id.UserID)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	out := make([]chatchange.Invitation, 0, len(invs))
	for _, inv := range invs {
		b := chatchange.Invitation{ChatID: inv.ChatID, InvitedBy: inv.InvitedBy, Role: inv.Role, CreatedAt: inv.CreatedAt.UTC()}
		c, err := s.deps.Store.GetChat(r.Context(), inv.ChatID)
		if errors.Is(err, store.ErrNotFound) {
			continue // the group is gone
		}
		if err != nil {
			s.fail(w, httpx.StoreUnavailable(err))
			return
		}
		b.ChatName = c.Name
		out = append(out, b)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"invitations": out})
}

// pendingInvitation loads the caller's invitation to the chat in the path.
func (s *Service) pendingInvitation(w http.ResponseWriter, r *http.Request, id auth.Identity) (store.Invitation, bool) {
	if id.Service {
		s.fail(w, errServiceInvitations)
		return store.Invitation{}, false
	}
	chat := r.PathValue("chatId")
	if err := protocol.ValidID("chat", chat); err != nil {
		s.fail(w, err)
		return store.Invitation{}, false
	}
	inv, err := s.deps.Store.GetInvitation(r.Context(), id.UserID, chat)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no pending invitation to chat %s", chat))
		return inv, false
	}
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return inv, false
	}
	return inv, true
}

// AcceptInvitation serves POST /api/v1/invitations/{chatId}/accept: the caller
// joins the group by a member_added event of their own.
func (s *Service) AcceptInvitation(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	inv, ok := s.pendingInvitation(w, r, id)
	if !ok {
		return
	}
	c, err := s.deps.Store.GetChat(ctx, inv.ChatID)
	if errors.Is(err, store.ErrNotFound) {
		_, _ = s.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "chat %s no longer exists", inv.ChatID))
		return
	}
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	if mb, err := s.deps.Store.GetMember(ctx, c.ID, id.UserID); err == nil {
		// Already a member (added another way): the invitation is spent.
		_, _ = s.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
		httpx.WriteJSON(w, http.StatusOK, chatchange.Answer{ChatID: c.ID, Member: &mb})
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	if err := s.deps.Groups.RoomFor(ctx, c.ID, 1); err != nil {
		s.fail(w, err)
		return
	}
	// The invitee joins: the event is theirs (sender and by), as a chat change the
	// gateway vouches for after checking the invitation.
	ch, err := s.deps.Groups.Announce(ctx, c.ID, id.UserID, protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: id.UserID, Role: inv.Role, By: id.UserID})
	if err != nil {
		s.fail(w, err)
		return
	}
	_, _ = s.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
	s.deps.Groups.Forget(c.ID, id.UserID)
	s.deps.Groups.TellInvitation(inv, chatchange.InvitationAccepted)
	ch.Member = &store.Member{ChatID: c.ID, UserID: id.UserID, Role: inv.Role}
	if mb, err := s.deps.Store.GetMember(ctx, c.ID, id.UserID); err == nil && ch.Seq > 0 {
		ch.Member = &mb
	}
	chatchange.Write(w, http.StatusOK, ch)
}

// DeclineInvitation serves POST /api/v1/invitations/{chatId}/decline.
func (s *Service) DeclineInvitation(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	inv, ok := s.pendingInvitation(w, r, id)
	if !ok {
		return
	}
	if _, err := s.deps.Store.DeleteInvitation(r.Context(), id.UserID, inv.ChatID); err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	s.deps.Groups.TellInvitation(inv, chatchange.InvitationDeclined)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"chatId": inv.ChatID, "declined": true})
}
