package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// notes records the notifications published on natter.notify.*.
type notes struct {
	mu  sync.Mutex // guards got
	got []notifier.Notification
}

func watchNotes(t *testing.T, n *testutil.Natter) *notes {
	t.Helper()
	ns := &notes{}
	sub, err := n.NC.Subscribe(n.Config.NATS.Subjects().Notify("*"), func(m *nats.Msg) {
		var note notifier.Notification
		if json.Unmarshal(m.Data, &note) == nil {
			ns.mu.Lock()
			ns.got = append(ns.got, note)
			ns.mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, n.NC.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ns
}

// all returns every notification seen.
func (ns *notes) all() []notifier.Notification {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]notifier.Notification(nil), ns.got...)
}

// forUser returns the notifications of uid about chat.
func (ns *notes) forUser(uid, chat string) []notifier.Notification {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []notifier.Notification
	for _, n := range ns.got {
		if n.UserID == uid && n.ChatID == chat {
			out = append(out, n)
		}
	}
	return out
}

func startNatter(t *testing.T) *testutil.Natter {
	cfg := testutil.Config(t)
	// Short presence timings, as pkg/e2e's presence tests use: a gateway whose first
	// report found no presence instance yet resyncs on its next heartbeat.
	cfg.Presence.Expiry = 2 * time.Second
	cfg.Presence.Grace = 200 * time.Millisecond
	cfg.Gateway.Presence.Heartbeat = 250 * time.Millisecond
	cfg.Notifier.Window = time.Second
	return testutil.StartNatter(t, cfg)
}

// devices returns uid's connected devices as the presence bucket has them.
func devices(t *testing.T, n *testutil.Natter, uid string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := n.JS.KeyValue(ctx, presencekv.Bucket)
	if err != nil {
		return 0 // not created yet
	}
	e, err := kv.Get(ctx, presencekv.UserKey(uid))
	if err != nil {
		return 0
	}
	var u presencekv.User
	require.NoError(t, json.Unmarshal(e.Value(), &u))
	return u.Devices()
}

// sender connects uid for sending; unsolicited frames are drained.
func sender(t *testing.T, n *testutil.Natter, uid string) func(chat, id string) {
	c := n.Dial(t, uid)
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		for range c.Frames() {
		}
	}()
	return func(chat, id string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Send(ctx, chat, id, "hello "+id)
		require.NoError(t, err)
	}
}

// A user who disconnects is notified of a message sent right after the presence
// bucket recorded the disconnect: the notifier's presence view cannot be behind it.
// Repeated, since a view that lags shows up only sometimes.
func TestNotifiedRightAfterGoingOffline(t *testing.T) {
	n := startNatter(t)
	ns := watchNotes(t, n)
	send := sender(t, n, "alice")
	for i := range 3 {
		chat := n.CreateChat(t, "alice", "group", fmt.Sprintf("g%d", i), "bob")
		bob := n.Dial(t, "bob")
		require.Eventually(t, func() bool { return devices(t, n, "bob") == 1 }, 10*time.Second, 5*time.Millisecond,
			"round %d: bob connected (devices %d)", i, devices(t, n, "bob"))
		// Online: no notification.
		send(chat, fmt.Sprintf("on%d", i))
		bob.Close()
		require.Eventually(t, func() bool { return devices(t, n, "bob") == 0 }, 10*time.Second, time.Millisecond)
		send(chat, fmt.Sprintf("off%d", i))
		require.Eventually(t, func() bool { return len(ns.forUser("bob", chat)) == 1 }, 10*time.Second, 20*time.Millisecond,
			"round %d: bob, offline, is notified", i)
		note := ns.forUser("bob", chat)[0]
		require.Equal(t, fmt.Sprintf("off%d", i), note.LastMessage.MessageID)
	}
}

