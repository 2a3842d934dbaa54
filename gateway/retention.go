package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Retention and deletion of chats over REST (docs/protocol.md, "Retention and
// deletion"; docs/privacy.md):
//
//	PUT    /api/v1/chats/{id}/ttl    {"messageTtl": seconds}: disappearing messages
//	                                 (group admins, either member of a direct chat)
//	POST   /api/v1/chats/{id}/clear  {"seq"?}: clear one's own history up to seq
//	                                 (default: everything so far) (members)
//	DELETE /api/v1/chats/{id}        delete a group for everyone (admins)
//
// A TTL change and a deletion are chat changes (chats.go): sequenced system events
// (message_ttl_changed, chat_deleted) that the sequencer applies to the store, in
// order with the conversation. Clearing is one user's own view and changes no one
// else's: it raises that user's history floor, below which history, sync and the
// unread count no longer show anything to them.

// ttlRequest is the body of PUT /api/v1/chats/{id}/ttl.
type ttlRequest struct {
	// MessageTTL is in seconds: 0 turns disappearing messages off, else
	// store.MinMessageTTL..store.MaxMessageTTL. Required.
	MessageTTL *int64 `json:"messageTtl"`
}

func (g *Gateway) putChatTTL(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req ttlRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	if req.MessageTTL == nil {
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "messageTtl is required: seconds, or 0 to turn disappearing messages off"))
		return
	}
	ttl := *req.MessageTTL
	if ttl != 0 && (ttl < store.MinMessageTTL || ttl > store.MaxMessageTTL) {
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "messageTtl must be 0 (off) or %d..%d seconds", store.MinMessageTTL, store.MaxMessageTTL))
		return
	}
	c, err := g.ttlChanger(ctx, chat, id)
	if err != nil {
		g.fail(w, err)
		return
	}
	if c.MessageTTL == ttl {
		writeJSON(w, http.StatusOK, chatChange{ChatID: chat, MessageTTL: &ttl})
		return
	}
	ch, err := g.announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventMessageTTLChanged, MessageTTL: ttl, By: id.UserID})
	if err != nil {
		g.fail(w, err)
		return
	}
	ch.MessageTTL = &ttl
	g.answerChange(w, http.StatusOK, ch)
}

// ttlChanger checks that id may change chat's message TTL: an admin of a group
// (or a chats:admin service), either member of a direct chat.
func (g *Gateway) ttlChanger(ctx context.Context, chat string, id auth.Identity) (store.Chat, error) {
	if !id.ChatAdmin {
		c, _, err := g.memberOf(ctx, chat, id.UserID)
		if err != nil {
			return c, err
		}
		if c.Kind == store.KindDirect {
			return c, nil
		}
	}
	return g.adminOf(ctx, chat, id)
}

// clearRequest is the body of POST /api/v1/chats/{id}/clear (optional).
type clearRequest struct {
	// Seq clears up to and including this seq; absent or 0: up to the chat's
	// last seq now. A seq past the last is taken as the last.
	Seq uint64 `json:"seq"`
}

// clearAnswer is the answer to a clear.
type clearAnswer struct {
	ChatID string `json:"chatId"`
	// Floor is the caller's history floor now: nothing at or below it is shown to
	// them again (retainedFrom is Floor+1).
	Floor        uint64 `json:"floor"`
	RetainedFrom uint64 `json:"retainedFrom"`
}

func (g *Gateway) clearHistory(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req clearRequest
	if r.ContentLength != 0 {
		if err := g.decodeBody(w, r, &req); err != nil {
			g.fail(w, err)
			return
		}
	}
	if err := g.chatAccess(ctx, chat, id.UserID); err != nil {
		g.fail(w, err)
		return
	}
	last, err := g.deps.History.LastSeq(ctx, chat)
	if err != nil {
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("last seq of %s: %w", chat, err)))
		return
	}
	seq := last
	if req.Seq > 0 {
		seq = min(req.Seq, last)
	}
	floor, err := g.deps.Store.ClearHistory(ctx, chat, id.UserID, seq)
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, clearAnswer{ChatID: chat, Floor: floor, RetainedFrom: floor + 1})
}

func (g *Gateway) deleteChat(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	c, err := g.adminOf(ctx, chat, id)
	if err != nil {
		if c.Kind == store.KindDirect {
			err = protocol.Errorf(protocol.CodeConflict, "a direct chat cannot be deleted: clear its history for yourself (POST /api/v1/chats/%s/clear)", chat)
		}
		g.fail(w, err)
		return
	}
	members, err := g.deps.Store.Members(ctx, chat)
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	ch, err := g.announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventChatDeleted, By: id.UserID})
	if err != nil {
		g.fail(w, err)
		return
	}
	for _, m := range members {
		g.members.forget(chat, m.UserID)
	}
	g.log.Info("chat deleted", zap.String("chat_id", chat), zap.String("by", id.UserID), zap.Int("members", len(members)), zap.Uint64("seq", ch.Seq))
	g.answerChange(w, http.StatusOK, ch)
}

// historyFloor returns user's history floor in chat (0: none).
func (g *Gateway) historyFloor(ctx context.Context, chat, user string) (uint64, error) {
	floor, err := g.deps.Store.HistoryFloor(ctx, chat, user)
	if err != nil {
		if errors.Is(err, store.ErrNotSupported) {
			return 0, nil
		}
		return 0, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("history floor of %s: %w", chat, err))
	}
	return floor, nil
}

// retainedFrom is the lowest seq the reader may still read, as far as a history
// answer to q (page, hasMore) shows it: above the reader's floor, and, when a
// backward page reached the start of what is left (hasMore false), its oldest
// message. 0 when nothing is known to be gone.
func retainedFrom(floor uint64, q store.HistoryQuery, page []protocol.Message, hasMore bool) uint64 {
	var from uint64
	if floor > 0 {
		from = floor + 1
	}
	if q.Dir == store.Backward && !hasMore && len(page) > 0 && page[len(page)-1].Seq > 1 {
		from = max(from, page[len(page)-1].Seq)
	}
	return from
}
