package chats

import (
	"context"
	"net/http"
	"slices"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Large groups (docs/protocol.md, "Chats and members"): up to
// gateway.max-group-members (100,000) members, added and removed in bulk calls of up
// to protocol.MaxBulkMembers (1,000) users, and listed in pages.
//
//	POST   /api/v1/chats/{id}/members  {"userIds":[...],"role?"}  add the users not yet members
//	DELETE /api/v1/chats/{id}/members  {"userIds":[...]}          remove those who are members
//	GET    /api/v1/chats/{id}/members?after=&limit=               one page, ordered by user ID
//
// A bulk call is sequenced as ONE system event naming the users it changed
// (members_added, members_removed), which the sequencer applies and writes to the
// store in log order as it does a one-member change (members.go): a 1,000-user call
// costs one log message and one store transaction (SQLite) or a few dozen batched
// writes (Cassandra), not a thousand of each. Users the call names that already
// were (add) or were not (remove) members are answered in skipped and not in the
// event; a call that changes nobody answers 200 with changed false.
//
// The group's size is checked against gateway.max-group-members from the store's
// (or the large-chats bucket's) count before the event is published: a fast path
// that refuses most adds past the cap without a publish. It is read-then-add, so
// adds made at once on any gateways can all pass it; the cap itself is enforced by
// the sequencer (sequencer.max-group-members, sequencer/groupcap.go), which applies
// a chat's membership events one at a time and answers an add past it group_full,
// which reaches the caller as this check's refusal would.

// GroupFull is the refusal of a change past limit members.
func GroupFull(limit int) *protocol.Error {
	return protocol.Errorf(protocol.CodeGroupFull, "a group has at most %d members (gateway.max-group-members): remove members first", limit)
}

// RoomFor checks that chat can take n more members (group_full if not). A large
// chat's count is the one the sequencer keeps in the large-chats bucket (updated
// with every membership event it sequences), which this gateway watches: no read
// at all where the store would count up to 100,000 rows. A small chat's is
// counted by the store.
func (s *Service) RoomFor(ctx context.Context, chat string, n int) error {
	count, ok := s.deps.Large.MemberCount(chat)
	if !ok {
		var err error
		if count, err = s.deps.Store.MemberCount(ctx, chat); err != nil {
			return httpx.StoreUnavailable(err)
		}
	}
	if count+n > s.cfg.MaxGroupMembers {
		return GroupFull(s.cfg.MaxGroupMembers)
	}
	return nil
}

// bulkUsers checks a bulk call's userIds: 1..MaxBulkMembers valid IDs, none given
// with userId too. Duplicates are dropped; the order is kept.
func bulkUsers(single string, users []string) ([]string, error) {
	if single != "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "give userId or userIds, not both")
	}
	if len(users) == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "userIds must name at least one user")
	}
	if len(users) > protocol.MaxBulkMembers {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "userIds names %d users; at most %d per call: split it", len(users), protocol.MaxBulkMembers)
	}
	seen := make(map[string]bool, len(users))
	out := make([]string, 0, len(users))
	for _, u := range users {
		if err := protocol.ValidID("user", u); err != nil {
			return nil, err
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out, nil
}

// addMembers is POST /api/v1/chats/{id}/members with userIds.
func (s *Service) addMembers(w http.ResponseWriter, r *http.Request, id auth.Identity, chat string, req addMemberRequest) {
	ctx := r.Context()
	users, err := bulkUsers(req.UserID, req.UserIDs)
	if err != nil {
		s.fail(w, err)
		return
	}
	if req.Role != "" && req.Role != store.RoleMember && req.Role != store.RoleAdmin {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, `role must be "member" or "admin"`))
		return
	}
	if err := s.deps.Limits.TakeMemberAdds(id.UserID, id.Service, len(users)); err != nil {
		s.fail(w, err)
		return
	}
	if _, err := AdminOf(ctx, s.deps.Members, s.deps.Store, chat, id); err != nil {
		s.fail(w, err)
		return
	}
	existing, err := s.deps.Store.MembersAmong(ctx, chat, users)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	added, skipped := splitByMembership(users, existing)
	if len(added) == 0 {
		httpx.WriteJSON(w, http.StatusOK, chatchange.Answer{ChatID: chat, Skipped: skipped})
		return
	}
	added, invite, err := s.bulkConsent(ctx, id, added)
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.RoomFor(ctx, chat, len(added)); err != nil {
		s.fail(w, err)
		return
	}
	role := req.Role
	if role == store.RoleMember {
		role = "" // the default: not repeated in the event
	}
	ch := chatchange.Answer{ChatID: chat}
	if len(added) > 0 {
		ev := protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: added, Role: role, By: id.UserID}
		if ch, err = s.announceBulk(ctx, chat, id.UserID, ev); err != nil {
			s.fail(w, err)
			return
		}
	}
	for _, u := range invite {
		if err := s.Invite(ctx, NewInvitation(chat, u, id.UserID, roleOrMember(role))); err != nil {
			s.log.Info("invitation of a bulk add not made", zap.String("chat_id", chat), zap.String("user_id", u), zap.Error(err))
			continue
		}
		ch.Invited = append(ch.Invited, u)
	}
	ch.Skipped = skipped
	if len(added) == 0 {
		httpx.WriteJSON(w, http.StatusAccepted, ch) // invitations only: nothing sequenced
		return
	}
	chatchange.Write(w, http.StatusCreated, ch)
}

