package presencekv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestViewOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    *User
		want View
	}{
		{"never seen", nil, View{UserID: "u", Status: StatusOffline}},
		{"online", &User{Shown: StatusOnline, ShownDevices: 2, LastSeen: 5}, View{UserID: "u", Status: StatusOnline, Devices: 2}},
		{"away", &User{Shown: StatusAway, ShownDevices: 1, Set: StatusAway}, View{UserID: "u", Status: StatusAway, Devices: 1}},
		{"offline with last seen", &User{Shown: StatusOffline, LastSeen: 42}, View{UserID: "u", Status: StatusOffline, LastSeen: 42}},
		{"invisible shows offline, no devices", &User{Set: StatusInvisible, Shown: StatusOffline, LastSeen: 7,
			Gateways: map[string]GatewayDevices{"g": {N: 3}}}, View{UserID: "u", Status: StatusOffline, LastSeen: 7}},
		{"in the grace period still online", &User{Shown: StatusOnline, ShownDevices: 1, Pending: 9,
			Gateways: map[string]GatewayDevices{"g": {N: 0}}}, View{UserID: "u", Status: StatusOnline, Devices: 1}},
		{"entry without a shown status", &User{Gateways: map[string]GatewayDevices{"g": {N: 1}}}, View{UserID: "u", Status: StatusOffline}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ViewOf("u", tc.u))
		})
	}
}

func TestDevicesSumsGateways(t *testing.T) {
	u := User{Gateways: map[string]GatewayDevices{"a": {N: 2}, "b": {N: 0}, "c": {N: 1}}}
	require.Equal(t, 3, u.Devices())
	require.Equal(t, 0, (&User{}).Devices())
}

func TestKeys(t *testing.T) {
	require.Equal(t, "c.gw1.bob", ConnKey("gw1", "bob"))
	require.Equal(t, "c.gw1.*", ConnFilter("gw1"))
	require.Equal(t, "$KV.presence.u.bob", Subject(UserKey("bob")))
	require.Equal(t, "gw.gw1", LeaseKey("gw1"))
	require.Equal(t, "p.bob", GraceKey("bob"))
}
