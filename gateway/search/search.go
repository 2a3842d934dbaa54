// Package search serves GET /api/v1/search?q=&chatId=&limit=&cursor=: full-text
// search over the chats the caller is a member of now (store.Searcher; docs/search.md). q is words, all of
// which must match (the last also as a prefix), case- and accent-insensitive;
// chatId limits it to one chat (403 not_member for a chat of others); results come
// newest first, in their current state; cursor continues after a previous page.
// A store that is not a store.Searcher (none today; Deps.Searcher nil) answers 501
// not_found, as every feature a store backend lacks does.
package search

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Members answers whether a user is a member of a chat now.
type Members interface {
	// CheckMember returns nil if user is a member of chat, asking the store, else
	// a *protocol.Error: not_member, or unavailable.
	CheckMember(ctx context.Context, chat, user string) error
}

// Deps are what search needs from the gateway.
type Deps struct {
	// Searcher is the store's search (store.Searcher); nil when the store has none.
	Searcher store.Searcher
	Members  Members
}

// Service serves search. It is safe for concurrent use.
type Service struct {
	deps Deps
	log  *zap.Logger
}

// New returns the search service.
func New(deps Deps, log *zap.Logger) *Service { return &Service{deps: deps, log: log} }

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }

// chatAccess checks that chat is an ID and user is a member of it now.
func (s *Service) chatAccess(ctx context.Context, chat, user string) error {
	if err := protocol.ValidID("chat", chat); err != nil {
		return err
	}
	return s.deps.Members.CheckMember(ctx, chat, user)
}

// nonNil is m, or an empty list for JSON's [] rather than null.
func nonNil(m []protocol.Message) []protocol.Message {
	if m == nil {
		return []protocol.Message{}
	}
	return m
}

// searchPage is the answer to a search.
type searchPage struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"hasMore"`
	// Cursor continues after this page (?cursor=); absent on an empty page.
	Cursor string `json:"cursor,omitempty"`
}

// Search serves GET /api/v1/search.
func (s *Service) Search(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	qs := r.URL.Query()
	q := store.SearchQuery{Text: qs.Get("q"), ChatID: qs.Get("chatId")}
	switch {
	case strings.TrimSpace(q.Text) == "":
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "q (what to search for) is required"))
		return
	case len(q.Text) > store.MaxSearchBytes:
		s.fail(w, protocol.Errorf(protocol.CodeTooLarge, "q over %d bytes", store.MaxSearchBytes))
		return
	}
	limit, err := httpx.QueryInt(r, "limit", store.DefaultSearch, 1, store.MaxSearch)
	if err != nil {
		s.fail(w, err)
		return
	}
	q.Limit = limit
	if v := qs.Get("cursor"); v != "" {
		if q.Before, err = parseSearchCursor(v); err != nil {
			s.fail(w, err)
			return
		}
	}
	if q.ChatID != "" {
		if err := s.chatAccess(r.Context(), q.ChatID, id.UserID); err != nil {
			s.fail(w, err)
			return
		}
	}
	if s.deps.Searcher == nil {
		httpx.FailStore(s.log, w, httpx.ErrNotSupported)
		return
	}
	msgs, err := s.deps.Searcher.Search(r.Context(), id.UserID, q)
	switch {
	case errors.Is(err, store.ErrBadSearch):
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "q has no word to search for"))
		return
	case err != nil:
		httpx.FailStore(s.log, w, httpx.StoreUnavailable(err))
		return
	}
	page := searchPage{Messages: nonNil(msgs), HasMore: len(msgs) == limit}
	if len(msgs) > 0 {
		last := msgs[len(msgs)-1]
		page.Cursor = strconv.FormatInt(last.Timestamp, 10) + "." + strconv.FormatUint(last.Seq, 10) + "." + last.ChatID
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

// parseSearchCursor reads "<timestamp>.<seq>.<chat id>" from a previous page.
func parseSearchCursor(v string) (store.SearchCursor, error) {
	bad := protocol.Errorf(protocol.CodeBadRequest, "cursor must be one from a previous page")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) != 3 || len(parts[0]) > 19 || len(parts[1]) > 20 || !ids.Valid(parts[2]) {
		return store.SearchCursor{}, bad
	}
	ts, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil || ts < 0 || seq == 0 {
		return store.SearchCursor{}, bad
	}
	return store.SearchCursor{Timestamp: ts, ChatID: parts[2], Seq: seq}, nil
}
