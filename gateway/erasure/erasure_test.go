package erasure

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestRefusedBeforeAnyStep: without the accounts:admin scope, or for a user ID
// that is not one, nothing is touched (Deps are empty: any step would panic).
func TestRefusedBeforeAnyStep(t *testing.T) {
	s := New(Deps{}, zap.NewNop())
	for _, tc := range []struct {
		id     auth.Identity
		target string
		status int
		code   string
	}{
		{auth.Identity{UserID: "alice"}, "bob", http.StatusForbidden, `"forbidden"`},
		{auth.Identity{UserID: "svc", Service: true}, "bob", http.StatusForbidden, `"forbidden"`},
		{auth.Identity{UserID: "svc", Service: true, AccountsAdmin: true}, "b.b", http.StatusBadRequest, `"invalid_id"`},
	} {
		r := httptest.NewRequest("DELETE", "/api/v1/admin/users/"+tc.target, nil)
		r.SetPathValue("id", tc.target)
		rec := httptest.NewRecorder()
		s.Erase(rec, r, tc.id)
		require.Equal(t, tc.status, rec.Code)
		require.Contains(t, rec.Body.String(), tc.code)
	}
}
