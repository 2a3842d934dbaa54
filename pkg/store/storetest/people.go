package storetest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// profiles is the profile contract: validation, whole replacement, batch reads.
func profiles(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.Profiles(ctx, []string{"alice", "bob"})
	require.NoError(t, err)
	require.Empty(t, got, "nobody set a profile yet")

	at := base.Add(time.Hour)
	require.NoError(t, s.PutProfile(ctx, store.Profile{UserID: "alice", DisplayName: "Alice Ünïcødé 🐈", Avatar: "m1", UpdatedAt: at}))
	require.NoError(t, s.PutProfile(ctx, store.Profile{UserID: "bob", DisplayName: "Bob", GroupAdds: store.GroupAddsEveryone, UpdatedAt: at}))
	got, err = s.Profiles(ctx, []string{"alice", "bob", "carol", "alice"})
	require.NoError(t, err)
	sort.Slice(got, func(i, j int) bool { return got[i].UserID < got[j].UserID })
	require.Equal(t, []store.Profile{
		{UserID: "alice", DisplayName: "Alice Ünïcødé 🐈", Avatar: "m1", UpdatedAt: at},
		{UserID: "bob", DisplayName: "Bob", GroupAdds: store.GroupAddsEveryone, UpdatedAt: at},
	}, got)

	// A put replaces the whole profile.
	require.NoError(t, s.PutProfile(ctx, store.Profile{UserID: "alice", DisplayName: "A", UpdatedAt: at.Add(time.Minute)}))
	got, err = s.Profiles(ctx, []string{"alice"})
	require.NoError(t, err)
	require.Equal(t, []store.Profile{{UserID: "alice", DisplayName: "A", UpdatedAt: at.Add(time.Minute)}}, got)

	// Many users at once (more than one query's worth).
	var many []string
	for i := range 250 {
		many = append(many, fmt.Sprintf("u%d", i))
	}
	for _, u := range many[:3] {
		require.NoError(t, s.PutProfile(ctx, store.Profile{UserID: u, DisplayName: u}))
	}
	got, err = s.Profiles(ctx, append(many, "bob"))
	require.NoError(t, err)
	require.Len(t, got, 4)
	_, err = s.Profiles(ctx, make([]string, store.MaxProfileBatch+1))
	require.Error(t, err)

	for _, bad := range []store.Profile{
		{UserID: ""}, {UserID: "a.b"},
		{UserID: "alice", DisplayName: strings.Repeat("x", store.MaxDisplayName+1)},
		{UserID: "alice", DisplayName: strings.Repeat("é", store.MaxDisplayNameBytes)},
		{UserID: "alice", DisplayName: "line\nbreak"},
		{UserID: "alice", DisplayName: "bidi\u202Eevil"},
		{UserID: "alice", DisplayName: "zero\u200Bwidth"},
		{UserID: "alice", DisplayName: " padded "},
		{UserID: "alice", DisplayName: "bad\xffutf8"},
		{UserID: "alice", Avatar: "../etc"},
		{UserID: "alice", GroupAdds: "nobody"},
	} {
		require.ErrorIs(t, s.PutProfile(ctx, bad), store.ErrBadProfile, "%+v", bad)
	}
	got, err = s.Profiles(ctx, []string{"alice"})
	require.NoError(t, err)
	require.Equal(t, "A", got[0].DisplayName, "a refused profile changes nothing")
}

// blocks is the block list contract.
func blocks(t *testing.T, s store.Store) {
	ctx := context.Background()
	list := func(u string) []string {
		t.Helper()
		bs, err := s.Blocks(ctx, u)
		require.NoError(t, err)
		var out []string
		for _, b := range bs {
			out = append(out, b.Blocked)
		}
		return out
	}
	blockers := func(u string) []string {
		t.Helper()
		out, err := s.Blockers(ctx, u)
		require.NoError(t, err)
		sort.Strings(out)
		return out
	}
	require.Empty(t, list("alice"))
	require.Empty(t, blockers("mallory"))
	at := base.Add(time.Hour)
	created, err := s.Block(ctx, store.Block{Blocker: "alice", Blocked: "mallory", CreatedAt: at})
	require.NoError(t, err)
	require.True(t, created)
	created, err = s.Block(ctx, store.Block{Blocker: "alice", Blocked: "mallory", CreatedAt: at.Add(time.Hour)})
	require.NoError(t, err)
	require.False(t, created, "blocking again is not a new block")
	_, err = s.Block(ctx, store.Block{Blocker: "alice", Blocked: "eve"})
	require.NoError(t, err)
	_, err = s.Block(ctx, store.Block{Blocker: "bob", Blocked: "mallory"})
	require.NoError(t, err)
	require.Equal(t, []string{"eve", "mallory"}, list("alice"))
	bs, err := s.Blocks(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, at, bs[1].CreatedAt, "the first block's time stays")
	require.Equal(t, []string{"alice", "bob"}, blockers("mallory"))
	require.Empty(t, list("mallory"), "blocking is one way")

	gone, err := s.Unblock(ctx, "alice", "mallory")
	require.NoError(t, err)
	require.True(t, gone)
	gone, err = s.Unblock(ctx, "alice", "mallory")
	require.NoError(t, err)
	require.False(t, gone)
	require.Equal(t, []string{"eve"}, list("alice"))
	require.Equal(t, []string{"bob"}, blockers("mallory"))
}

