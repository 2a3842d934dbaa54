package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// chatAdmins is AdminStore's contract: a chat's admins, in user ID order, as every
// membership change leaves them.
func chatAdmins(t *testing.T, s store.Store, group func(t *testing.T, s store.Store, id string, users ...string)) {
	ctx := context.Background()
	admins := func(chat string, limit int) []string {
		t.Helper()
		got, err := s.ChatAdmins(ctx, chat, limit)
		require.NoError(t, err)
		return got
	}
	require.Empty(t, admins("nochat", 10))
	group(t, s, "adm", "alice", "bob", "carol") // alice is the admin
	group(t, s, "other", "bob", "alice")        // bob is, here
	require.Equal(t, []string{"alice"}, admins("adm", 10))
	require.Equal(t, []string{"bob"}, admins("other", 10))

	at := base.Add(time.Hour)
	require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "adm", UserID: "dave", Role: store.RoleAdmin, JoinedAt: at}))
	require.Equal(t, []string{"alice", "dave"}, admins("adm", 10))
	require.Equal(t, []string{"alice"}, admins("adm", 1), "at most limit, in user ID order")
	require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "adm", UserID: "alice", Role: store.RoleMember, JoinedAt: base}))
	require.Equal(t, []string{"dave"}, admins("adm", 10), "a role change to member")
	require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "adm", UserID: "bob", Role: store.RoleAdmin, JoinedAt: base}))
	require.Equal(t, []string{"bob", "dave"}, admins("adm", 10), "a role change to admin")
	require.NoError(t, s.RemoveMember(ctx, "adm", "dave"))
	require.Equal(t, []string{"bob"}, admins("adm", 10))

	require.NoError(t, s.AddMembers(ctx, "adm", []store.Member{
		{ChatID: "adm", UserID: "zed", Role: store.RoleAdmin, JoinedAt: at},
		{ChatID: "adm", UserID: "yan", Role: store.RoleAdmin, JoinedAt: at},
		{ChatID: "adm", UserID: "xia", Role: store.RoleMember, JoinedAt: at},
	}))
	require.Equal(t, []string{"bob", "yan", "zed"}, admins("adm", 10))
	require.NoError(t, s.RemoveMembers(ctx, "adm", []string{"yan", "bob", "xia"}))
	require.Equal(t, []string{"zed"}, admins("adm", 10))
	require.Equal(t, []string{"bob"}, admins("other", 10), "other chats unchanged")
}
