package notifier_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// largeChat starts natter with a low large-chat threshold and small batches, and
// creates a group of alice and members u000..u<members-1>, added in bulk.
func largeChat(t *testing.T, members, maxRecipients int) (*testutil.Natter, string) {
	cfg := testutil.Config(t)
	cfg.Presence.Expiry = 2 * time.Second
	cfg.Presence.Grace = 200 * time.Millisecond
	cfg.Gateway.Presence.Heartbeat = 250 * time.Millisecond
	cfg.Notifier.Window = 2 * time.Second
	cfg.Notifier.LargeChatMembers = 50
	cfg.Notifier.BatchSize = 40
	cfg.Notifier.MaxRecipients = maxRecipients
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "Everyone")
	var users []string
	for i := range members {
		users = append(users, fmt.Sprintf("u%03d", i))
	}
	status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/members", n.ScopedServiceToken(t, "importer", protocol.ScopeChatsAdmin),
		map[string]any{"userIds": users})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	return n, chat
}

// In a chat above notifier.large-chat-members, the offline members are notified in
// batches once per window (three messages, one notification each, counting all
// three, with the member's badge and devices), the muted, the connected and those
// who read everything not at all.
func TestLargeChatNotifiedInBatches(t *testing.T) {
	const members = 300
	n, chat := largeChat(t, members, 100_000)
	ns := watchNotes(t, n)
	status, body := n.Do(t, "PUT", "/api/v1/chats/"+chat+"/mute", n.Token(t, "u005"), map[string]any{"muted": true})
	require.Equal(t, http.StatusOK, status, "%s", body)
	status, body = n.Do(t, "POST", "/api/v1/devices", n.Token(t, "u010"),
		map[string]any{"deviceId": "phone", "platform": "android", "provider": "fcm", "token": "tok-u010"})
	require.Equal(t, http.StatusOK, status, "%s", body)
	_, err := n.Store.SetReadState(context.Background(), chat, "u011", 0, 1_000_000) // read past anything sent
	require.NoError(t, err)
	// u012 has one unread message elsewhere: its badge counts it.
	side := n.CreateChat(t, "alice", "group", "Side", "u012")
	sender(t, n, "alice")(side, "s0")
	require.Eventually(t, func() bool {
		total, err := n.Store.UnreadTotal(context.Background(), "u012", chat)
		return err == nil && total == 1
	}, 10*time.Second, 10*time.Millisecond, "the side chat's message stored")
	online := n.Dial(t, "u007")
	t.Cleanup(func() { _ = online.Close() })
	require.Eventually(t, func() bool { return devices(t, n, "u007") == 1 }, 10*time.Second, 10*time.Millisecond)
	send := sender(t, n, "alice")
	for i := range 3 {
		send(chat, fmt.Sprintf("m%d", i))
	}
	want := members - 3 // not u005 (muted), u007 (connected) nor u011 (read); alice sent them
	inChat := func() []notifier.Notification {
		var out []notifier.Notification
		for _, note := range ns.all() {
			if note.ChatID == chat {
				out = append(out, note)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(inChat()) >= want }, 60*time.Second, 50*time.Millisecond,
		"every offline member notified (%d of %d)", len(inChat()), want)
	time.Sleep(2 * n.Config.Notifier.Window) // no more come
	got := map[string]int{}
	for _, note := range inChat() {
		require.EqualValues(t, 3, note.Count, "one notification for the window's three messages")
		require.Equal(t, "m2", note.LastMessage.MessageID)
		require.Equal(t, "Everyone", note.ChatName)
		switch note.UserID {
		case "u010":
			require.Len(t, note.Devices, 1)
			require.Equal(t, "tok-u010", note.Devices[0].Token)
		case "u012":
			require.EqualValues(t, 4, note.Badge, "3 here and 1 in the side chat")
		default:
			require.EqualValues(t, 3, note.Badge, note.UserID)
			require.Empty(t, note.Devices, note.UserID)
		}
		got[note.UserID]++
	}
	require.Len(t, got, want)
	for uid, c := range got {
		require.Equal(t, 1, c, "%s notified once", uid)
	}
	for _, uid := range []string{"u005", "u007", "u011", "alice"} {
		require.Zero(t, got[uid], "%s is not notified", uid)
	}
	windows, batches, over := n.Notifier.LargeChatStats()
	require.EqualValues(t, 1, windows)
	require.EqualValues(t, (members+1+39)/40, batches, "members read in batches of notifier.batch-size")
	require.Zero(t, over)
}

// Past notifier.max-recipients, the members after the limit are counted, not
// notified.
func TestLargeChatRecipientLimitCounted(t *testing.T) {
	const members, limit = 120, 70
	n, chat := largeChat(t, members, limit)
	ns := watchNotes(t, n)
	sender(t, n, "alice")(chat, "m0")
	require.Eventually(t, func() bool { _, _, over := n.Notifier.LargeChatStats(); return over > 0 }, 30*time.Second, 50*time.Millisecond)
	_, _, over := n.Notifier.LargeChatStats()
	require.EqualValues(t, members+1-limit, over, "every member past the limit is counted")
	require.Eventually(t, func() bool { return len(ns.all()) == limit-1 }, 30*time.Second, 50*time.Millisecond,
		"the first %d members but alice are notified (%d)", limit, len(ns.all()))
	for _, note := range ns.all() {
		require.Less(t, note.UserID, fmt.Sprintf("u%03d", limit-1), "in user ID order")
	}
}
