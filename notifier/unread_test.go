package notifier_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// storeOps returns how many times the store was asked op (natter_store_seconds).
func storeOps(t *testing.T, n *testutil.Natter, op string) uint64 {
	t.Helper()
	fams, err := n.Metrics.Registry.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "natter_store_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no natter_store_seconds{op=%q}", op)
	return 0
}

// A notification counts what its user has not read whether the store holds the
// chat's messages or not. With the persister running, the store holds them by the
// time the window closes and one count in the store answers (Store.UnreadBetween);
// with no persister, the store holds none of them and the count comes from the log
// through history. The count is the same: bob, offline, read none of the four (his
// own are not counted either way, the store conformance suite checks the rest).
func TestNotificationCountStoredOrNot(t *testing.T) {
	for _, persisted := range []bool{true, false} {
		t.Run(fmt.Sprintf("persisted=%v", persisted), func(t *testing.T) {
			cfg := testutil.Config(t)
			cfg.Presence.Expiry = 2 * time.Second
			cfg.Presence.Grace = 200 * time.Millisecond
			cfg.Gateway.Presence.Heartbeat = 250 * time.Millisecond
			// Long enough for the persister to store the messages before the window
			// closes, even on a busy machine (it takes milliseconds).
			cfg.Notifier.Window = 2 * time.Second
			if !persisted {
				cfg.Roles = []string{app.RoleGateway, app.RoleSequencer, app.RolePresence, app.RoleNotifier}
			}
			n := testutil.StartNatter(t, cfg)
			ns := watchNotes(t, n)
			chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
			alice, carol := sender(t, n, "alice"), sender(t, n, "carol")
			alice(chat, "a1")
			alice(chat, "a2")
			carol(chat, "c1")
			alice(chat, "a3")
			require.Eventually(t, func() bool {
				got := ns.forUser("bob", chat)
				return len(got) > 0 && got[len(got)-1].LastMessage.MessageID == "a3"
			}, 20*time.Second, 20*time.Millisecond, "bob, offline, is notified of a3")
			got := ns.forUser("bob", chat)
			note := got[len(got)-1]
			require.EqualValues(t, 4, note.Count, "bob read none of the four: %+v", note)
			require.EqualValues(t, 4, note.Badge)
			require.Empty(t, ns.forUser("alice", chat), "alice is online")
			counted := storeOps(t, n, "unread_between")
			if persisted {
				require.NotZero(t, counted, "counted in the store once it held the messages")
			} else {
				require.Zero(t, counted, "the store holds none of the messages: counted from the log")
			}
		})
	}
}

// A chat that keeps talking across windows ends in a notification of its last
// message: the windows this instance remembers as open (opened.go) never swallow a
// message sent after one closed. 25 messages 120 ms apart span three 1 s windows.
func TestMessagesAcrossWindowsAllNotified(t *testing.T) {
	n := startNatter(t)
	ns := watchNotes(t, n)
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := sender(t, n, "alice")
	const count = 25
	for i := 1; i <= count; i++ {
		alice(chat, fmt.Sprintf("m%d", i))
		time.Sleep(120 * time.Millisecond)
	}
	last := fmt.Sprintf("m%d", count)
	require.Eventually(t, func() bool {
		got := ns.forUser("bob", chat)
		return len(got) > 0 && got[len(got)-1].LastMessage.MessageID == last
	}, 20*time.Second, 20*time.Millisecond, "bob is notified of the last message: %+v", ns.forUser("bob", chat))
	got := ns.forUser("bob", chat)
	require.GreaterOrEqual(t, len(got), 2, "the talk spanned several windows")
	require.EqualValues(t, count, got[len(got)-1].Count, "bob read none of them")
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i].LastMessage.Seq, got[i-1].LastMessage.Seq, "each window's notification is of a later message")
	}
}
