package gateway

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// MaxChatName is the longest chat name, in bytes (chats.MaxName).
const MaxChatName = chats.MaxName

// The gateway's spellings of the REST helpers every concept package shares
// (gateway/internal/httpx).
var (
	writeJSON  = httpx.WriteJSON
	writeError = httpx.WriteError
)

// fail writes err (a *protocol.Error, or an internal error that is logged).
func (g *Gateway) fail(w http.ResponseWriter, err error) { httpx.Fail(g.log, w, err) }

// failLimited writes a refusal of the REST buckets and counts it.
func (g *Gateway) failLimited(w http.ResponseWriter, err error) {
	countLimited(&g.metrics.restLimited, err)
	g.fail(w, err)
}

// countLimited adds one to n if err is a refusal of the REST buckets.
func countLimited(n *atomic.Int64, err error) {
	if pe, ok := err.(*protocol.Error); ok && pe.Code == protocol.CodeRateLimited {
		n.Add(1)
	}
}

// authedHandler is the handler of a route that needs a bearer token.
type authedHandler = httpx.AuthedHandler

// authed requires a valid bearer token.
func (g *Gateway) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.cors(w, r) // cors.go
		token := ""
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
		id, err := g.deps.Auth.Verify(r.Context(), token)
		if err != nil {
			writeError(w, http.StatusUnauthorized, authError(err))
			return
		}
		h(w, r, id)
	}
}

// decodeBody reads a JSON body of at most MaxBodyBytes into v, refusing unknown
// fields and trailing data (httpx.Body).
func (g *Gateway) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return g.body().Decode(w, r, v)
}

// body is the bound of a JSON request body.
func (g *Gateway) body() httpx.Body {
	return httpx.Body{MaxBytes: g.cfg.MaxBodyBytes, Timeout: g.cfg.BodyTimeout}
}

// createChatRequest is the body of POST /api/v1/chats.
type createChatRequest struct {
	Type    string   `json:"type"`
	Members []string `json:"members"`
	Name    string   `json:"name"`
	// Encrypted creates an end-to-end encrypted chat (docs/e2ee.md); it can never
	// change. A direct chat's encrypted and plain versions are two chats.
	Encrypted bool `json:"encrypted"`
}

// chatResponse is a chat with its members (chats.Response).
type chatResponse = chats.Response

func (g *Gateway) createChat(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	var req createChatRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	now := time.Now().UTC()
	chat := store.Chat{Kind: req.Type, Name: strings.TrimSpace(req.Name), CreatedBy: id.UserID, CreatedAt: now, Encrypted: req.Encrypted}
	if len(chat.Name) > MaxChatName {
		g.fail(w, protocol.Errorf(protocol.CodeTooLarge, "name over %d bytes", MaxChatName))
		return
	}
	seen := map[string]bool{id.UserID: true}
	members := []store.Member{{UserID: id.UserID, Role: store.RoleAdmin, JoinedAt: now}}
	for _, u := range req.Members {
		if err := validID("user", u); err != nil {
			g.fail(w, err)
			return
		}
		if !seen[u] {
			seen[u] = true
			members = append(members, store.Member{UserID: u, Role: store.RoleMember, JoinedAt: now})
		}
	}
	if len(members) > g.cfg.MaxGroupMembers {
		g.fail(w, chats.GroupFull(g.cfg.MaxGroupMembers))
		return
	}
	// Creating a chat is charged as a creation plus one member add per member
	// named: a group cannot be grown faster by creating it whole (restlimits.go).
	var charge restCharge
	if err := g.rest.take(&charge, restChatCreate, id.UserID, 1); err != nil {
		g.failLimited(w, err)
		return
	}
	if err := g.rest.take(&charge, memberAddKind(id), id.UserID, len(members)-1); err != nil {
		g.failLimited(w, err)
		return
	}
	var invite []store.Member
	switch req.Type {
	case store.KindDirect:
		if len(members) != 2 {
			g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "a direct chat has exactly one other member"))
			return
		}
		if !id.Service {
			if err := g.checkNotBlocked(r.Context(), members[1].UserID, id.UserID); err != nil { // blocks.go
				charge.cancel()
				g.fail(w, err)
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
		var err error
		if members, invite, err = g.splitByConsent(r.Context(), id.UserID, id.Service, members); err != nil { // consent.go
			charge.cancel()
			g.failLimited(w, err)
			return
		}
	default:
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, `type must be "direct" or "group"`))
		return
	}
	for i := range members {
		members[i].ChatID = chat.ID
	}
	stored, created, err := g.deps.Store.CreateChat(r.Context(), chat, members)
	if errors.Is(err, store.ErrChatDeleted) {
		g.fail(w, protocol.Errorf(protocol.CodeConflict, "chat %s was deleted and its ID is never used again: create it with another ID", chat.ID))
		return
	}
	if err != nil {
		g.fail(w, err)
		return
	}
	if created && g.deps.LargeChatThreshold > 0 && len(members) > g.deps.LargeChatThreshold {
		// Mark it large before its first message, so gateways subscribe in time.
		if err := g.large.Mark(r.Context(), stored.ID, len(members)); err != nil {
			g.log.Warn("large-chat mark failed", zap.String("chat_id", stored.ID), zap.Error(err))
		}
	}
	ms, err := g.deps.Store.Members(r.Context(), stored.ID)
	if err != nil {
		g.fail(w, err)
		return
	}
	if _, err := g.members.check(r.Context(), stored.ID, id.UserID); err != nil {
		g.fail(w, err) // a direct chat id that exists between two other users cannot happen
		return
	}
	resp := chatResponse{Chat: stored, Members: ms}
	if created {
		for _, m := range invite {
			if err := g.chats.Invite(r.Context(), chats.NewInvitation(stored.ID, m.UserID, id.UserID, m.Role)); err != nil {
				g.log.Info("invitation at group creation not made", zap.String("chat_id", stored.ID), zap.String("user_id", m.UserID), zap.Error(err))
				continue
			}
			resp.Invited = append(resp.Invited, m.UserID)
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, resp)
}
