package e2e

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// receipts is the answer to GET /api/v1/chats/{id}/receipts.
type receipts struct {
	ChatID   string `json:"chatId"`
	Receipts []struct {
		UserID    string `json:"userId"`
		Delivered uint64 `json:"delivered"`
		Read      uint64 `json:"read"`
	} `json:"receipts"`
	Complete bool `json:"complete"`
}

// watermarks returns chat's receipts as user reads them, as "user:delivered/read".
func watermarks(t *testing.T, n *testutil.Natter, chat, user string) ([]string, bool) {
	t.Helper()
	var r receipts
	status, body := call(t, n, "GET", "/api/v1/chats/"+chat+"/receipts", user, nil, &r)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, chat, r.ChatID)
	var out []string
	for _, x := range r.Receipts {
		out = append(out, x.UserID+":"+itoa(x.Delivered)+"/"+itoa(x.Read))
	}
	return out, r.Complete
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestReceiptsListedForAStartingClient: a client that starts (a reload, a second
// device) reads every member's watermarks over REST, as the receipt frames it missed
// left them; non-members are refused; big chats list only the caller's own.
func TestReceiptsListedForAStartingClient(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.ReceiptsMaxMembers = 3
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	for _, id := range []string{"m1", "m2"} {
		_, err := alice.Send(ctxT(t, 5*time.Second), chat, id, "hi "+id)
		require.NoError(t, err)
	}
	collect(t, bob, 2, 5*time.Second)
	require.NoError(t, bob.Frame(ctxT(t, 5*time.Second), &protocol.Frame{Type: protocol.FrameDelivered, ChatID: chat, Seq: 2}))
	require.NoError(t, bob.Frame(ctxT(t, 5*time.Second), &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 1}))
	nextFrame(t, alice, 5*time.Second, "bob's read receipt", func(f *protocol.Frame) bool {
		return f.Type == protocol.FrameReceipt && f.UserID == "bob" && f.Read == 1
	})

	// A sender has read their own messages once they are stored.
	want := []string{"alice:2/2", "bob:2/1", "carol:0/0"}
	require.Eventually(t, func() bool { got, _ := watermarks(t, n, chat, "alice"); return assert.ObjectsAreEqual(want, got) },
		5*time.Second, 20*time.Millisecond)
	got, complete := watermarks(t, n, chat, "carol")
	require.Equal(t, want, got, "the same for every member")
	require.True(t, complete)

	status, body := call(t, n, "GET", "/api/v1/chats/"+chat+"/receipts", "mallory", nil, nil)
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
	status, body = call(t, n, "GET", "/api/v1/chats/no.such/receipts", "alice", nil, nil)
	requireRefused(t, status, body, http.StatusBadRequest, protocol.CodeInvalidID)

	// Above gateway.receipts-max-members: only one's own.
	var ch change
	status, body = call(t, n, "POST", "/api/v1/chats/"+chat+"/members", "alice", map[string]string{"userId": "dave"}, &ch)
	require.Equal(t, http.StatusCreated, status, string(body))
	got, complete = watermarks(t, n, chat, "bob")
	require.Equal(t, []string{"bob:2/1"}, got)
	require.False(t, complete)
}

// TestHistoryStateSaysWhichOperationsItHolds: history and sync give each message's
// stateSeq, the last operation in its state, so a client that also applies the
// operations as they arrive counts none twice; live frames carry no state.
func TestHistoryStateSaysWhichOperationsItHolds(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	ctx := ctxT(t, 10*time.Second)
	_, err := alice.Send(ctx, chat, "a1", "react to me")
	require.NoError(t, err)
	_, err = alice.Send(ctx, chat, "a2", "no reactions here")
	require.NoError(t, err)
	_, err = bob.React(ctx, chat, "a1", "👍", false)
	require.NoError(t, err)
	live := collect(t, alice, 3, 5*time.Second)
	require.Equal(t, protocol.TypeReact, live[2].MessageType)
	require.EqualValues(t, 3, live[2].Seq)
	for _, f := range live {
		require.Zero(t, f.StateSeq, "a live frame has no state")
		require.Nil(t, f.Reactions)
	}

	check := func(what string, msgs []protocol.Message) {
		t.Helper()
		m := byID(msgs)
		require.Equal(t, []protocol.Reaction{{Emoji: "👍", Count: 1}}, m["a1"].Reactions, what)
		require.EqualValues(t, 3, m["a1"].StateSeq, what+": a1 holds the react at seq 3")
		require.Zero(t, m["a2"].StateSeq, what+": a2 has no operation")
	}
	var page struct {
		Messages []protocol.Message `json:"messages"`
	}
	status, body := call(t, n, "GET", "/api/v1/chats/"+chat+"/messages", "alice", nil, &page)
	require.Equal(t, http.StatusOK, status, string(body))
	check("REST history", page.Messages)
	h, err := alice.HistoryBefore(ctx, chat, 0, 10)
	require.NoError(t, err)
	check("history frame", h.Messages)

	again := n.Dial(t, "alice")
	_, err = again.Sync(ctx, []protocol.ChatCursor{{ChatID: chat, Seq: 0}})
	require.NoError(t, err)
	var synced []protocol.Message
	for _, f := range collect(t, again, 3, 5*time.Second) {
		synced = append(synced, protocol.Message{MessageID: f.MessageID, Reactions: f.Reactions, StateSeq: f.StateSeq})
	}
	check("sync", synced)
}
