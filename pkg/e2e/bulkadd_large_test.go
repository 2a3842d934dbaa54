package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestBulkAddToLargeChatTellsEachAdded: in a chat above the large-chat threshold,
// each connected user a bulk add names learns live that they were added, from a
// copy of the event naming only them with the number added (the sequencer's
// per-user copy: O(k) bytes, not k copies of k IDs); their gateway joins the chat
// on it, so the next message reaches them live; and the chat's history holds the
// event naming everyone added, at the same seq. Frames are checked against
// docs/asyncapi.yaml (testutil.RunValidated).
func TestBulkAddToLargeChatTellsEachAdded(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Sequencer.LargeChatThreshold = 5
	n := testutil.StartNatter(t, cfg)
	svc := n.ScopedServiceToken(t, "importer", protocol.ScopeChatsAdmin)
	chat := n.CreateChat(t, "owner", "group", "big")
	path := "/api/v1/chats/" + chat + "/members"
	var first []string
	for i := range 8 {
		first = append(first, fmt.Sprintf("m%d", i))
	}
	status, body := n.Do(t, "POST", path, svc, map[string]any{"userIds": first})
	require.Equal(t, http.StatusCreated, status, "%s", body)

	owner, n1, n2 := n.Dial(t, "owner"), n.Dial(t, "n1"), n.Dial(t, "n2")
	added := []string{"n1", "n2", "n3"} // n3 is offline
	status, body = n.Do(t, "POST", path, svc, map[string]any{"userIds": added})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	var ch changeAnswer
	require.NoError(t, json.Unmarshal(body, &ch))

	// The owner, a member, receives the event naming everyone (the log subject).
	f := nextFrame(t, owner, 20*time.Second, "members_added to the owner", func(f *protocol.Frame) bool { return f.Seq == ch.Seq })
	require.Equal(t, added, event(t, f).UserIDs)
	for user, conn := range map[string]*client.Conn{"n1": n1, "n2": n2} {
		f := nextFrame(t, conn, 20*time.Second, "members_added to "+user, func(f *protocol.Frame) bool { return f.ChatID == chat })
		require.Equal(t, ch.Seq, f.Seq)
		ev := event(t, f)
		require.Equal(t, protocol.EventMembersAdded, ev.Event)
		require.Equal(t, []string{user}, ev.UserIDs, "the live copy names the user it goes to")
		require.Equal(t, len(added), ev.Total, "and how many were added")
		require.Equal(t, "importer", ev.By)
	}

	// Joined on it: the next message reaches them live.
	sent, err := owner.Send(ctxT(t, 10*time.Second), chat, "hello", "welcome")
	require.NoError(t, err)
	for user, conn := range map[string]*client.Conn{"n1": n1, "n2": n2} {
		f := nextFrame(t, conn, 20*time.Second, "hello to "+user, func(f *protocol.Frame) bool { return f.MessageID == "hello" })
		require.Equal(t, sent.Seq, f.Seq)
	}

	// History names everyone added, at that seq.
	p := restHistory(t, n, chat, "n1")
	var found bool
	for _, m := range p.Messages {
		if m.Seq == ch.Seq {
			found = true
			var ev protocol.SystemEvent
			require.NoError(t, json.Unmarshal(m.Meta, &ev))
			require.Equal(t, added, ev.UserIDs)
			require.Zero(t, ev.Total, "history has the event itself")
		}
	}
	require.True(t, found, "the event is in n1's history")
}
