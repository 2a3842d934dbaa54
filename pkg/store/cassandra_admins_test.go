package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// Without a queryable chats_role index (being built after migration 7 on a keyspace
// with chats, or here dropped), ChatAdmins answers the same from the chat's
// partition.
func TestCassandraChatAdminsWithoutIndex(t *testing.T) {
	s, cfg := openCassandra(t, time.Hour)
	ctx := context.Background()
	ms := []store.Member{
		{ChatID: "c", UserID: "alice", Role: store.RoleAdmin, JoinedAt: time.Unix(1, 0)},
		{ChatID: "c", UserID: "bob", Role: store.RoleMember, JoinedAt: time.Unix(1, 0)},
		{ChatID: "c", UserID: "carol", Role: store.RoleAdmin, JoinedAt: time.Unix(1, 0)},
		{ChatID: "c", UserID: "dave", Role: store.RoleAdmin, JoinedAt: time.Unix(1, 0)},
	}
	_, created, err := s.CreateChat(ctx, store.Chat{ID: "c", Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: time.Unix(1, 0)}, ms)
	require.NoError(t, err)
	require.True(t, created)
	withIndex, err := s.ChatAdmins(ctx, "c", 2)
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "carol"}, withIndex)

	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Port = cfg.Port
	cl.Timeout, cl.ConnectTimeout = 60*time.Second, 30*time.Second
	sess, err := cl.CreateSession()
	require.NoError(t, err)
	defer sess.Close()
	require.NoError(t, sess.Query("DROP INDEX IF EXISTS "+cfg.Keyspace+".chats_role").Exec())

	without, err := s.ChatAdmins(ctx, "c", 2)
	require.NoError(t, err)
	require.Equal(t, withIndex, without)
	all, err := s.ChatAdmins(ctx, "c", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "carol", "dave"}, all)
}
