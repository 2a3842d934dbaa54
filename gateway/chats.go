package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Chat management over REST (docs/protocol.md, "Chats and members"); the reads
// (GET /api/v1/chats, /chats/{id}, /chats/{id}/members, /chats/{id}/messages),
// sends, renaming (PATCH /api/v1/chats/{id}) and leaving (POST
// /api/v1/chats/{id}/leave) are in gateway/chats:
//
//	POST   /api/v1/chats/{id}/members         {"userId","role?"}: add, or change a role (admins)
//	POST   /api/v1/chats/{id}/members         {"userIds","role?"}: add up to 1,000 (admins; members_bulk.go)
//	DELETE /api/v1/chats/{id}/members/{uid}   remove a member (admins; oneself: leave)
//	DELETE /api/v1/chats/{id}/members         the same with a body {"userId"}, or {"userIds"} for up to 1,000
//
// A change is a system message sequenced into the chat (a protocol.SystemEvent in
// its meta), so every member sees it in order with the conversation. The gateway
// publishes it to NATTER_IN with the Natter-Service header; the sequencer writes the
// change to the store just before it appends the event to the log, and changes its
// own view of the members as it does (a removed member receives the removal and
// nothing after it). Writing the store there, in log order, rather than here means
// the store can never disagree with the log: a publish that fails changes nothing,
// and one whose acknowledgement was lost is still applied. The call waits until the
// event is sequenced (so the answer reflects the change), up to
// gateway.publish-timeout; if the sequencer is slower it answers 202 and the change
// follows.
//
// Direct chats have exactly their two members and no name: changing them is a
// conflict (409).

// chatChange is the answer to a membership or name change (chatchange.Answer).
type chatChange = chatchange.Answer

// adminOf checks a change to a chat: it must be a group and the caller
// its admin (chats.AdminOf).
func (g *Gateway) adminOf(ctx context.Context, chat string, id auth.Identity) (store.Chat, error) {
	return chats.AdminOf(ctx, g.members, g.deps.Store, chat, id)
}

// storeUnavailable is the client error for a failed store read
// (httpx.StoreUnavailable).
var storeUnavailable = httpx.StoreUnavailable

// addMemberRequest is the body of POST /api/v1/chats/{id}/members.
type addMemberRequest struct {
	UserID string `json:"userId"`
	// UserIDs adds several members at once (members_bulk.go), instead of UserID.
	UserIDs []string `json:"userIds"`
	// Role is "member" (the default) or "admin".
	Role string `json:"role"`
}

func (g *Gateway) addMember(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req addMemberRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	if req.UserIDs != nil {
		g.addMembers(w, r, id, chat, req) // members_bulk.go
		return
	}
	if err := validID("user", req.UserID); err != nil {
		g.fail(w, err)
		return
	}
	switch req.Role {
	case "":
		req.Role = store.RoleMember
	case store.RoleMember, store.RoleAdmin:
	default:
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, `role must be "member" or "admin"`))
		return
	}
	if err := g.rest.take(new(restCharge), memberAddKind(id), id.UserID, 1); err != nil { // restlimits.go
		g.failLimited(w, err)
		return
	}
	if _, err := g.adminOf(ctx, chat, id); err != nil {
		g.fail(w, err)
		return
	}
	ev := protocol.SystemEvent{Event: protocol.EventMemberAdded, UserID: req.UserID, Role: req.Role, By: id.UserID}
	status := http.StatusCreated
	existing, err := g.deps.Store.GetMember(ctx, chat, req.UserID)
	switch {
	case err == nil && existing.Role == req.Role:
		writeJSON(w, http.StatusOK, chatChange{ChatID: chat, Member: &existing})
		return
	case err == nil:
		if existing.Role == store.RoleAdmin && g.lastAdmin(ctx, w, chat, req.UserID) {
			return
		}
		ev.Event, status = protocol.EventRoleChanged, http.StatusOK
	case errors.Is(err, store.ErrNotFound):
		if err := g.roomFor(ctx, chat, 1); err != nil { // members_bulk.go
			g.fail(w, err)
			return
		}
		if g.inviteInstead(w, r, id, chat, req) { // consent.go
			return
		}
	default:
		g.fail(w, storeUnavailable(err))
		return
	}
	ch, err := g.announce(ctx, chat, id.UserID, ev)
	if err != nil {
		g.fail(w, err)
		return
	}
	g.members.forget(chat, req.UserID)
	ch.Member = &store.Member{ChatID: chat, UserID: req.UserID, Role: req.Role, JoinedAt: existing.JoinedAt}
	if mb, err := g.deps.Store.GetMember(ctx, chat, req.UserID); err == nil && ch.Seq > 0 {
		ch.Member = &mb
	}
	g.answerChange(w, status, ch)
}

