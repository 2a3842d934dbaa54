package chats

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Blocks says whether one user blocks another.
type Blocks interface {
	// CheckNotBlocked returns blocked when other blocks user, and unavailable
	// when that cannot be read.
	CheckNotBlocked(ctx context.Context, other, user string) error
}

// createRequest is the body of POST /api/v1/chats.
type createRequest struct {
	Type    string   `json:"type"`
	Members []string `json:"members"`
	Name    string   `json:"name"`
	// Encrypted creates an end-to-end encrypted chat (docs/e2ee.md); it can never
	// change. A direct chat's encrypted and plain versions are two chats.
	Encrypted bool `json:"encrypted"`
}

// Creating a chat (POST /api/v1/chats). A direct chat's ID is derived from its
// two members (ids.Direct), so creating it again answers the existing one (200);
// a group gets a new ID. The chat and its first members are written to the store
// directly: there is no chat yet whose log could carry the change.

// Create is POST /api/v1/chats: a direct chat (201, or 200 with the existing
// one) or a group (201), with the members named; in a group, those whose consent
// asks for it are invited instead (Invited).
func (s *Service) Create(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	var req createRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	now := time.Now().UTC()
	chat := store.Chat{Kind: req.Type, Name: strings.TrimSpace(req.Name), CreatedBy: id.UserID, CreatedAt: now, Encrypted: req.Encrypted}
	if len(chat.Name) > MaxName {
		s.fail(w, protocol.Errorf(protocol.CodeTooLarge, "name over %d bytes", MaxName))
		return
	}
	seen := map[string]bool{id.UserID: true}
	members := []store.Member{{UserID: id.UserID, Role: store.RoleAdmin, JoinedAt: now}}
	for _, u := range req.Members {
		if err := protocol.ValidID("user", u); err != nil {
			s.fail(w, err)
			return
		}
		if !seen[u] {
			seen[u] = true
			members = append(members, store.Member{UserID: u, Role: store.RoleMember, JoinedAt: now})
		}
	}
	if len(members) > s.cfg.MaxGroupMembers {
		s.fail(w, GroupFull(s.cfg.MaxGroupMembers))
		return
	}
	// Creating a chat is charged as a creation plus one member add per member
	// named: a group cannot be grown faster by creating it whole.
	cancel, err := s.deps.Limits.TakeChatCreate(id.UserID, id.Service, len(members)-1)
	if err != nil {
		s.fail(w, err)
		return
	}
	var invite []store.Member
	switch req.Type {
	case store.KindDirect:
		if len(members) != 2 {
			s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "a direct chat has exactly one other member"))
			return
		}
		if !id.Service {
			if err := s.deps.Blocks.CheckNotBlocked(r.Context(), members[1].UserID, id.UserID); err != nil {
				cancel()
				s.fail(w, err)
				return
			}
		}
		chat.ID = ids.Direct(id.UserID, members[1].UserID)
		if req.Encrypted {
			chat.ID = ids.EncryptedDirect(id.UserID, members[1].UserID)
		}
		chat.Name = ""
		for i := range members {
			members[i].Role = store.RoleMember
		}
	case store.KindGroup:
		chat.ID = ids.New()
		if members, invite, err = s.splitByConsent(r.Context(), id.UserID, id.Service, members); err != nil {
			cancel()
			s.fail(w, err)
			return
		}
	default:
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, `type must be "direct" or "group"`))
		return
	}
	for i := range members {
		members[i].ChatID = chat.ID
	}
	stored, created, err := s.deps.Store.CreateChat(r.Context(), chat, members)
	if errors.Is(err, store.ErrChatDeleted) {
		s.fail(w, protocol.Errorf(protocol.CodeConflict, "chat %s was deleted and its ID is never used again: create it with another ID", chat.ID))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	if created && s.cfg.LargeChatThreshold > 0 && len(members) > s.cfg.LargeChatThreshold {
		// Mark it large before its first message, so gateways subscribe in time.
		if err := s.deps.Large.Mark(r.Context(), stored.ID, len(members)); err != nil {
			s.log.Warn("large-chat mark failed", zap.String("chat_id", stored.ID), zap.Error(err))
		}
	}
	ms, err := s.deps.Store.Members(r.Context(), stored.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.deps.Members.IsMember(r.Context(), stored.ID, id.UserID); err != nil {
		s.fail(w, err) // a direct chat id that exists between two other users cannot happen
		return
	}
	resp := Response{Chat: stored, Members: ms}
	if created {
		for _, m := range invite {
			if err := s.Invite(r.Context(), NewInvitation(stored.ID, m.UserID, id.UserID, m.Role)); err != nil {
				s.log.Info("invitation at group creation not made", zap.String("chat_id", stored.ID), zap.String("user_id", m.UserID), zap.Error(err))
				continue
			}
			resp.Invited = append(resp.Invited, m.UserID)
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, resp)
}

// splitByConsent applies the consent rule to the members named when a group is
// created by adder (members[0] is the creator): it returns the members to add now
// and those to invite, or a *protocol.Error: blocked when one of them blocks the
// adder (nothing is created then), rate_limited past the adder's invitation
// bucket.
func (s *Service) splitByConsent(ctx context.Context, adder string, service bool, members []store.Member) (add, invite []store.Member, err error) {
	targets := make([]string, 0, len(members))
	for _, m := range members[1:] {
		targets = append(targets, m.UserID)
	}
	v, err := LoadConsent(ctx, s.deps.Store, s.cfg.ConsentDirectAdds, adder, service, targets)
	if err != nil {
		return nil, nil, err
	}
	add = members[:1]
	for _, m := range members[1:] {
		switch v.Decide(m.UserID) {
		case ConsentAdd:
			add = append(add, m)
		case ConsentInvite:
			invite = append(invite, m)
		case ConsentBlocked:
			return nil, nil, ErrBlocked(m.UserID)
		}
	}
	if err := s.deps.Limits.TakeInvites(adder, len(invite)); err != nil {
		return nil, nil, err
	}
	return add, invite, nil
}
