package app

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTargets(t *testing.T) {
	all, err := Targets([]string{All})
	require.NoError(t, err)
	for _, tc := range []struct {
		sel  []string
		want []string
		err  bool
	}{
		{sel: []string{"all"}, want: all},
		{sel: []string{"gateway"}, want: []string{"gateway"}},
		{sel: []string{"sequencer", "gateway", "sequencer"}, want: []string{"gateway", "sequencer"}},
		{sel: []string{"persister", "all"}, want: all},
		{sel: []string{"gatway"}, err: true},
		{sel: nil, err: true},
	} {
		got, err := Targets(tc.sel)
		if tc.err {
			require.Error(t, err, "%v", tc.sel)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v", tc.sel)
	}
	require.Contains(t, all, RoleGateway)
	require.Contains(t, all, RoleSequencer)
	require.Contains(t, all, RolePersister)
	require.Contains(t, all, RolePresence)
	require.Contains(t, all, RoleNotifier)
}

func TestNeeds(t *testing.T) {
	require.True(t, needs([]string{RoleGateway}, depAuth))
	require.False(t, needs([]string{RoleSequencer}, depAuth))
	require.True(t, needs([]string{RolePersister}, depStore))
	require.False(t, needs([]string{RolePresence}, depStore), "presence lives in NATS only")
	require.True(t, needs([]string{RoleNotifier}, depStore), "the notifier reads members, mutes and unread counts")
}

// TestRoleTable checks every row of the role table can be started: a constructor,
// and NATS among its dependencies (every role meets the others only there).
func TestRoleTable(t *testing.T) {
	for name, r := range roles {
		t.Run(name, func(t *testing.T) {
			require.NotNil(t, r.build, "role %s has no constructor", name)
			require.Contains(t, r.deps, depNATS)
		})
	}
}
