package notifier_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// largeChat starts natter with a low large-chat threshold and small batches, and
// creates a group of alice and members u000..u<members-1>, added in bulk.
// Each of opts adjusts the configuration before natter starts.
func largeChat(t *testing.T, members, maxRecipients int, opts ...func(*app.Config)) (*testutil.Natter, string) {
	cfg := testutil.Config(t)
	cfg.Presence.Expiry = 2 * time.Second
	cfg.Presence.Grace = 200 * time.Millisecond
	cfg.Gateway.Presence.Heartbeat = 250 * time.Millisecond
	cfg.Notifier.Window = 2 * time.Second
	cfg.Notifier.LargeChatMembers = 50
	cfg.Notifier.BatchSize = 40
	cfg.Notifier.MaxRecipients = maxRecipients
	for _, o := range opts {
		o(cfg)
	}
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

// A paced pass (notifier.large-chat-rate) still notifies every offline member, and
// a window that closes while the pass runs is folded into it instead of starting a
// second pass: the pass reloads the chat's tail, walks on, and wraps round to the
// members it notified before, so every member's last notification counts both
// messages, nobody gets more than one per lap, and the walk never doubles up.
// The rate (3/s here) makes the pass take at least 26 s by the limiter's own
// arithmetic, far longer than the 2 s window of the second message even when a
// busy CI machine delays that window by 20 s; the test does not time anything, it
// counts.
func TestLargeChatPacedPassFoldsWindows(t *testing.T) {
	const members, rate = 80, 3
	n, chat := largeChat(t, members, 100_000, func(c *app.Config) { c.Notifier.LargeChatRate = rate })
	ns := watchNotes(t, n)
	send := sender(t, n, "alice")
	send(chat, "m0")
	require.Eventually(t, func() bool { return len(ns.all()) > 0 }, 30*time.Second, 20*time.Millisecond, "the pass started")
	send(chat, "m1")
	want := members // u000..u079; alice sent both
	last := map[string]notifier.Notification{}
	perUser := map[string]int{}
	require.Eventually(t, func() bool {
		clear(last)
		clear(perUser)
		for _, note := range ns.all() {
			perUser[note.UserID]++
			if note.LastMessage.MessageID == "m1" {
				last[note.UserID] = note
			}
		}
		return len(last) == want
	}, 90*time.Second, 50*time.Millisecond, "every member notified of m1 (%d of %d)", len(last), want)
	for uid, note := range last {
		require.EqualValues(t, 2, note.Count, "%s: m0 and m1 unread", uid)
		require.Equal(t, uid+"."+chat+"."+fmt.Sprint(note.LastMessage.Seq), note.ID)
	}
	_, _, folded, paced := n.Notifier.LargeChatPacing()
	require.EqualValues(t, 1, folded, "m1's window folded into the running pass")
	require.Positive(t, paced, "the rate made notifications wait, and the metric says so")
	windows, _, over := n.Notifier.LargeChatStats()
	require.EqualValues(t, 1, windows, "one pass, not one per window")
	require.Zero(t, over)
	once, twice := 0, 0
	for uid, c := range perUser {
		require.LessOrEqual(t, c, 2, "%s: at most one notification per lap", uid)
		if c == 1 {
			once++
		} else {
			twice++
		}
	}
	require.Positive(t, once, "members after the reload point were notified once, with both messages")
	require.Positive(t, twice, "members before it were notified of m0, then of m1 after the wrap")
	notified, walked, _, _ := n.Notifier.LargeChatPacing()
	require.EqualValues(t, len(ns.all()), notified)
	// alice sorts first: walked before the reload, so again after the wrap.
	require.EqualValues(t, members+1+twice+1, walked, "the first lap's members once, those before the reload twice")
}
