package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/natter-chat/natter/gateway/internal/historyread"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// MaxChatName is the longest chat name, in bytes.
const MaxChatName = 128

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

// chatResponse is a chat with its members.
type chatResponse struct {
	store.Chat
	Members []store.Member `json:"members"`
	// Invited are the users named at creation who were invited instead of added
	// (consent.go): they join when they accept.
	Invited []string `json:"invited,omitempty"`
	// MembersNext, when set, is the cursor of the next page of members (GET
	// /api/v1/chats/{id}/members?after=): the chat has more than one page.
	MembersNext string `json:"membersNext,omitempty"`
}

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
		g.fail(w, groupFull(g.cfg.MaxGroupMembers)) // members_bulk.go
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
			if err := g.invite(r.Context(), newInvitation(stored.ID, m.UserID, id.UserID, m.Role)); err != nil {
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

// queryInt reads an integer query parameter (httpx.QueryInt).
var queryInt = httpx.QueryInt

// listChats pages the caller's chats by last activity. ?cursor= (from the previous
// page's "cursor") is the way to page: unlike ?offset=, it neither repeats nor skips
// a chat when chats become active or are left between pages (chats.go).
func (g *Gateway) listChats(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	limit, err := queryInt(r, "limit", 50, 1, 500)
	if err != nil {
		g.fail(w, err)
		return
	}
	offset, err := queryInt(r, "offset", 0, 0, 1<<30)
	if err != nil {
		g.fail(w, err)
		return
	}
	var chats []store.ChatSummary
	if v := r.URL.Query().Get("cursor"); v != "" {
		cur, perr := parseChatListCursor(v)
		if perr == nil && offset > 0 {
			perr = protocol.Errorf(protocol.CodeBadRequest, "give cursor or offset, not both")
		}
		if perr != nil {
			g.fail(w, perr)
			return
		}
		chats, err = g.deps.Store.UserChatsBefore(r.Context(), id.UserID, cur, limit)
	} else {
		chats, err = g.deps.Store.UserChats(r.Context(), id.UserID, limit, offset)
	}
	if err != nil {
		g.failStore(w, storeUnavailable(err))
		return
	}
	if chats == nil {
		chats = []store.ChatSummary{}
	}
	body := map[string]any{"chats": chats, "hasMore": len(chats) == limit}
	if len(chats) > 0 {
		body["cursor"] = chatListCursor(chats[len(chats)-1])
	}
	writeJSON(w, http.StatusOK, body)
}

// messagesPage is the body of GET /api/v1/chats/{id}/messages. Cursor.Before pages
// to older messages (?before=), Cursor.After to newer ones (?after=).
type messagesPage struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"hasMore"`
	// RetainedFrom is the lowest seq the caller may still read (historyread.RetainedFrom).
	RetainedFrom uint64 `json:"retainedFrom,omitempty"`
	Cursor       struct {
		Before string `json:"before,omitempty"`
		After  string `json:"after,omitempty"`
	} `json:"cursor"`
}

func (g *Gateway) chatAccess(ctx context.Context, chat, user string) error {
	if err := validID("chat", chat); err != nil {
		return err
	}
	_, err := g.members.checkFresh(ctx, chat, user)
	return err
}

func (g *Gateway) listMessages(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := g.chatAccess(r.Context(), chat, id.UserID); err != nil {
		g.fail(w, err)
		return
	}
	limit, err := queryInt(r, "limit", store.DefaultPage, 1, store.MaxPage)
	if err != nil {
		g.fail(w, err)
		return
	}
	before, err := historyread.ParseCursor("before", r.URL.Query().Get("before"))
	if err != nil {
		g.fail(w, err)
		return
	}
	after, err := historyread.ParseCursor("after", r.URL.Query().Get("after"))
	if err != nil {
		g.fail(w, err)
		return
	}
	if before > 0 && after > 0 {
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "give before or after, not both"))
		return
	}
	floor, err := historyread.Floor(r.Context(), g.deps.Store, chat, id.UserID)
	if err != nil {
		g.fail(w, err)
		return
	}
	q := store.HistoryQuery{Before: before, Limit: limit, Viewer: id.UserID, Floor: floor}
	if after > 0 || r.URL.Query().Get("after") != "" {
		q = store.HistoryQuery{Dir: store.Forward, After: after, Limit: limit, Viewer: id.UserID, Floor: floor}
	}
	msgs, err := g.deps.History.Page(r.Context(), chat, q)
	if err != nil {
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("history of %s: %w", chat, err)))
		return
	}
	var page messagesPage
	msgs, page.HasMore = historyread.CapPage(msgs, limit, g.cfg.HistoryPageBytes)
	page.Messages = msgs
	page.RetainedFrom = historyread.RetainedFrom(floor, q, msgs, page.HasMore)
	if len(msgs) > 0 {
		lo, hi := msgs[0].Seq, msgs[len(msgs)-1].Seq
		if lo > hi {
			lo, hi = hi, lo
		}
		page.Cursor.Before = strconv.FormatUint(lo, 10)
		page.Cursor.After = strconv.FormatUint(hi, 10)
	}
	writeJSON(w, http.StatusOK, page)
}

// postMessageRequest is the body of POST /api/v1/chats/{id}/messages.
type postMessageRequest struct {
	MessageID   string          `json:"messageId"`
	Content     string          `json:"content"`
	MessageType string          `json:"messageType"`
	ReplyTo     string          `json:"replyTo"`
	Meta        json.RawMessage `json:"meta"`
	// SenderID lets a service post as a bot or system user; others must omit it.
	SenderID string `json:"senderId"`
}

// postMessage sends a message over HTTP: as the caller (a member), or, with a service
// token, as the system or a named bot user without membership.
func (g *Gateway) postMessage(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := validID("chat", chat); err != nil {
		g.fail(w, err)
		return
	}
	var req postMessageRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	kind := restPost
	if id.Service {
		kind = restServicePost
	}
	if err := g.rest.take(new(restCharge), kind, id.UserID, 1); err != nil { // restlimits.go
		g.failLimited(w, err)
		return
	}
	if req.MessageID == "" {
		req.MessageID = ids.New()
	}
	sender := id.UserID
	if req.SenderID != "" {
		if !id.Service {
			g.fail(w, protocol.Errorf(protocol.CodeForbidden, "only service tokens may set senderId"))
			return
		}
		if err := validID("user", req.SenderID); err != nil {
			g.fail(w, err)
			return
		}
		sender = req.SenderID
	}
	// Services may post system messages: the rest is validated as for any message.
	system := req.MessageType == protocol.TypeSystem && id.Service
	if system {
		req.MessageType = ""
	}
	f := &protocol.Frame{ChatID: chat, MessageID: req.MessageID, Content: req.Content,
		MessageType: req.MessageType, ReplyTo: req.ReplyTo, Meta: req.Meta}
	m, err := messageFromFrame(sender, f)
	if err != nil {
		g.fail(w, err)
		return
	}
	if system {
		m.MessageType = protocol.TypeSystem
		if ev := protocol.ChatChangeIn(m.Meta); ev != "" {
			// Chat changes are made by the chat API, which checks the caller's right
			// and stamps by; a posted member_added would name any by it liked.
			g.fail(w, protocol.Errorf(protocol.CodeForbidden,
				"%s is a chat change: use the chat API (POST /api/v1/chats/{id}/members, DELETE .../members/{uid}, PATCH /api/v1/chats/{id}) as a chat admin or with the %s scope", ev, protocol.ScopeChatsAdmin))
			return
		}
	}
	if !id.Service {
		if _, err := g.members.check(r.Context(), chat, id.UserID); err != nil {
			g.fail(w, err)
			return
		}
	} else if _, err := g.deps.Store.GetChat(r.Context(), chat); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			g.fail(w, protocol.Errorf(protocol.CodeNotFound, "no chat %s", chat))
			return
		}
		g.fail(w, err)
		return
	}
	if err := g.checkDirectSend(r.Context(), chat, sender, m.MessageType); err != nil { // blocks.go
		g.fail(w, err)
		return
	}
	if err := g.flags.checkType(r.Context(), chat, m.MessageType); err != nil { // encrypted.go
		g.fail(w, err)
		return
	}
	if err := g.media.Share(r.Context(), id.UserID, m); err != nil { // gateway/media
		g.fail(w, err)
		return
	}
	as := asUser
	if id.Service {
		as = asService
	}
	// Answered once the sequencer decided (answers.go): seq is the message's place
	// in the chat, the original one for a resend (duplicate). 202 as before the
	// answer carried a seq, so clients written then keep working.
	ack, err := g.publishAndWait(r.Context(), m, as)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"chatId": chat, "messageId": m.MessageID, "seq": ack.Seq, "duplicate": ack.Duplicate})
}
