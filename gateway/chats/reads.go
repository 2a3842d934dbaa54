package chats

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/gateway/internal/historyread"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// List is GET /api/v1/chats: the caller's chats by last activity. ?cursor= (from
// the previous page's "cursor") is the way to page: unlike ?offset=, it neither
// repeats nor skips a chat when chats become active or are left between pages.
func (s *Service) List(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	limit, err := httpx.QueryInt(r, "limit", 50, 1, 500)
	if err != nil {
		s.fail(w, err)
		return
	}
	offset, err := httpx.QueryInt(r, "offset", 0, 0, 1<<30)
	if err != nil {
		s.fail(w, err)
		return
	}
	var chats []store.ChatSummary
	if v := r.URL.Query().Get("cursor"); v != "" {
		cur, perr := parseListCursor(v)
		if perr == nil && offset > 0 {
			perr = protocol.Errorf(protocol.CodeBadRequest, "give cursor or offset, not both")
		}
		if perr != nil {
			s.fail(w, perr)
			return
		}
		chats, err = s.deps.Store.UserChatsBefore(r.Context(), id.UserID, cur, limit)
	} else {
		chats, err = s.deps.Store.UserChats(r.Context(), id.UserID, limit, offset)
	}
	if err != nil {
		httpx.FailStore(s.log, w, httpx.StoreUnavailable(err))
		return
	}
	if chats == nil {
		chats = []store.ChatSummary{}
	}
	body := map[string]any{"chats": chats, "hasMore": len(chats) == limit}
	if len(chats) > 0 {
		body["cursor"] = listCursor(chats[len(chats)-1])
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// listCursor encodes c as the opaque cursor of GET /api/v1/chats:
// "<activity ms>.<chat id>" (chat IDs have no dots).
func listCursor(c store.ChatSummary) string {
	return strconv.FormatInt(c.LastActivity.UnixMilli(), 10) + "." + c.ID
}

// parseListCursor reads a cursor from listCursor.
func parseListCursor(v string) (store.ChatListCursor, error) {
	ms, chat, ok := strings.Cut(v, ".")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || n < 0 || len(ms) > 19 || !ids.Valid(chat) {
		return store.ChatListCursor{}, protocol.Errorf(protocol.CodeBadRequest, "cursor must be one from a previous page")
	}
	return store.ChatListCursor{Activity: time.UnixMilli(n).UTC(), ChatID: chat}, nil
}

// Get is GET /api/v1/chats/{id}: the chat and the first page of its members (a
// large group's whole list is paged by Members).
func (s *Service) Get(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	c, _, err := MemberOf(r.Context(), s.deps.Members, s.deps.Store, r.PathValue("id"), id.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	ms, err := s.deps.Store.MembersPage(r.Context(), c.ID, "", store.MaxMemberPage)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, Response{Chat: c, Members: NonNilMembers(ms), MembersNext: NextMemberCursor(ms, store.MaxMemberPage)})
}

// Members is GET /api/v1/chats/{id}/members: one page of members ordered by user
// ID, after the cursor ?after= (a user ID: the next of the previous page),
// ?limit= 1..1000 (default 1000). next is set when the page is full.
func (s *Service) Members(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	limit, err := httpx.QueryInt(r, "limit", store.DefaultMemberPage, 1, store.MaxMemberPage)
	if err != nil {
		s.fail(w, err)
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" {
		if err := protocol.ValidID("after", after); err != nil {
			s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "after must be a cursor (next) from a previous page"))
			return
		}
	}
	c, _, err := MemberOf(r.Context(), s.deps.Members, s.deps.Store, r.PathValue("id"), id.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	ms, err := s.deps.Store.MembersPage(r.Context(), c.ID, after, limit)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	body := map[string]any{"chatId": c.ID, "members": NonNilMembers(ms)}
	if next := NextMemberCursor(ms, limit); next != "" {
		body["next"] = next
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// messagesPage is the body of GET /api/v1/chats/{id}/messages. Cursor.Before pages
// to older messages (?before=), Cursor.After to newer ones (?after=).
type messagesPage struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"hasMore"`
	// RetainedFrom is the lowest seq the caller may still read
	// (historyread.RetainedFrom).
	RetainedFrom uint64 `json:"retainedFrom,omitempty"`
	Cursor       struct {
		Before string `json:"before,omitempty"`
		After  string `json:"after,omitempty"`
	} `json:"cursor"`
}

// Messages is GET /api/v1/chats/{id}/messages: one page of the chat's history,
// backward from ?before= (none: the newest page) or forward from ?after= (present,
// even 0), ?limit= 1..store.MaxPage, cut to gateway.history-page-bytes.
func (s *Service) Messages(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := protocol.ValidID("chat", chat); err != nil {
		s.fail(w, err)
		return
	}
	if _, err := s.deps.Members.CheckFresh(r.Context(), chat, id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	limit, err := httpx.QueryInt(r, "limit", store.DefaultPage, 1, store.MaxPage)
	if err != nil {
		s.fail(w, err)
		return
	}
	before, err := historyread.ParseCursor("before", r.URL.Query().Get("before"))
	if err != nil {
		s.fail(w, err)
		return
	}
	after, err := historyread.ParseCursor("after", r.URL.Query().Get("after"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if before > 0 && after > 0 {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "give before or after, not both"))
		return
	}
	floor, err := historyread.Floor(r.Context(), s.deps.Store, chat, id.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	q := store.HistoryQuery{Before: before, Limit: limit, Viewer: id.UserID, Floor: floor}
	if after > 0 || r.URL.Query().Get("after") != "" {
		q = store.HistoryQuery{Dir: store.Forward, After: after, Limit: limit, Viewer: id.UserID, Floor: floor}
	}
	msgs, err := s.deps.History.Page(r.Context(), chat, q)
	if err != nil {
		s.fail(w, protocol.Errorf(protocol.CodeUnavailable, "history unavailable; retry").WithCause(fmt.Errorf("history of %s: %w", chat, err)))
		return
	}
	var page messagesPage
	msgs, page.HasMore = historyread.CapPage(msgs, limit, s.cfg.HistoryPageBytes)
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
	httpx.WriteJSON(w, http.StatusOK, page)
}