// lastAdmin refuses (409, written to w) a change that would leave chat without an
// admin while it has other members (chats.LastAdmin).
func (g *Gateway) lastAdmin(ctx context.Context, w http.ResponseWriter, chat, leaving string) bool {
	if err := chats.LastAdmin(ctx, g.deps.Store, chat, leaving); err != nil {
		g.fail(w, err)
		return true
	}
	return false
}

// removeMemberRequest is the body of DELETE /api/v1/chats/{id}/members (without
// {uid} in the path).
type removeMemberRequest struct {
	UserID string `json:"userId"`
	// UserIDs removes several members at once (members_bulk.go), instead of UserID.
	UserIDs []string `json:"userIds"`
}

func (g *Gateway) removeMember(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	target := r.PathValue("uid")
	if target == "" {
		var req removeMemberRequest
		if err := g.decodeBody(w, r, &req); err != nil {
			g.fail(w, err)
			return
		}
		if req.UserIDs != nil {
			g.removeMembers(w, r, id, chat, req) // members_bulk.go
			return
		}
		target = req.UserID
	}
	if err := validID("user", target); err != nil {
		g.fail(w, err)
		return
	}
	if target == id.UserID {
		g.chats.LeaveChat(w, r, id, chat) // gateway/chats
		return
	}
	if _, err := g.adminOf(ctx, chat, id); err != nil {
		g.fail(w, err)
		return
	}
	if _, err := g.deps.Store.GetMember(ctx, chat, target); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			g.fail(w, protocol.Errorf(protocol.CodeNotFound, "%s is not a member of chat %s", target, chat))
			return
		}
		g.fail(w, storeUnavailable(err))
		return
	}
	ch, err := g.announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: target, By: id.UserID})
	if err != nil {
		g.fail(w, err)
		return
	}
	g.members.forget(chat, target)
	g.answerChange(w, http.StatusOK, ch)
}

// answerChange writes a change: status, or 202 when its event is not sequenced yet.
func (g *Gateway) answerChange(w http.ResponseWriter, status int, ch chatChange) {
	chatchange.Write(w, status, ch)
}

// announce publishes a membership or name change as a system message of chat sent
// by actor, and waits until the sequencer has sequenced it (and so applied it to the
// store), at most gateway.publish-timeout. Seq is 0 in the answer if the event is
// stored in NATTER_IN but was not sequenced in that time: it will be. An error means
// nothing changed.
func (g *Gateway) announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error) {
	meta, err := json.Marshal(ev)
	if err != nil {
		return chatChange{}, err
	}
	m := &protocol.Message{ChatID: chat, MessageID: ids.New(), SenderID: actor, MessageType: protocol.TypeSystem, Meta: meta}
	ch := chatChange{ChatID: chat, MessageID: m.MessageID}
	ack, err := g.publishAndWait(ctx, m, asChange)
	switch {
	case err == nil:
		ch.Seq = ack.Seq
	case errors.Is(err, errNoAnswer):
		// Stored in NATTER_IN: it will be sequenced.
		g.log.Warn("chat change not sequenced in time; it will be", zap.String("chat_id", chat),
			zap.String("event", ev.Event), zap.Duration("waited", g.cfg.PublishTimeout))
	default:
		return ch, err
	}
	return ch, nil
}

// userDelivery sees every message delivered to a user connected here. A removal,
// departure or role change of that user makes this gateway forget its cached
// membership at once (the gateway that made the change did already; the others
// learn it here, not after the cache's TTL). It then lets large chats watch for
// additions (largechat.go).
func (g *Gateway) userDelivery(uid string, data []byte) {
	chat, ev := g.sysEvents.Parse(data) // sysevents.go: one parse per event, not per user
	if ev == nil {
		return
	}
	if ev.Concerns(uid) || ev.Event == protocol.EventChatDeleted {
		switch ev.Event {
		case protocol.EventMemberRemoved, protocol.EventMemberLeft, protocol.EventRoleChanged, protocol.EventChatDeleted, protocol.EventMembersRemoved:
			g.members.forget(chat, uid)
		}
	}
	g.large.UserMessage(uid, chat, ev)
}
