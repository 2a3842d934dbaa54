package chats

import (
	"context"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Leaving a group (POST /api/v1/chats/{id}/leave, or DELETE
// /api/v1/chats/{id}/members/{uid} naming oneself) and the last-admin rule every
// change that can remove an admin keeps: a group with members always has an admin.
//
// The paths that can take an admin away, and where each keeps the rule (tested
// together by e2e.TestLastAdminEveryPath):
//   - leaving (LeaveChat: POST .../leave, DELETE .../members/{self}): LastAdmin;
//   - removing one member (RemoveMember, user or chats:admin service token, the
//     member in the path or in a {"userId"} body): LastAdmin when it is an admin;
//   - removing members in bulk (removeMembers): LeavesNoAdmin over all of them;
//   - demoting an admin (AddMember with role "member"): LastAdmin. A bulk add
//     never changes a role;
//   - erasing an account (gateway/erasure): it cannot be refused, so it names a
//     successor admin first (erasure.successor) when the erased user is the only
//     admin of a group that keeps members;
//   - deleting a group (gateway/retention): nobody stays, so nothing to keep.
//
// No other path changes a membership: the WebSocket protocol has no membership
// frame; a chat change posted as a system message (POST .../messages with a
// service token, or pkg/publish on the service ingress) is refused by the gateway
// and by the sequencer (only a gateway's change, protocol.HeaderChange, applies).
//
// These checks read the store before the change is published, so two changes made
// at once (two admins leaving, or demoting each other) can both pass them; the
// sequencer applies the group's changes one at a time and refuses the one that
// would leave no admin with the same conflict (sequencer/lastadmin.go,
// e2e.TestLastAdminUnderConcurrentChanges).

// AdminStore is the store calls LeavesNoAdmin makes.
type AdminStore interface {
	// ChatAdmins returns up to limit admins of chat.
	ChatAdmins(ctx context.Context, chatID string, limit int) ([]string, error)
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]store.Member, error)
}

// LeavesNoAdmin reports whether chat would have members but no admin once leaving
// (members or not) are gone. It reads what the answer needs, not the chat's
// members: up to len(leaving)+1 admins (one of them stays, unless every admin is
// leaving), then, only if none stays, members until one that stays (at most
// len(leaving)+1 of them).
func LeavesNoAdmin(ctx context.Context, st AdminStore, chat string, leaving []string) (bool, error) {
	gone := make(map[string]bool, len(leaving))
	for _, u := range leaving {
		gone[u] = true
	}
	admins, err := st.ChatAdmins(ctx, chat, len(gone)+1)
	if err != nil {
		return false, err
	}
	for _, a := range admins {
		if !gone[a] {
			return false, nil
		}
	}
	for after := ""; ; {
		page, err := st.MembersPage(ctx, chat, after, min(len(gone)+1, store.MaxMemberPage))
		if err != nil {
			return false, err
		}
		for _, m := range page {
			if !gone[m.UserID] {
				return true, nil // a member stays, with no admin
			}
		}
		if len(page) < min(len(gone)+1, store.MaxMemberPage) {
			return false, nil // nobody stays
		}
		after = page[len(page)-1].UserID
	}
}

// LastAdmin returns the refusal (409) of a change that would leave chat without
// an admin while it has other members, once leaving (an admin) is gone: the caller
// makes someone else admin first. nil when the change may go ahead; unavailable
// when the store could not answer.
func LastAdmin(ctx context.Context, st AdminStore, chat, leaving string) error {
	orphaned, err := LeavesNoAdmin(ctx, st, chat, []string{leaving})
	if err != nil {
		return httpx.StoreUnavailable(err)
	}
	if orphaned {
		return protocol.Errorf(protocol.CodeConflict, "%s is the only admin of chat %s: make another member admin first", leaving, chat)
	}
	return nil
}

// Leave is POST /api/v1/chats/{id}/leave.
func (s *Service) Leave(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	s.LeaveChat(w, r, id, r.PathValue("id"))
}

// LeaveChat makes the caller leave the group chat (not a direct chat), unless they
// are its last admin and members remain.
func (s *Service) LeaveChat(w http.ResponseWriter, r *http.Request, id auth.Identity, chat string) {
	ctx := r.Context()
	c, mb, err := MemberOf(ctx, s.deps.Members, s.deps.Store, chat, id.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	if c.Kind != store.KindGroup {
		s.fail(w, protocol.Errorf(protocol.CodeConflict, "a direct chat cannot be left"))
		return
	}
	if mb.Role == store.RoleAdmin {
		if err := LastAdmin(ctx, s.deps.Store, chat, id.UserID); err != nil {
			s.fail(w, err)
			return
		}
	}
	ch, err := s.deps.Changes.Announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: id.UserID, By: id.UserID})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.deps.Members.Forget(chat, id.UserID)
	chatchange.Write(w, http.StatusOK, ch)
}
