package presence

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/stretchr/testify/require"
)

func TestSettle(t *testing.T) {
	const now = int64(1_000_000)
	gw := func(n int) map[string]presencekv.GatewayDevices {
		return map[string]presencekv.GatewayDevices{"g": {N: n, Rev: 1}}
	}
	for _, tc := range []struct {
		name      string
		grace     time.Duration
		in        presencekv.User
		immediate bool
		lastHeard int64
		want      presencekv.User
		arm       time.Duration
	}{
		{name: "first device", grace: time.Second, in: presencekv.User{Gateways: gw(1)},
			want: presencekv.User{Gateways: gw(1), Shown: "online", ShownDevices: 1}},
		{name: "reconnect cancels the grace period", grace: time.Second,
			in:   presencekv.User{Gateways: gw(2), Shown: "online", ShownDevices: 1, Pending: now - 10},
			want: presencekv.User{Gateways: gw(2), Shown: "online", ShownDevices: 2}},
		{name: "away", grace: time.Second, in: presencekv.User{Gateways: gw(1), Set: "away"},
			want: presencekv.User{Gateways: gw(1), Set: "away", Shown: "away", ShownDevices: 1}},
		{name: "going invisible is last seen now", grace: time.Second,
			in:   presencekv.User{Gateways: gw(1), Set: "invisible", Shown: "online", ShownDevices: 1},
			want: presencekv.User{Gateways: gw(1), Set: "invisible", Shown: "offline", LastSeen: now}},
		{name: "last device starts the grace period", grace: 3 * time.Second,
			in:   presencekv.User{Gateways: gw(0), Shown: "online", ShownDevices: 1},
			want: presencekv.User{Gateways: gw(0), Shown: "online", ShownDevices: 1, Pending: now}, arm: 3 * time.Second},
		{name: "grace period already running", grace: 3 * time.Second,
			in:   presencekv.User{Gateways: gw(0), Shown: "online", ShownDevices: 1, Pending: now - 5},
			want: presencekv.User{Gateways: gw(0), Shown: "online", ShownDevices: 1, Pending: now - 5}},
		{name: "no grace: offline at once", grace: 0,
			in:   presencekv.User{Gateways: gw(0), Shown: "away", ShownDevices: 1},
			want: presencekv.User{Gateways: gw(0), Shown: "offline", LastSeen: now}},
		{name: "dead gateway: offline at once, last heard", grace: time.Second, immediate: true, lastHeard: now - 2000,
			in:   presencekv.User{Gateways: gw(0), Shown: "online", ShownDevices: 3},
			want: presencekv.User{Gateways: gw(0), Shown: "offline", LastSeen: now - 2000}},
		{name: "dead gateway during a grace period: last seen when it began", grace: time.Second, immediate: true, lastHeard: now - 2000,
			in:   presencekv.User{Gateways: gw(0), Shown: "online", ShownDevices: 1, Pending: now - 3000},
			want: presencekv.User{Gateways: gw(0), Shown: "offline", LastSeen: now - 3000}},
		{name: "already offline", grace: time.Second, in: presencekv.User{Gateways: gw(0), Shown: "offline", LastSeen: 5},
			want: presencekv.User{Gateways: gw(0), Shown: "offline", LastSeen: 5}},
		{name: "invisible and gone: stays offline, last seen kept", grace: time.Second,
			in:   presencekv.User{Gateways: gw(0), Set: "invisible", Shown: "offline", LastSeen: 7},
			want: presencekv.User{Gateways: gw(0), Set: "invisible", Shown: "offline", LastSeen: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Presence{cfg: Config{Grace: tc.grace}}
			u := tc.in
			arm := p.settle(&u, now, tc.immediate, tc.lastHeard)
			require.Equal(t, tc.want, u)
			require.Equal(t, tc.arm, arm)
		})
	}
}

func TestWholeSeconds(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, 300 * time.Millisecond: time.Second, time.Second: time.Second,
		1500 * time.Millisecond: 2 * time.Second, 30 * time.Second: 30 * time.Second,
	} {
		require.Equal(t, want, wholeSeconds(in), "%s", in)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Expiry: 30 * time.Second, Grace: 5 * time.Second, Workers: 8}, true},
		{Config{Expiry: time.Second, Grace: 0, Workers: 1}, true},
		{Config{Expiry: 500 * time.Millisecond, Grace: 0, Workers: 1}, false},
		{Config{Expiry: time.Second, Grace: 500 * time.Millisecond, Workers: 1}, false},
		{Config{Expiry: time.Second, Grace: -time.Second, Workers: 1}, false},
		{Config{Expiry: time.Second, Workers: 0}, false},
	} {
		if tc.ok {
			require.NoError(t, tc.cfg.Validate(), "%+v", tc.cfg)
		} else {
			require.Error(t, tc.cfg.Validate(), "%+v", tc.cfg)
		}
	}
}
