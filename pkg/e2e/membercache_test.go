package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestMembershipChangeThroughOtherGateway: a gateway keeps a connected member's
// membership until an event of it arrives (gateway/members.go). Members removed,
// or leaving, through another gateway have their next send, edit and typing
// refused with not_member on the gateway they are connected to, and nothing they
// send after the change is sequenced.
func TestMembershipChangeThroughOtherGateway(t *testing.T) {
	ns := natstest.Server(t)
	base := testutil.Config(t) // one data directory: both gateways read one SQLite store
	withRoles := func(roles ...string) *app.Config {
		c := *base
		c.NATS.URL = ns.ClientURL()
		c.Roles = roles
		return &c
	}
	n := testutil.StartNatter(t, withRoles(app.RoleGateway, app.RoleSequencer, app.RolePersister, app.RolePresence))
	other := testutil.StartNatter(t, withRoles(app.RoleGateway))
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	bobAck, err := bob.Send(ctxT(t, 5*time.Second), chat, "b-1", "cached")
	require.NoError(t, err)
	_, err = carol.Send(ctxT(t, 5*time.Second), chat, "c-1", "cached too")
	require.NoError(t, err)
	for _, c := range []*client.Conn{alice, bob, carol} {
		collect(t, c, 2, 5*time.Second)
	}

	status, body := call(t, other, "DELETE", "/api/v1/chats/"+chat+"/members/bob", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	for _, c := range []*client.Conn{bob, carol} {
		require.Equal(t, protocol.EventMemberRemoved, event(t, next(t, c, protocol.FrameMessage, 5*time.Second)).Event)
	}
	status, body = call(t, other, "POST", "/api/v1/chats/"+chat+"/leave", "carol", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, protocol.EventMemberLeft, event(t, next(t, carol, protocol.FrameMessage, 5*time.Second)).Event)

	_, err = bob.Send(ctxT(t, 5*time.Second), chat, "b-2", "after removal")
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "removed: send")
	_, err = bob.Edit(ctxT(t, 5*time.Second), chat, bobAck.MessageID, "edited after removal")
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "removed: edit")
	_, err = carol.Send(ctxT(t, 5*time.Second), chat, "c-2", "after leaving")
	require.Equal(t, protocol.CodeNotMember, errCode(t, err), "left: send")

	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "a-1", "still here")
	require.NoError(t, err)
	page := history(t, n, "alice", chat, "?after=0")
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, seqsOf(page.Messages), "two sends, two changes, alice's: nothing of bob's or carol's after")
}
