package memberstate

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestMuteView(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, muteBody{ChatID: "c", Muted: false}, muteView(store.Mute{ChatID: "c"}, now))
	require.Equal(t, muteBody{ChatID: "c", Muted: true}, muteView(store.Mute{ChatID: "c", Muted: true}, now))
	until := now.Add(time.Hour)
	require.Equal(t, muteBody{ChatID: "c", Muted: true, Until: &until}, muteView(store.Mute{ChatID: "c", Muted: true, Until: until}, now))
	// A timed mute that has ended shows as not muted, without its end.
	require.Equal(t, muteBody{ChatID: "c", Muted: false}, muteView(store.Mute{ChatID: "c", Muted: true, Until: now.Add(-time.Second)}, now))
}

// TestBadChatIDRefusedFirst: a chat path that is not an ID is refused before any
// membership or store call (Deps are empty: such a call would panic).
func TestBadChatIDRefusedFirst(t *testing.T) {
	s := New(Config{ReceiptsMaxMembers: 10}, Deps{}, zap.NewNop())
	for _, h := range []func(http.ResponseWriter, *http.Request, auth.Identity){s.Mute, s.PutMute} {
		r := httptest.NewRequest("PUT", "/", strings.NewReader(`{"muted":true}`))
		r.SetPathValue("id", "a.b")
		rec := httptest.NewRecorder()
		h(rec, r, auth.Identity{UserID: "alice"})
		require.Equal(t, http.StatusBadRequest, rec.Code)
		require.Contains(t, rec.Body.String(), `"invalid_id"`)
	}
}
