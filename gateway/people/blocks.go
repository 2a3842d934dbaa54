package people

import (
	"errors"
	"net/http"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Blocking (docs/protocol.md, "Blocking"): the routes. What a block forbids is
// enforced where it happens (gateway/blocks.go, the sequencer, the notifier,
// gateway/livestate).
//
//	POST   /api/v1/blocks/{userId}   block a user
//	DELETE /api/v1/blocks/{userId}   unblock them
//	GET    /api/v1/blocks            the users the caller blocks
//
// Blocking also drops the blocked user's pending invitations to the blocker.

var errServiceBlocks = protocol.Errorf(protocol.CodeForbidden, "service tokens block nobody: block with a user's token")

// blockBody is one block in answers.
type blockBody struct {
	UserID    string    `json:"userId"`
	CreatedAt time.Time `json:"createdAt"`
}

// blockTarget is the user a block request names, checked; false when the request
// was refused and answered.
func (s *Service) blockTarget(w http.ResponseWriter, r *http.Request, id auth.Identity) (string, bool) {
	if id.Service {
		s.fail(w, errServiceBlocks)
		return "", false
	}
	target := r.PathValue("userId")
	if err := protocol.ValidID("user", target); err != nil {
		s.fail(w, err)
		return "", false
	}
	if target == id.UserID {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "you cannot block yourself"))
		return "", false
	}
	return target, true
}

// Block serves POST /api/v1/blocks/{userId}: 201 for a new block, 200 for one
// that existed.
func (s *Service) Block(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	target, ok := s.blockTarget(w, r, id)
	if !ok {
		return
	}
	b := store.Block{Blocker: id.UserID, Blocked: target, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	created, err := s.deps.Store.Block(ctx, b)
	switch {
	case errors.Is(err, store.ErrTooManyBlocks):
		s.fail(w, protocol.Errorf(protocol.CodeConflict, "at most %d blocked users: unblock one first (DELETE /api/v1/blocks/{userId})", store.MaxBlocks))
		return
	case err != nil:
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	s.deps.Blocks.Forget(id.UserID)
	s.deps.Presence.DropBlocked(id.UserID, target) // this gateway's presence watches end now
	// The blocked user's pending invitations to the blocker go.
	if invs, err := s.deps.Store.Invitations(ctx, id.UserID); err == nil {
		for _, inv := range invs {
			if inv.InvitedBy == target {
				_, _ = s.deps.Store.DeleteInvitation(ctx, id.UserID, inv.ChatID)
			}
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	} else if bs, err := s.deps.Store.Blocks(ctx, id.UserID); err == nil {
		for _, x := range bs {
			if x.Blocked == target {
				b.CreatedAt = x.CreatedAt
			}
		}
	}
	httpx.WriteJSON(w, status, blockBody{UserID: target, CreatedAt: b.CreatedAt.UTC()})
}

// Unblock serves DELETE /api/v1/blocks/{userId}.
func (s *Service) Unblock(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	target, ok := s.blockTarget(w, r, id)
	if !ok {
		return
	}
	removed, err := s.deps.Store.Unblock(r.Context(), id.UserID, target)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	s.deps.Blocks.Forget(id.UserID)
	if !removed {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "you do not block %s", target))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"userId": target, "removed": true})
}

// Blocks serves GET /api/v1/blocks.
func (s *Service) Blocks(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		s.fail(w, errServiceBlocks)
		return
	}
	bs, err := s.deps.Store.Blocks(r.Context(), id.UserID)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	out := make([]blockBody, 0, len(bs))
	for _, b := range bs {
		out = append(out, blockBody{UserID: b.Blocked, CreatedAt: b.CreatedAt.UTC()})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"blocks": out})
}
