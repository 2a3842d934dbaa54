package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// memberName is the i-th user of the bulk tests: names sort as their numbers do.
func memberName(i int) string { return fmt.Sprintf("u%06d", i) }

// bulkMembers is the bulk and paged membership contract (store.MemberStore).
func bulkMembers(t *testing.T, s store.Store) {
	ctx := context.Background()
	const chat, total = "big", 1200
	_, created, err := s.CreateChat(ctx, store.Chat{ID: chat, Kind: store.KindGroup, Name: "big", CreatedBy: "admin", CreatedAt: base},
		[]store.Member{{ChatID: chat, UserID: "admin", Role: store.RoleAdmin, JoinedAt: base}})
	require.NoError(t, err)
	require.True(t, created)

	// Adds in bulk calls of at most MaxBulkMembers; the first user again with
	// another role and join time is left as it was.
	var all []store.Member
	for i := range total {
		all = append(all, store.Member{ChatID: chat, UserID: memberName(i), Role: store.RoleMember, JoinedAt: base.Add(time.Hour)})
	}
	for lo := 0; lo < total; lo += store.MaxBulkMembers {
		require.NoError(t, s.AddMembers(ctx, chat, all[lo:min(lo+store.MaxBulkMembers, total)]))
	}
	require.NoError(t, s.AddMembers(ctx, chat, []store.Member{{ChatID: chat, UserID: memberName(0), Role: store.RoleAdmin, JoinedAt: base.Add(2 * time.Hour)}}))
	mb, err := s.GetMember(ctx, chat, memberName(0))
	require.NoError(t, err)
	require.Equal(t, store.RoleMember, mb.Role, "a bulk add never changes a role")
	require.True(t, mb.JoinedAt.Equal(base.Add(time.Hour)), "nor a join time")
	n, err := s.MemberCount(ctx, chat)
	require.NoError(t, err)
	require.Equal(t, total+1, n)

	// Pages: every member once, in user ID order ("admin" first).
	var seen []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		page, err := s.MembersPage(ctx, chat, after, 500)
		require.NoError(t, err)
		for _, m := range page {
			require.Equal(t, chat, m.ChatID)
			seen = append(seen, m.UserID)
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].UserID
	}
	require.Len(t, seen, total+1)
	require.Equal(t, "admin", seen[0])
	for i := 1; i < len(seen); i++ {
		require.Equal(t, memberName(i-1), seen[i])
	}
	page, err := s.MembersPage(ctx, chat, "", 0)
	require.NoError(t, err)
	require.Len(t, page, min(store.DefaultMemberPage, total+1), "limit 0 is the default page")
	page, err = s.MembersPage(ctx, "no-such-chat", "", 10)
	require.NoError(t, err)
	require.Empty(t, page)

	// Among: only members, ordered by user ID.
	among, err := s.MembersAmong(ctx, chat, []string{memberName(7), "stranger", memberName(3), "admin"})
	require.NoError(t, err)
	require.Equal(t, []string{"admin", memberName(3), memberName(7)}, userIDs(among))
	require.Equal(t, store.RoleAdmin, among[0].Role)

	// Removal in bulk; non-members named are ignored; removing again is a no-op.
	var gone []string
	for i := 0; i < total; i += 2 {
		gone = append(gone, memberName(i))
	}
	gone = append(gone, "stranger")
	for lo := 0; lo < len(gone); lo += store.MaxBulkMembers {
		chunk := gone[lo:min(lo+store.MaxBulkMembers, len(gone))]
		require.NoError(t, s.RemoveMembers(ctx, chat, chunk))
		require.NoError(t, s.RemoveMembers(ctx, chat, chunk))
	}
	n, err = s.MemberCount(ctx, chat)
	require.NoError(t, err)
	require.Equal(t, total/2+1, n)
	_, err = s.GetMember(ctx, chat, memberName(0))
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetMember(ctx, chat, memberName(1))
	require.NoError(t, err)
	ms, err := s.Members(ctx, chat)
	require.NoError(t, err)
	require.Len(t, ms, total/2+1)

	// The chat shows in an added member's list and is gone from a removed one's.
	list, err := s.UserChats(ctx, memberName(1), 10, 0)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "big", list[0].Name)
	list, err = s.UserChats(ctx, memberName(0), 10, 0)
	require.NoError(t, err)
	require.Empty(t, list)

	// Mutes of the chat, active and expired, in one read.
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: chat, UserID: memberName(5), Muted: true}))
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: chat, UserID: memberName(3), Muted: true, Until: base}))
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "other", UserID: memberName(1), Muted: true}))
	mutes, err := s.ChatMutes(ctx, chat)
	require.NoError(t, err)
	require.Len(t, mutes, 2)
	require.Equal(t, memberName(3), mutes[0].UserID)
	require.True(t, mutes[0].Until.Equal(base))
	require.Equal(t, memberName(5), mutes[1].UserID)
	require.True(t, mutes[1].Muted)
	require.True(t, mutes[1].Until.IsZero())
	count, err := s.MemberCount(ctx, "no-such-chat")
	require.NoError(t, err)
	require.Zero(t, count)
}

func userIDs(ms []store.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}