// A member added to a chat whose members the notifier has cached is notified of the
// next message, and a removed one no longer is.
func TestNewMemberNotified(t *testing.T) {
	n := startNatter(t)
	ns := watchNotes(t, n)
	chat := n.CreateChat(t, "alice", "group", "Team", "bob")
	send := sender(t, n, "alice")
	send(chat, "m1") // caches the members: alice, bob
	require.Eventually(t, func() bool { return len(ns.forUser("bob", chat)) == 1 }, 10*time.Second, 20*time.Millisecond)

	status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/members", n.Token(t, "alice"), map[string]any{"userId": "erin"})
	require.Equal(t, http.StatusCreated, status, string(body))
	status, body = n.Do(t, "DELETE", "/api/v1/chats/"+chat+"/members/bob", n.Token(t, "alice"), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	send(chat, "m2")
	require.Eventually(t, func() bool { return len(ns.forUser("erin", chat)) == 1 }, 10*time.Second, 20*time.Millisecond,
		"erin, added before m2, is notified")
	require.Equal(t, "m2", ns.forUser("erin", chat)[0].LastMessage.MessageID)
	time.Sleep(2 * n.Config.Notifier.Window)
	require.Len(t, ns.forUser("bob", chat), 1, "bob, removed, hears nothing more")
}

// A key distribution of an end-to-end encrypted chat (messageType encrypted_keys) is
// never pushed nor counted, and a push never shows one as the last message: an
// offline member hears nothing of a distribution alone, and the ciphertext message
// before the next one is pushed (as "new message", no content) with a count of one.
// In a small chat and in one past notifier.large-chat-members (its own path).
func TestKeyDistributionNotPushed(t *testing.T) {
	t.Run("small", func(t *testing.T) {
		n := startNatter(t)
		keyDistributionNotPushed(t, n, encryptedGroup(t, n, "bob"), "bob")
	})
	t.Run("large", func(t *testing.T) {
		cfg := testutil.Config(t)
		cfg.Notifier.Window = time.Second
		cfg.Notifier.LargeChatMembers = 50
		n := testutil.StartNatter(t, cfg)
		var users []string
		for i := range 60 {
			users = append(users, fmt.Sprintf("u%03d", i))
		}
		keyDistributionNotPushed(t, n, encryptedGroup(t, n, users...), "u042")
		windows, _, _ := n.Notifier.LargeChatStats()
		require.NotZero(t, windows, "the large-chat path made the notifications")
	})
}

// encryptedGroup creates an end-to-end encrypted group of alice and members.
func encryptedGroup(t *testing.T, n *testutil.Natter, members ...string) string {
	t.Helper()
	var chat struct {
		ID string `json:"id"`
	}
	status, body := n.Do(t, "POST", "/api/v1/chats", n.Token(t, "alice"), map[string]any{"type": "group", "name": "", "members": members, "encrypted": true})
	require.Equal(t, http.StatusCreated, status, string(body))
	require.NoError(t, json.Unmarshal(body, &chat))
	return chat.ID
}

func keyDistributionNotPushed(t *testing.T, n *testutil.Natter, chat, uid string) {
	ns := watchNotes(t, n)
	post := func(id, typ string) {
		t.Helper()
		status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", n.Token(t, "alice"),
			map[string]any{"messageId": id, "messageType": typ, "content": `{"v":1,"t":"x","dev":"d1","ct":"AAAA"}`})
		require.Equal(t, http.StatusAccepted, status, string(body))
	}
	post("k1", "encrypted_keys")
	// Two windows: a push for k1 would have been sent by now.
	time.Sleep(2 * n.Config.Notifier.Window)
	require.Empty(t, ns.forUser(uid, chat), "a key distribution is not pushed")
	// A message and, in the same window, the next distribution (the chat's newest
	// message when the window closes).
	post("e1", "encrypted")
	post("k2", "encrypted_keys")
	require.Eventually(t, func() bool { return len(ns.forUser(uid, chat)) == 1 }, 20*time.Second, 20*time.Millisecond,
		"%s, offline, is notified of the message", uid)
	note := ns.forUser(uid, chat)[0]
	require.Equal(t, "e1", note.LastMessage.MessageID, "the push shows the message, not the distribution after it")
	require.Equal(t, "encrypted", note.LastMessage.MessageType)
	require.Empty(t, note.LastMessage.Content)
	require.True(t, note.Encrypted)
	require.EqualValues(t, 1, note.Count, "the distributions are not counted")
	require.EqualValues(t, 1, note.Badge)
}

// Whether a user is notified is decided again when the window closes: one who muted
// the chat or left it after their window opened hears nothing, while another
// recipient of the same message is notified.
func TestMutedOrLeftBeforeTheWindowCloses(t *testing.T) {
	n := startNatter(t)
	ns := watchNotes(t, n)
	chat := n.CreateChat(t, "alice", "group", "Team", "bob", "carol", "dave")
	send := sender(t, n, "alice")
	ctx := context.Background()
	var windows jetstream.KeyValue
	require.Eventually(t, func() bool {
		var err error
		windows, err = n.JS.KeyValue(ctx, notifier.WindowBucket)
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "the notifier created its bucket")
	send(chat, "m1")
	for _, uid := range []string{"bob", "carol", "dave"} {
		require.Eventually(t, func() bool {
			_, err := windows.Get(ctx, "w."+uid+"."+chat)
			return err == nil
		}, 10*time.Second, 5*time.Millisecond, "%s's window opened", uid)
	}
	require.NoError(t, n.Store.SetMute(ctx, store.Mute{ChatID: chat, UserID: "bob", Muted: true}))
	require.NoError(t, n.Store.RemoveMember(ctx, chat, "carol"))
	require.Eventually(t, func() bool { return len(ns.forUser("dave", chat)) == 1 }, 10*time.Second, 20*time.Millisecond,
		"dave is notified")
	time.Sleep(n.Config.Notifier.Window)
	require.Empty(t, ns.forUser("bob", chat), "bob muted the chat before his window closed")
	require.Empty(t, ns.forUser("carol", chat), "carol left before her window closed")
}
