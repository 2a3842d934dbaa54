package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// GET /api/v1/search?q=&chatId=&limit=&cursor= : full-text search over the chats the
// caller is a member of now (store.Searcher; docs/search.md). q is words, all of
// which must match (the last also as a prefix), case- and accent-insensitive;
// chatId limits it to one chat (403 not_member for a chat of others); results come
// newest first, in their current state; cursor continues after a previous page.
// A store that is not a store.Searcher (none today) answers 501.

// searchPage is the answer to a search.
type searchPage struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"hasMore"`
	// Cursor continues after this page (?cursor=); absent on an empty page.
	Cursor string `json:"cursor,omitempty"`
}

func (g *Gateway) search(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	qs := r.URL.Query()
	q := store.SearchQuery{Text: qs.Get("q"), ChatID: qs.Get("chatId")}
	switch {
	case strings.TrimSpace(q.Text) == "":
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "q (what to search for) is required"))
		return
	case len(q.Text) > store.MaxSearchBytes:
		g.fail(w, protocol.Errorf(protocol.CodeTooLarge, "q over %d bytes", store.MaxSearchBytes))
		return
	}
	limit, err := queryInt(r, "limit", store.DefaultSearch, 1, store.MaxSearch)
	if err != nil {
		g.fail(w, err)
		return
	}
	q.Limit = limit
	if v := qs.Get("cursor"); v != "" {
		if q.Before, err = parseSearchCursor(v); err != nil {
			g.fail(w, err)
			return
		}
	}
	if q.ChatID != "" {
		if err := g.chatAccess(r.Context(), q.ChatID, id.UserID); err != nil {
			g.fail(w, err)
			return
		}
	}
	searcher, ok := g.deps.Store.(store.Searcher)
	if !ok {
		g.fail(w, errNotSupported)
		return
	}
	msgs, err := searcher.Search(r.Context(), id.UserID, q)
	switch {
	case errors.Is(err, store.ErrBadSearch):
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "q has no word to search for"))
		return
	case err != nil:
		g.failStore(w, storeUnavailable(err))
		return
	}
	page := searchPage{Messages: nonNil(msgs), HasMore: len(msgs) == limit}
	if len(msgs) > 0 {
		last := msgs[len(msgs)-1]
		page.Cursor = strconv.FormatInt(last.Timestamp, 10) + "." + strconv.FormatUint(last.Seq, 10) + "." + last.ChatID
	}
	writeJSON(w, http.StatusOK, page)
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