// lower sets *limit to n for the rest of t.
func lower(t *testing.T, limit *int, n int) {
	old := *limit
	*limit = n
	t.Cleanup(func() { *limit = old })
}

// blockLimit is MaxBlocks (lowered: the limit is counted, not its size).
func blockLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	lower(t, &store.MaxBlocks, 30)
	for i := range store.MaxBlocks {
		_, err := s.Block(ctx, store.Block{Blocker: "zed", Blocked: fmt.Sprintf("u%d", i)})
		require.NoError(t, err)
	}
	_, err := s.Block(ctx, store.Block{Blocker: "zed", Blocked: "one-more"})
	require.ErrorIs(t, err, store.ErrTooManyBlocks)
	created, err := s.Block(ctx, store.Block{Blocker: "zed", Blocked: "u0"})
	require.NoError(t, err, "blocking again is not a new block")
	require.False(t, created)
}

// sharesChat is the shared-chat relation the consent rule uses.
func sharesChat(t *testing.T, s store.Store, group func(*testing.T, store.Store, string, ...string)) {
	ctx := context.Background()
	group(t, s, "g1", "alice", "bob", "carol")
	group(t, s, "g2", "dave", "alice")
	group(t, s, "g3", "erin", "frank")
	got, err := s.SharesChat(ctx, "alice", []string{"bob", "dave", "erin", "nobody", "bob", "alice"})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"bob": true, "dave": true, "alice": true}, got)
	got, err = s.SharesChat(ctx, "nobody", []string{"alice"})
	require.NoError(t, err)
	require.Empty(t, got)
	// Many others: the backend may take another path; the answer is the same.
	var many []string
	for i := range 700 {
		many = append(many, fmt.Sprintf("x%d", i))
	}
	many = append(many, "carol", "frank")
	got, err = s.SharesChat(ctx, "alice", many)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"carol": true}, got)
	// A member who left no longer counts.
	require.NoError(t, s.RemoveMember(ctx, "g2", "dave"))
	got, err = s.SharesChat(ctx, "alice", []string{"dave"})
	require.NoError(t, err)
	require.Empty(t, got)
}

// invitations is the pending invitation contract.
func invitations(t *testing.T, s store.Store) {
	ctx := context.Background()
	lower(t, &store.MaxInvitations, 20)
	list := func(u string) []string {
		t.Helper()
		is, err := s.Invitations(ctx, u)
		require.NoError(t, err)
		var out []string
		for _, i := range is {
			out = append(out, i.ChatID+"<"+i.InvitedBy)
		}
		return out
	}
	require.Empty(t, list("bob"))
	_, err := s.GetInvitation(ctx, "bob", "g1")
	require.ErrorIs(t, err, store.ErrNotFound)
	at := base.Add(time.Hour)
	created, err := s.PutInvitation(ctx, store.Invitation{ChatID: "g1", UserID: "bob", InvitedBy: "alice", Role: store.RoleMember, CreatedAt: at})
	require.NoError(t, err)
	require.True(t, created)
	_, err = s.PutInvitation(ctx, store.Invitation{ChatID: "g2", UserID: "bob", InvitedBy: "carol", Role: store.RoleAdmin, CreatedAt: at.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []string{"g2<carol", "g1<alice"}, list("bob"), "newest first")
	created, err = s.PutInvitation(ctx, store.Invitation{ChatID: "g1", UserID: "bob", InvitedBy: "dave", Role: store.RoleMember, CreatedAt: at.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.False(t, created, "a second invitation to one chat replaces the first")
	inv, err := s.GetInvitation(ctx, "bob", "g1")
	require.NoError(t, err)
	require.Equal(t, store.Invitation{ChatID: "g1", UserID: "bob", InvitedBy: "dave", Role: store.RoleMember, CreatedAt: at.Add(2 * time.Minute)}, inv)
	inv, err = s.GetInvitation(ctx, "bob", "g2")
	require.NoError(t, err)
	require.Equal(t, store.RoleAdmin, inv.Role)
	require.Empty(t, list("alice"))

	gone, err := s.DeleteInvitation(ctx, "bob", "g1")
	require.NoError(t, err)
	require.True(t, gone)
	gone, err = s.DeleteInvitation(ctx, "bob", "g1")
	require.NoError(t, err)
	require.False(t, gone)
	require.Equal(t, []string{"g2<carol"}, list("bob"))

	for i := range store.MaxInvitations - 1 {
		_, err := s.PutInvitation(ctx, store.Invitation{ChatID: fmt.Sprintf("c%d", i), UserID: "bob", InvitedBy: "spam", Role: store.RoleMember})
		require.NoError(t, err)
	}
	_, err = s.PutInvitation(ctx, store.Invitation{ChatID: "one-more", UserID: "bob", InvitedBy: "spam", Role: store.RoleMember})
	require.ErrorIs(t, err, store.ErrTooManyInvitations)
	_, err = s.PutInvitation(ctx, store.Invitation{ChatID: "g2", UserID: "bob", InvitedBy: "spam", Role: store.RoleMember})
	require.NoError(t, err, "replacing an invitation is not a new one")
}
