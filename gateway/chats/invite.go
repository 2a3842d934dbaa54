package chats

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Invitations (docs/protocol.md, "Invitations"): an add that the added user's
// consent does not allow becomes an invitation, stored and told to their devices;
// they accept or decline it (gateway/people).

// Invitations tells an invitee's devices about an invitation (an invitation
// frame; live delivery may drop: GET /api/v1/invitations is the record).
type Invitations interface {
	Tell(inv store.Invitation, state string)
}

// ErrBlocked is the refusal of something the other user's block forbids.
func ErrBlocked(other string) error {
	return protocol.Errorf(protocol.CodeBlocked, "%s does not accept this from you", other)
}

// ErrTooManyInvitations is the refusal of an invitation to a user who holds
// store.MaxInvitations already.
func ErrTooManyInvitations(user string) error {
	return protocol.Errorf(protocol.CodeConflict, "%s has %d pending invitations, the limit: they must answer some first", user, store.MaxInvitations)
}

// Invite stores the invitation of inv.UserID and tells their devices. An error is
// a *protocol.Error.
func (s *Service) Invite(ctx context.Context, inv store.Invitation) error {
	_, err := s.deps.Store.PutInvitation(ctx, inv)
	switch {
	case errors.Is(err, store.ErrTooManyInvitations):
		return ErrTooManyInvitations(inv.UserID)
	case err != nil:
		return httpx.StoreUnavailable(err)
	}
	s.deps.Invitations.Tell(inv, chatchange.InvitationPending)
	return nil
}

// NewInvitation is an invitation made now.
func NewInvitation(chat, user, by, role string) store.Invitation {
	return store.Invitation{ChatID: chat, UserID: user, InvitedBy: by, Role: role, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
}

// inviteInstead applies the consent rule to one user added to chat by the caller
// (AddMember): it returns false when the add goes ahead, and true when it wrote
// the answer: the invitation made instead (202), or the refusal.
func (s *Service) inviteInstead(w http.ResponseWriter, r *http.Request, id auth.Identity, chat string, req addMemberRequest) bool {
	ctx := r.Context()
	v, err := LoadConsent(ctx, s.deps.Store, s.cfg.ConsentDirectAdds, id.UserID, id.Service, []string{req.UserID})
	if err != nil {
		s.fail(w, err)
		return true
	}
	switch v.Decide(req.UserID) {
	case ConsentAdd:
		return false
	case ConsentBlocked:
		s.fail(w, ErrBlocked(req.UserID))
		return true
	}
	if err := s.deps.Limits.TakeInvites(id.UserID, 1); err != nil {
		s.fail(w, err)
		return true
	}
	inv := NewInvitation(chat, req.UserID, id.UserID, req.Role)
	if err := s.Invite(ctx, inv); err != nil {
		s.fail(w, err)
		return true
	}
	httpx.WriteJSON(w, http.StatusAccepted, chatchange.Answer{ChatID: chat, Invitation: &chatchange.Invitation{ChatID: chat, InvitedBy: inv.InvitedBy,
		Role: inv.Role, CreatedAt: inv.CreatedAt}})
	return true
}
