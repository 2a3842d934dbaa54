package search

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestParseSearchCursor(t *testing.T) {
	c, err := parseSearchCursor("1700000000000.42.chat_1")
	require.NoError(t, err)
	require.Equal(t, store.SearchCursor{Timestamp: 1700000000000, Seq: 42, ChatID: "chat_1"}, c)
	for _, bad := range []string{"", "1.2", "x.1.c", "1.0.c", "-1.1.c", "1.1.c.d", "1.1.a b", "99999999999999999999.1.c"} {
		_, err := parseSearchCursor(bad)
		require.Error(t, err, bad)
	}
}

// TestRefusalsBeforeTheStore: requests refused by their parameters, and a store
// without search, are answered without a store call.
func TestRefusalsBeforeTheStore(t *testing.T) {
	s := New(Deps{}, zap.NewNop())
	for _, tc := range []struct {
		query  string
		status int
	}{
		{"", http.StatusBadRequest},
		{"?q=%20", http.StatusBadRequest},
		{"?q=hi&limit=0", http.StatusBadRequest},
		{"?q=hi&cursor=nope", http.StatusBadRequest},
		{"?q=hi", http.StatusNotImplemented}, // no store.Searcher
	} {
		rec := httptest.NewRecorder()
		s.Search(rec, httptest.NewRequest("GET", "/api/v1/search"+tc.query, nil), auth.Identity{UserID: "alice"})
		require.Equal(t, tc.status, rec.Code, tc.query)
	}
}
