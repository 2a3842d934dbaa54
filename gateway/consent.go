package gateway

import (
	"flag"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Consent to being added to a group (docs/protocol.md, "Invitations"): the rule
// deciding, per added user, add, invite or refuse is chats.Consent and the
// invitations are made by gateway/chats; here are its setting and the invitation
// frames (tellInvitation).

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
