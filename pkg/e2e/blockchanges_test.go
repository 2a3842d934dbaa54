package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestBlockAppliesToNextSend: the sequencer keeps a block list until a gateway
// announces a change of it (pkg/blockchanges), and applies the change to the next
// message: with alice's list read (and cached) by the sequencer, bob's send right
// after alice blocks him is refused with blocked, and his send right after she
// unblocks him is sequenced, each time, with no waiting for a cache to expire.
func TestBlockAppliesToNextSend(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	dm := n.CreateChat(t, "alice", "direct", "", "bob")
	bob := n.Dial(t, "bob")
	send := func() (*protocol.Frame, error) {
		return bob.Send(ctxT(t, 10*time.Second), dm, ids.New(), "hello")
	}
	_, err := send()
	require.NoError(t, err, "the sequencer reads alice's block list: nobody")
	for range 3 {
		status, body := call(t, n, "POST", "/api/v1/blocks/bob", "alice", nil, nil)
		require.Equal(t, http.StatusCreated, status, string(body))
		_, err = send()
		require.Equal(t, protocol.CodeBlocked, errCode(t, err), "the send right after the block")

		status, body = call(t, n, "DELETE", "/api/v1/blocks/bob", "alice", nil, nil)
		require.Equal(t, http.StatusOK, status, string(body))
		f, err := send()
		require.NoError(t, err, "the send right after the unblock")
		require.Equal(t, protocol.FrameAck, f.Type)
	}
}
