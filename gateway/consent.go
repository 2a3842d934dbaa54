package gateway

import (
	"context"
	"flag"

	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Consent to being added to a group (docs/protocol.md, "Invitations"): the rule
// deciding, per added user, add, invite or refuse is chats.Consent and the
// invitations are made by gateway/chats; here are its setting, its use at group
// creation (splitByConsent) and the invitation frames (tellInvitation).

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

// loadConsent loads the consent view of adder (service: a service token) adding
// targets (chats.LoadConsent).
func (g *Gateway) loadConsent(ctx context.Context, adder string, service bool, targets []string) (*chats.Consent, error) {
	return chats.LoadConsent(ctx, g.deps.Store, g.cfg.Consent.DirectAdds, adder, service, targets)
}

// Invitation frame states (chatchange).
const (
	InvitationPending  = chatchange.InvitationPending
	InvitationAccepted = chatchange.InvitationAccepted
	InvitationDeclined = chatchange.InvitationDeclined
)

// tellInvitation sends an invitation frame in state to the invitee's devices
// (live delivery may drop: GET /api/v1/invitations is the record).
func (g *Gateway) tellInvitation(inv store.Invitation, state string) {
	f := &protocol.Frame{Type: protocol.FrameInvitation, ChatID: inv.ChatID, InvitedBy: inv.InvitedBy, Role: inv.Role,
		State: state, Timestamp: inv.CreatedAt.UnixMilli()}
	if err := g.deps.NC.Publish(g.deps.Subjects.User(inv.UserID), protocol.EncodeFrame(f)); err != nil {
		g.log.Debug("invitation frame not sent", zap.String("user_id", inv.UserID), zap.Error(err))
	}
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
		switch v.Decide(m.UserID) {
		case chats.ConsentAdd:
			add = append(add, m)
		case chats.ConsentInvite:
			invite = append(invite, m)
		case chats.ConsentBlocked:
			return nil, nil, errBlocked(m.UserID)
		}
	}
	if err := g.rest.take(new(restCharge), restInvite, adder, len(invite)); err != nil {
		return nil, nil, err
	}
	return add, invite, nil
}
