package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// The last-admin rule, read from the chat's admins (store.AdminStore) rather than
// its members: a chat that keeps members keeps an admin, whether admins leave, are
// demoted or are removed in bulk by a service; a removal that leaves nobody is
// allowed. A refused change changes nothing.
func TestLastAdminRule(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	ctx := context.Background()
	svc := n.ScopedServiceToken(t, "importer", protocol.ScopeChatsAdmin)
	chat := n.CreateChat(t, "owner", "group", "g") // owner is the admin
	path := "/api/v1/chats/" + chat + "/members"
	status, body := n.Do(t, "POST", path, svc, map[string]any{"userIds": []string{"a1", "a2"}, "role": store.RoleAdmin})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	status, body = n.Do(t, "POST", path, svc, map[string]any{"userIds": []string{"m1", "m2"}})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	admins := func() []string {
		t.Helper()
		got, err := n.Store.ChatAdmins(ctx, chat, 10)
		require.NoError(t, err)
		return got
	}
	require.Equal(t, []string{"a1", "a2", "owner"}, admins())

	refused := func(status int, body []byte) {
		t.Helper()
		require.Equal(t, http.StatusConflict, status, "%s", body)
		var e errorAnswer
		require.NoError(t, jsonUnmarshal(body, &e))
		require.Equal(t, protocol.CodeConflict, e.Error.Code)
		count, err := n.Store.MemberCount(ctx, chat)
		require.NoError(t, err)
		require.Equal(t, 5, count, "a refused change changes nothing")
		require.Equal(t, []string{"a1", "a2", "owner"}, admins())
	}
	// Every admin removed while m1 and m2 stay; with a non-member named too.
	refused(n.Do(t, "DELETE", path, svc, map[string]any{"userIds": []string{"owner", "a1", "a2", "nobody"}}))

	// Two of three admins: one stays.
	status, body = n.Do(t, "DELETE", path, svc, map[string]any{"userIds": []string{"owner", "a1"}})
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, []string{"a2"}, admins())
	// The only admin may neither leave nor step down while members stay.
	status, body = n.Do(t, "POST", "/api/v1/chats/"+chat+"/leave", n.Token(t, "a2"), nil)
	require.Equal(t, http.StatusConflict, status, "%s", body)
	status, body = n.Do(t, "POST", path, n.Token(t, "a2"), map[string]any{"userId": "a2", "role": store.RoleMember})
	require.Equal(t, http.StatusConflict, status, "%s", body)
	// Once another member is admin, it may.
	status, body = n.Do(t, "POST", path, n.Token(t, "a2"), map[string]any{"userId": "m1", "role": store.RoleAdmin})
	require.Equal(t, http.StatusOK, status, "%s", body)
	status, body = n.Do(t, "POST", "/api/v1/chats/"+chat+"/leave", n.Token(t, "a2"), nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, []string{"m1"}, admins())
	// Removing everyone leaves no member without an admin.
	status, body = n.Do(t, "DELETE", path, svc, map[string]any{"userIds": []string{"m1", "m2"}})
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Empty(t, admins())
}
