package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Consent to being added to a group (docs/protocol.md, "Invitations"). When a user
// adds others to a group (at creation or later), each added user is decided on its
// own by consentView.decide:
//   - added directly: the adder shares a chat with them, or they allow direct adds
//     (their profile's groupAdds "everyone", or the server's
//     gateway.consent-direct-adds when they did not choose);
//   - invited: anyone else; they accept or decline (gateway/people), and the
//     invitation reaches their devices as an invitation frame;
//   - refused with blocked: they block the adder.
// Service tokens (backend services, the chats:admin scope) add directly.
//
// The view is loaded once for all the users of one request (loadConsent): who
// blocks the adder (one read), who shares a chat with them (store.SharesChat, a
// bounded number of queries), and the settings of the rest (batches of
// store.MaxProfileBatch), so a bulk add of thousands costs no round trip per user.

// ConsentConfig is the consent part of the gateway section (flag gateway.consent-*).
type ConsentConfig struct {
	// DirectAdds lets anyone add a user who did not choose (profile groupAdds
	// unset) to a group without asking. False (the default): an add by someone
	// who shares no chat with them becomes an invitation.
	DirectAdds bool `yaml:"consent_direct_adds"`
}

// RegisterFlags registers the gateway.consent-* flags.
func (c *ConsentConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.DirectAdds, "gateway.consent-direct-adds", false,
		"let anyone add users who did not choose (profile groupAdds) to groups without an invitation")
}

// consentDecision is what happens to one added user.
type consentDecision int

const (
	consentAdd     consentDecision = iota // a member now
	consentInvite                         // an invitation to accept or decline
	consentBlocked                        // refused: they block the adder
)

// consentView is what the consent rule needs about one adder and the users being
// added, loaded in bulk by loadConsent. It is read-only once loaded.
type consentView struct {
	adder         string
	trusted       bool // a service token: every add is direct
	directDefault bool
	blockers      map[string]struct{} // users who block the adder
	shared        map[string]bool     // users who share a chat with the adder
	adds          map[string]string   // groupAdds of the others who set one
}

// loadConsent loads the consent view of adder (service: a service token) adding
// targets. The error is a *protocol.Error (unavailable) when the store fails.
func (g *Gateway) loadConsent(ctx context.Context, adder string, service bool, targets []string) (*consentView, error) {
	v := &consentView{adder: adder, trusted: service, directDefault: g.cfg.Consent.DirectAdds}
	if service || len(targets) == 0 {
		return v, nil
	}
	fail := func(err error) (*consentView, error) {
		return nil, protocol.Errorf(protocol.CodeUnavailable, "consent check failed; retry").WithCause(err)
	}
	blockers, err := g.deps.Store.Blockers(ctx, adder)
	if err != nil {
		return fail(fmt.Errorf("blockers of %s: %w", adder, err))
	}
	v.blockers = make(map[string]struct{}, len(blockers))
	for _, b := range blockers {
		v.blockers[b] = struct{}{}
	}
	if v.shared, err = g.deps.Store.SharesChat(ctx, adder, targets); err != nil {
		return fail(err)
	}
	var rest []string
	for _, t := range targets {
		if _, b := v.blockers[t]; !b && !v.shared[t] && t != adder {
			rest = append(rest, t)
		}
	}
	v.adds = map[string]string{}
	for len(rest) > 0 {
		n := min(len(rest), store.MaxProfileBatch)
		ps, err := g.deps.Store.Profiles(ctx, rest[:n])
		if err != nil {
			return fail(err)
		}
		for _, p := range ps {
			if p.GroupAdds != store.GroupAddsDefault {
				v.adds[p.UserID] = p.GroupAdds
			}
		}
		rest = rest[n:]
	}
	return v, nil
}

// decide is the consent rule for one added user.
func (v *consentView) decide(target string) consentDecision {
	if v.trusted || target == v.adder {
		return consentAdd
	}
	if _, b := v.blockers[target]; b {
		return consentBlocked
	}
	if v.shared[target] {
		return consentAdd
	}
	switch v.adds[target] {
	case store.GroupAddsEveryone:
		return consentAdd
	case store.GroupAddsContacts:
		return consentInvite
	}
	if v.directDefault {
		return consentAdd
	}
	return consentInvite
}

