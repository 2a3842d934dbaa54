package people

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestRefusalsBeforeTheStore: requests the handlers refuse on the caller and the
// path alone get their documented code and touch nothing (Deps are empty: a store
// call would panic).
func TestRefusalsBeforeTheStore(t *testing.T) {
	s := New(Config{}, Deps{}, zap.NewNop())
	user := auth.Identity{UserID: "alice"}
	service := auth.Identity{UserID: "svc", Service: true}
	for _, tc := range []struct {
		name   string
		h      httpx.AuthedHandler
		path   map[string]string
		id     auth.Identity
		status int
		code   protocol.Code
	}{
		{"service has no profile", s.OwnProfile, nil, service, http.StatusForbidden, protocol.CodeForbidden},
		{"service puts no profile", s.PutProfile, nil, service, http.StatusForbidden, protocol.CodeForbidden},
		{"bad user ID", s.UserProfile, map[string]string{"id": "a.b"}, user, http.StatusBadRequest, protocol.CodeInvalidID},
		{"service blocks nobody", s.Block, map[string]string{"userId": "bob"}, service, http.StatusForbidden, protocol.CodeForbidden},
		{"no self-block", s.Block, map[string]string{"userId": "alice"}, user, http.StatusBadRequest, protocol.CodeBadRequest},
		{"bad block target", s.Unblock, map[string]string{"userId": "*"}, user, http.StatusBadRequest, protocol.CodeInvalidID},
		{"service lists no blocks", s.Blocks, nil, service, http.StatusForbidden, protocol.CodeForbidden},
		{"service has no devices", s.Devices, nil, service, http.StatusForbidden, protocol.CodeForbidden},
		{"service registers no device", s.PutDevice, nil, service, http.StatusForbidden, protocol.CodeForbidden},
		{"service has no invitations", s.Invitations, nil, service, http.StatusForbidden, protocol.CodeForbidden},
		{"bad invitation chat", s.AcceptInvitation, map[string]string{"chatId": "a.b"}, user, http.StatusBadRequest, protocol.CodeInvalidID},
		{"service declines nothing", s.DeclineInvitation, map[string]string{"chatId": "c1"}, service, http.StatusForbidden, protocol.CodeForbidden},
		{"bad profiles page", s.ChatProfiles, map[string]string{"id": "c1"}, user, http.StatusBadRequest, protocol.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/?limit=0", nil)
			for k, v := range tc.path {
				r.SetPathValue(k, v)
			}
			rec := httptest.NewRecorder()
			tc.h(rec, r, tc.id)
			require.Equal(t, tc.status, rec.Code)
			var b httpx.ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b))
			require.Equal(t, tc.code, b.Error.Code)
		})
	}
}
