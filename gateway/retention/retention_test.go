package retention

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestRefusedBeforeAnyChange: bodies and IDs that are refused on their own never
// reach a rights check or the store (Deps.Chats and Store are nil: a call would
// panic).
func TestRefusedBeforeAnyChange(t *testing.T) {
	s := New(Deps{Body: httpx.Body{MaxBytes: 1024}}, zap.NewNop())
	for _, tc := range []struct {
		name string
		h    httpx.AuthedHandler
		body string
		chat string
		code string
	}{
		{"ttl missing", s.PutTTL, `{}`, "c1", `"bad_request"`},
		{"ttl too short", s.PutTTL, `{"messageTtl":1}`, "c1", `"bad_request"`},
		{"ttl negative", s.PutTTL, `{"messageTtl":-5}`, "c1", `"bad_request"`},
		{"unknown field", s.PutTTL, `{"messageTtl":0,"x":1}`, "c1", `"bad_request"`},
		{"clear, bad chat ID", s.Clear, ``, "a.b", `"invalid_id"`},
		{"clear, bad body", s.Clear, `{"seq":"x"}`, "c1", `"bad_request"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/", strings.NewReader(tc.body))
			r.SetPathValue("id", tc.chat)
			rec := httptest.NewRecorder()
			tc.h(rec, r, auth.Identity{UserID: "alice"})
			require.Equal(t, http.StatusBadRequest, rec.Code)
			require.Contains(t, rec.Body.String(), tc.code)
		})
	}
}
