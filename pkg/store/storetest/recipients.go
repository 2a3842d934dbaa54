package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// recipients is RecipientStore's contract: each batch read answers what the
// single-user read answers for every user of the batch (absent meaning zero or
// none), across more users than one SQL statement binds.
func recipients(t *testing.T, s store.Store, group func(t *testing.T, s store.Store, id string, users ...string)) {
	ctx := context.Background()
	group(t, s, "r1", "alice", "bob", "carol")
	group(t, s, "r2", "alice", "carol")
	group(t, s, "r3", "bob", "dave")
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{
		msg("r1", 1, "bob", base.Add(time.Hour)), msg("r1", 2, "carol", base.Add(2*time.Hour)),
		msg("r2", 1, "carol", base.Add(3*time.Hour)), msg("r2", 2, "carol", base.Add(4*time.Hour)),
		msg("r3", 1, "dave", base.Add(5*time.Hour)),
	}))
	_, err := s.SetReadState(ctx, "r1", "alice", 2, 1)
	require.NoError(t, err)
	_, err = s.SetReadState(ctx, "r1", "carol", 0, 2)
	require.NoError(t, err)
	_, err = s.SetReadState(ctx, "r2", "alice", 1, 0)
	require.NoError(t, err)
	require.NoError(t, s.PutDevice(ctx, store.Device{UserID: "alice", DeviceID: "tablet", Platform: "ios", Provider: "apns", Token: "t-a2"}))
	require.NoError(t, s.PutDevice(ctx, store.Device{UserID: "alice", DeviceID: "phone", Platform: "android", Provider: "fcm", Token: "t-a1"}))
	require.NoError(t, s.PutDevice(ctx, store.Device{UserID: "dave", DeviceID: "web", Platform: "web", Provider: "webpush", Token: "t-d1"}))

	// The real users after 600 that have nothing stored: a batch spans several
	// statements on SQLite.
	var users []string
	for i := range 600 {
		users = append(users, fmt.Sprintf("nobody-%03d", i))
	}
	users = append(users, "alice", "bob", "carol", "dave", "erin")

	for _, chat := range []string{"r1", "r2", "r3", "none"} {
		states, err := s.ReadStates(ctx, chat, users)
		require.NoError(t, err)
		for _, u := range users {
			want, err := s.GetReadState(ctx, chat, u)
			require.NoError(t, err)
			got, ok := states[u]
			if want.Delivered == 0 && want.Read == 0 && !ok {
				continue
			}
			require.True(t, ok, "%s in %s", u, chat)
			require.Equal(t, want, got, "%s in %s", u, chat)
		}
	}
	states, err := s.ReadStates(ctx, "r1", []string{"alice"})
	require.NoError(t, err)
	require.Equal(t, store.ReadState{ChatID: "r1", UserID: "alice", Delivered: 2, Read: 1}, states["alice"])

	for _, except := range []string{"", "r1", "r2", "none"} {
		totals, err := s.UnreadTotals(ctx, users, except)
		require.NoError(t, err)
		for _, u := range users {
			want, err := s.UnreadTotal(ctx, u, except)
			require.NoError(t, err)
			require.Equal(t, want, totals[u], "%s except %q", u, except)
			if want == 0 {
				require.NotContains(t, totals, u)
			}
		}
	}
	totals, err := s.UnreadTotals(ctx, []string{"alice", "bob"}, "")
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"alice": 3, "bob": 2}, totals, "alice: 1 in r1, 2 in r2; bob: 1 in r1, 1 in r3")

	devs, err := s.UsersDevices(ctx, users)
	require.NoError(t, err)
	require.Len(t, devs, 2, "only alice and dave have devices")
	for _, u := range users {
		want, err := s.Devices(ctx, u)
		require.NoError(t, err)
		if len(want) == 0 {
			require.NotContains(t, devs, u)
			continue
		}
		require.Equal(t, want, devs[u], u)
	}
	require.Equal(t, "phone", devs["alice"][0].DeviceID, "in device order")

	empty, err := s.UsersDevices(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, empty)

	// Recipient answers what the four single reads answer, for members and not,
	// muted (until unmuted, or until a time) and not, with a read state and not, of
	// a chat that exists, one that never did and one deleted.
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "r1", UserID: "alice", Muted: true}))
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "r2", UserID: "carol", Muted: true, Until: base.Add(48 * time.Hour)}))
	require.NoError(t, s.SetMute(ctx, store.Mute{ChatID: "r3", UserID: "erin", Muted: true})) // not a member
	group(t, s, "r4", "alice", "bob")
	require.NoError(t, s.DeleteChat(ctx, "r4"))
	for _, chat := range []string{"r1", "r2", "r3", "r4", "none"} {
		for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
			got, err := s.Recipient(ctx, chat, u)
			require.NoError(t, err)
			c, err := s.GetChat(ctx, chat)
			if errors.Is(err, store.ErrNotFound) {
				require.Zero(t, got.Chat, chat)
			} else {
				require.NoError(t, err)
				require.Equal(t, c, got.Chat, chat)
			}
			_, err = s.GetMember(ctx, chat, u)
			require.Equal(t, err == nil, got.Member, "%s in %s", u, chat)
			mute, err := s.GetMute(ctx, chat, u)
			require.NoError(t, err)
			require.Equal(t, mute, got.Mute, "%s in %s", u, chat)
			rs, err := s.GetReadState(ctx, chat, u)
			require.NoError(t, err)
			require.Equal(t, rs, got.Read, "%s in %s", u, chat)
		}
	}
	r, err := s.Recipient(ctx, "r1", "alice")
	require.NoError(t, err)
	require.True(t, r.Chat.ID == "r1" && r.Member && r.Mute.Muted && r.Mute.Until.IsZero())
	require.Equal(t, uint64(1), r.Read.Read)
	r, err = s.Recipient(ctx, "r2", "carol")
	require.NoError(t, err)
	require.True(t, r.Mute.Muted)
	require.True(t, r.Mute.Until.Equal(base.Add(48*time.Hour)), "until %v", r.Mute.Until)
	r, err = s.Recipient(ctx, "r4", "alice")
	require.NoError(t, err)
	require.Zero(t, r.Chat, "a deleted chat")
}