// Invitation frame states (chatchange).
const (
	InvitationPending  = chatchange.InvitationPending
	InvitationAccepted = chatchange.InvitationAccepted
	InvitationDeclined = chatchange.InvitationDeclined
)

// errTooManyInvitations is the refusal of an invitation to a user who holds
// store.MaxInvitations already.
func errTooManyInvitations(user string) error {
	return protocol.Errorf(protocol.CodeConflict, "%s has %d pending invitations, the limit: they must answer some first", user, store.MaxInvitations)
}

// invite stores the invitation of inv.UserID and tells their devices. An error is
// a *protocol.Error.
func (g *Gateway) invite(ctx context.Context, inv store.Invitation) error {
	_, err := g.deps.Store.PutInvitation(ctx, inv)
	switch {
	case errors.Is(err, store.ErrTooManyInvitations):
		return errTooManyInvitations(inv.UserID)
	case err != nil:
		return storeUnavailable(err)
	}
	g.tellInvitation(inv, InvitationPending)
	return nil
}

// tellInvitation sends an invitation frame in state to the invitee's devices
// (live delivery may drop: GET /api/v1/invitations is the record).
func (g *Gateway) tellInvitation(inv store.Invitation, state string) {
	f := &protocol.Frame{Type: protocol.FrameInvitation, ChatID: inv.ChatID, InvitedBy: inv.InvitedBy, Role: inv.Role,
		State: state, Timestamp: inv.CreatedAt.UnixMilli()}
	if err := g.deps.NC.Publish(g.deps.Subjects.User(inv.UserID), protocol.EncodeFrame(f)); err != nil {
		g.log.Debug("invitation frame not sent", zap.String("user_id", inv.UserID), zap.Error(err))
	}
}

// newInvitation is an invitation made now.
func newInvitation(chat, user, by, role string) store.Invitation {
	return store.Invitation{ChatID: chat, UserID: user, InvitedBy: by, Role: role, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
}

// splitByConsent applies the consent rule to the members named when a group is
// created by adder (members[0] is the creator): it returns the members to add now
// and those to invite, or a *protocol.Error: blocked when one of them blocks the
// adder (nothing is created then), rate_limited past the adder's invitation
// bucket.
func (g *Gateway) splitByConsent(ctx context.Context, adder string, service bool, members []store.Member) (add, invite []store.Member, err error) {
	targets := make([]string, 0, len(members))
	for _, m := range members[1:] {
		targets = append(targets, m.UserID)
	}
	v, err := g.loadConsent(ctx, adder, service, targets)
	if err != nil {
		return nil, nil, err
	}
	add = members[:1]
	for _, m := range members[1:] {
		switch v.decide(m.UserID) {
		case consentAdd:
			add = append(add, m)
		case consentInvite:
			invite = append(invite, m)
		case consentBlocked:
			return nil, nil, errBlocked(m.UserID)
		}
	}
	if err := g.rest.take(new(restCharge), restInvite, adder, len(invite)); err != nil {
		return nil, nil, err
	}
	return add, invite, nil
}

// inviteInstead applies the consent rule to one user added to chat by the caller
// (addMember): it returns false when the add goes ahead, and true when it wrote
// the answer: the invitation made instead (202), or the refusal.
func (g *Gateway) inviteInstead(w http.ResponseWriter, r *http.Request, id auth.Identity, chat string, req addMemberRequest) bool {
	ctx := r.Context()
	v, err := g.loadConsent(ctx, id.UserID, id.Service, []string{req.UserID})
	if err != nil {
		g.fail(w, err)
		return true
	}
	switch v.decide(req.UserID) {
	case consentAdd:
		return false
	case consentBlocked:
		g.fail(w, errBlocked(req.UserID))
		return true
	}
	if err := g.rest.take(new(restCharge), restInvite, id.UserID, 1); err != nil {
		g.failLimited(w, err)
		return true
	}
	inv := newInvitation(chat, req.UserID, id.UserID, req.Role)
	if err := g.invite(ctx, inv); err != nil {
		g.fail(w, err)
		return true
	}
	writeJSON(w, http.StatusAccepted, chatChange{ChatID: chat, Invitation: &chatchange.Invitation{ChatID: chat, InvitedBy: inv.InvitedBy,
		Role: inv.Role, CreatedAt: inv.CreatedAt}})
	return true
}
