package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Group invitations (consent.go says when an add becomes one):
//
//	GET  /api/v1/invitations                   the caller's pending invitations
//	POST /api/v1/invitations/{chatId}/accept   join the group (a member_added event by the caller)
//	POST /api/v1/invitations/{chatId}/decline  drop the invitation
//
// Answering on one device tells the caller's other devices (an invitation frame in
// state accepted or declined).

var errServiceInvitations = protocol.Errorf(protocol.CodeForbidden, "service tokens have no invitations: answer with a user's token")

// invitationBody is one invitation in answers.
type invitationBody struct {
	ChatID    string    `json:"chatId"`
	ChatName  string    `json:"chatName,omitempty"`
	InvitedBy string    `json:"invitedBy"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

func (g *Gateway) listInvitations(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		g.fail(w, errServiceInvitations)
		return
	}
	invs, err := g.deps.Store.Invitations(r.Context(), id.UserID)
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	out := make([]invitationBody, 0, len(invs))
	for _, inv := range invs {
		b := invitationBody{ChatID: inv.ChatID, InvitedBy: inv.InvitedBy, Role: inv.Role, CreatedAt: inv.CreatedAt.UTC()}
		c, err := g.deps.Store.GetChat(r.Context(), inv.ChatID)
		if errors.Is(err, store.ErrNotFound) {
			continue // the group is gone
		}
		if err != nil {
			g.fail(w, storeUnavailable(err))
			return
		}
		b.ChatName = c.Name
		out = append(out, b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"invitations": out})
}

// pendingInvitation loads the caller's invitation to the chat in the path.
func (g *Gateway) pendingInvitation(w http.ResponseWriter, r *http.Request, id auth.Identity) (store.Invitation, bool) {
	if id.Service {
		g.fail(w, errServiceInvitations)
		return store.Invitation{}, false
	}
	chat := r.PathValue("chatId")
	if err := validID("chat", chat); err != nil {
		g.fail(w, err)
		return store.Invitation{}, false
	}
	inv, err := g.deps.Store.GetInvitation(r.Context(), id.UserID, chat)
	if errors.Is(err, store.ErrNotFound) {
		g.fail(w, protocol.Errorf(protocol.CodeNotFound, "no pending invitation to chat %s", chat))
		return inv, false
	}
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return inv, false
	}
	return inv, true
}

func (g *Gateway) acceptInvitation(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	inv, ok := g.pendingInvitation(w, r, id)
	if !ok {
		return
	}
	c, err := g.deps.Store.GetChat(ctx, inv.ChatID)
	if errors.Is(err, store.ErrNotFound) {
		_, _ = g.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
		g.fail(w, protocol.Errorf(protocol.CodeNotFound, "chat %s no longer exists", inv.ChatID))
		return
	}
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	if mb, err := g.deps.Store.GetMember(ctx, c.ID, id.UserID); err == nil {
		// Already a member (added another way): the invitation is spent.
		_, _ = g.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
		writeJSON(w, http.StatusOK, chatChange{ChatID: c.ID, Member: &mb})
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		g.fail(w, storeUnavailable(err))
		return
	}
	if err := g.roomFor(ctx, c.ID, 1); err != nil { // members_bulk.go
		g.fail(w, err)
		return
	}
	// The invitee joins: the event is theirs (sender and by), as a chat change the
	// gateway vouches for after checking the invitation.
	ch, err := g.announce(ctx, c.ID, id.UserID, protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: id.UserID, Role: inv.Role, By: id.UserID})
	if err != nil {
		g.fail(w, err)
		return
	}
	_, _ = g.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
	g.members.forget(c.ID, id.UserID)
	g.tellInvitation(inv, InvitationAccepted)
	ch.Member = &store.Member{ChatID: c.ID, UserID: id.UserID, Role: inv.Role}
	if mb, err := g.deps.Store.GetMember(ctx, c.ID, id.UserID); err == nil && ch.Seq > 0 {
		ch.Member = &mb
	}
	g.answerChange(w, http.StatusOK, ch)
}

func (g *Gateway) declineInvitation(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	inv, ok := g.pendingInvitation(w, r, id)
	if !ok {
		return
	}
	if _, err := g.deps.Store.DeleteInvitation(r.Context(), id.UserID, inv.ChatID); err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	g.tellInvitation(inv, InvitationDeclined)
	writeJSON(w, http.StatusOK, map[string]any{"chatId": inv.ChatID, "declined": true})
}
