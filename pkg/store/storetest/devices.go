package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// devices is the push device registry's contract.
func devices(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := func(user string) []string {
		t.Helper()
		ds, err := s.Devices(ctx, user)
		require.NoError(t, err)
		var out []string
		for _, d := range ds {
			out = append(out, d.DeviceID+"="+d.Token)
		}
		return out
	}
	dev := func(user, id, token string) store.Device {
		return store.Device{UserID: user, DeviceID: id, Platform: "ios", Provider: "apns", Token: token}
	}
	require.Empty(t, ids("alice"))
	require.NoError(t, s.PutDevice(ctx, dev("alice", "phone", "tok-1")))
	require.NoError(t, s.PutDevice(ctx, dev("alice", "tablet", "tok-2")))
	require.NoError(t, s.PutDevice(ctx, dev("alice", "phone", "tok-1")), "registering again is idempotent")
	require.Equal(t, []string{"phone=tok-1", "tablet=tok-2"}, ids("alice"))
	ds, err := s.Devices(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, "ios", ds[0].Platform)
	require.Equal(t, "apns", ds[0].Provider)
	require.False(t, ds[0].UpdatedAt.IsZero())

	// A new token for a device replaces the old one.
	require.NoError(t, s.PutDevice(ctx, dev("alice", "phone", "tok-3")))
	require.Equal(t, []string{"phone=tok-3", "tablet=tok-2"}, ids("alice"))

	// A token belongs to one device: registered by bob (the phone changed hands),
	// it leaves alice's tablet, so alice's notifications stop going to bob.
	require.NoError(t, s.PutDevice(ctx, dev("bob", "myphone", "tok-2")))
	require.Equal(t, []string{"phone=tok-3"}, ids("alice"))
	require.Equal(t, []string{"myphone=tok-2"}, ids("bob"))
	// The old token of alice's phone is free again.
	require.NoError(t, s.PutDevice(ctx, dev("carol", "c1", "tok-1")))
	require.Equal(t, []string{"phone=tok-3"}, ids("alice"))

	// Removal by ID and by token (a push gateway reported it invalid).
	gone, err := s.DeleteDevice(ctx, "alice", "phone")
	require.NoError(t, err)
	require.True(t, gone)
	gone, err = s.DeleteDevice(ctx, "alice", "phone")
	require.NoError(t, err)
	require.False(t, gone)
	gone, err = s.DeleteDeviceToken(ctx, "bob", "apns", "tok-2")
	require.NoError(t, err)
	require.True(t, gone)
	gone, err = s.DeleteDeviceToken(ctx, "carol", "fcm", "tok-1")
	require.NoError(t, err)
	require.False(t, gone, "the provider is part of the token's identity")
	require.Empty(t, ids("alice"))
	require.Empty(t, ids("bob"))
	require.NoError(t, s.PutDevice(ctx, dev("dave", "d1", "tok-2")), "a removed token can be registered again")

	// Limits and validation.
	for i := range store.MaxDevicesPerUser {
		require.NoError(t, s.PutDevice(ctx, dev("erin", fmt.Sprintf("e%d", i), fmt.Sprintf("etok-%d", i))))
	}
	require.ErrorIs(t, s.PutDevice(ctx, dev("erin", "one-more", "etok-x")), store.ErrTooManyDevices)
	require.NoError(t, s.PutDevice(ctx, dev("erin", "e0", "etok-new")), "replacing a device is not a new one")
	for _, bad := range []store.Device{
		dev("alice", "", "t"), dev("alice", "a.b", "t"), dev("", "p", "t"), dev("alice", "p", ""),
		dev("alice", "p", strings.Repeat("x", store.MaxDeviceToken+1)), dev("alice", "p", "line\nbreak"),
		{UserID: "alice", DeviceID: "p", Platform: "toaster", Provider: "apns", Token: "t"},
		{UserID: "alice", DeviceID: "p", Platform: "ios", Provider: "pigeon", Token: "t"},
	} {
		require.ErrorIs(t, s.PutDevice(ctx, bad), store.ErrBadDevice, "%+v", bad)
	}
	require.Empty(t, ids("alice"), "a refused device is not stored")
}