// bulkConsent applies the consent rule (Consent) to the users a bulk add names:
// those the caller may add directly, and those who get an invitation instead. A
// user who blocks the caller refuses the whole call (blocked). Service tokens add
// directly.
func (s *Service) bulkConsent(ctx context.Context, id auth.Identity, users []string) (add, invite []string, err error) {
	v, err := LoadConsent(ctx, s.deps.Store, s.cfg.ConsentDirectAdds, id.UserID, id.Service, users)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range users {
		switch v.Decide(u) {
		case ConsentAdd:
			add = append(add, u)
		case ConsentInvite:
			invite = append(invite, u)
		case ConsentBlocked:
			return nil, nil, ErrBlocked(u)
		}
	}
	if err := s.deps.Limits.TakeInvites(id.UserID, len(invite)); err != nil {
		return nil, nil, err
	}
	return add, invite, nil
}

func roleOrMember(role string) string {
	if role == "" {
		return store.RoleMember
	}
	return role
}

// removeMembers is DELETE /api/v1/chats/{id}/members with userIds. Leaving is its own
// call: a bulk removal naming the caller is refused.
func (s *Service) removeMembers(w http.ResponseWriter, r *http.Request, id auth.Identity, chat string, req removeMemberRequest) {
	ctx := r.Context()
	users, err := bulkUsers(req.UserID, req.UserIDs)
	if err != nil {
		s.fail(w, err)
		return
	}
	if slices.Contains(users, id.UserID) {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "a bulk removal cannot name the caller: leave with POST /api/v1/chats/%s/leave", chat))
		return
	}
	if _, err := AdminOf(ctx, s.deps.Members, s.deps.Store, chat, id); err != nil {
		s.fail(w, err)
		return
	}
	existing, err := s.deps.Store.MembersAmong(ctx, chat, users)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	if len(existing) == 0 {
		httpx.WriteJSON(w, http.StatusOK, chatchange.Answer{ChatID: chat, Skipped: users})
		return
	}
	removed := make([]string, len(existing))
	admins := 0
	for i, m := range existing {
		removed[i] = m.UserID
		if m.Role == store.RoleAdmin {
			admins++
		}
	}
	// A service removing admins must leave one while members remain. A user admin
	// making the call stays (it cannot name itself), so the check then reads one
	// admin more than it removes and passes; it is made anyway, so the rule holds
	// by this one check whoever calls (leave.go).
	if admins > 0 && s.lastAdmins(ctx, w, chat, removed) {
		return
	}
	skipped, _ := splitByMembership(users, existing)
	ev := protocol.SystemEvent{Event: protocol.EventMembersRemoved, UserIDs: removed, By: id.UserID}
	ch, err := s.announceBulk(ctx, chat, id.UserID, ev)
	if err != nil {
		s.fail(w, err)
		return
	}
	ch.Skipped = skipped
	chatchange.Write(w, http.StatusOK, ch)
}

// lastAdmins refuses (409, written to w) removing leaving (admins among them) when
// that would leave chat without an admin while it has other members.
func (s *Service) lastAdmins(ctx context.Context, w http.ResponseWriter, chat string, leaving []string) bool {
	orphaned, err := LeavesNoAdmin(ctx, s.deps.Store, chat, leaving)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return true
	}
	if orphaned {
		s.fail(w, protocol.Errorf(protocol.CodeConflict, "the removal would leave chat %s without an admin: make another member admin first", chat))
		return true
	}
	return false
}

// announceBulk checks and announces a bulk change (Changes), then drops
// the users' cached memberships here.
func (s *Service) announceBulk(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatchange.Answer, error) {
	if err := protocol.ValidateBulkChange(&ev); err != nil {
		return chatchange.Answer{}, protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	ch, err := s.deps.Changes.Announce(ctx, chat, actor, ev)
	if err != nil {
		return ch, err
	}
	for _, u := range ev.UserIDs {
		s.deps.Members.Forget(chat, u)
	}
	ch.UserIDs = ev.UserIDs
	return ch, nil
}

// splitByMembership splits users into those not among members and those who are,
// each in the order of users.
func splitByMembership(users []string, members []store.Member) (outside, inside []string) {
	in := make(map[string]bool, len(members))
	for _, m := range members {
		in[m.UserID] = true
	}
	for _, u := range users {
		if in[u] {
			inside = append(inside, u)
		} else {
			outside = append(outside, u)
		}
	}
	return outside, inside
}
