package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// receiver is a webhook endpoint for tests: it verifies every request's signature and
// records the verified notifications. While failing it answers 503 (after counting
// the attempt).
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex // guards the fields below
	got      []notifier.Notification
	attempts map[string]int // per notification ID, every request
	failNext int            // answer 503 to this many more requests
	failAll  bool
	badSig   int
	// answer, if set, gives the body of a 200 answer to a notification (a push
	// gateway naming invalid tokens); nil answers 204 No Content.
	answer func(n notifier.Notification) []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, secret: []byte("test-webhook-secret-0123456789"), attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := notifier.Verify(r.secret, body, req.Header.Get(notifier.SignatureHeader), time.Now(), 5*time.Minute); err != nil ||
		req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var n notifier.Notification
	if err := json.Unmarshal(body, &n); err != nil || n.ID != req.Header.Get(notifier.IDHeader) {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[n.ID]++
	if r.failAll || r.failNext > 0 {
		if r.failNext > 0 {
			r.failNext--
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	r.got = append(r.got, n)
	if r.answer != nil {
		if a := r.answer(n); a != nil {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(a)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) notifications() []notifier.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notifier.Notification(nil), r.got...)
}

func (r *receiver) set(fn func(r *receiver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

// configure points cfg's notifier at r with short test timings.
func (r *receiver) configure(t *testing.T, cfg *app.Config) {
	path := filepath.Join(t.TempDir(), "webhook.secret")
	require.NoError(t, os.WriteFile(path, append(r.secret, '\n'), 0o600))
	cfg.Notifier.WebhookURL = r.srv.URL
	cfg.Notifier.WebhookSecretFile = path
	cfg.Notifier.Window = time.Second
	cfg.Notifier.Backoff = 100 * time.Millisecond
	cfg.Notifier.MaxBackoff = 200 * time.Millisecond
	cfg.Notifier.Attempts = 4
}

// online waits until the presence role shows uid online.
func online(t *testing.T, n *testutil.Natter, uid string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, p, _ := getPresence(t, n, uid, uid)
		return p.Status == "online"
	}, 10*time.Second, 20*time.Millisecond, "%s online", uid)
}

// sendBurst sends count messages from c to chat and returns the last one as delivered.
func sendBurst(t *testing.T, n *testutil.Natter, sender, chat, prefix string, count int) *protocol.Frame {
	t.Helper()
	c := n.Dial(t, sender)
	for i := 1; i <= count; i++ {
		_, err := c.Send(ctxT(t, 5*time.Second), chat, fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s message %d", prefix, i))
		require.NoError(t, err)
	}
	msgs := collect(t, c, count, 10*time.Second)
	c.Close()
	return msgs[len(msgs)-1]
}

func TestWebhookCoalescesForOfflineUnmutedOnly(t *testing.T) {
	rcv := newReceiver(t)
	cfg := presenceConfig(t)
	rcv.configure(t, cfg)
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "Team", "bob", "carol", "dave")
	// carol is online, dave muted the chat, bob is offline: only bob hears about it.
	n.Dial(t, "carol")
	online(t, n, "carol")
	status, body := n.Do(t, "PUT", "/api/v1/chats/"+chat+"/mute", n.Token(t, "dave"), map[string]any{"muted": true})
	require.Equal(t, http.StatusOK, status, string(body))
	var notes []*nats.Msg
	var nmu sync.Mutex
	sub, err := n.NC.Subscribe(n.Config.NATS.Subjects().Notify("*"), func(m *nats.Msg) {
		nmu.Lock()
		notes = append(notes, m)
		nmu.Unlock()
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()

	last := sendBurst(t, n, "alice", chat, "m", 5)
	require.Eventually(t, func() bool { return len(rcv.notifications()) > 0 }, 10*time.Second, 20*time.Millisecond)
	// Nothing more arrives: the burst was one notification, and none for the others.
	time.Sleep(2 * cfg.Notifier.Window)
	got := rcv.notifications()
	require.Len(t, got, 1, "one coalesced notification: %+v", got)
	note := got[0]
	require.Equal(t, "bob", note.UserID)
	require.Equal(t, chat, note.ChatID)
	require.Equal(t, notifier.TypeMessages, note.Type)
	require.Equal(t, "group", note.ChatType)
	require.Equal(t, "Team", note.ChatName)
	require.Equal(t, last.Seq, note.Count, "every message of the burst is counted (bob read nothing)")
	require.Equal(t, last.Seq, note.Badge, "badge: total unread over bob's chats")
	require.Equal(t, "m5", note.LastMessage.MessageID)
	require.Equal(t, "alice", note.LastMessage.SenderID)
	require.Equal(t, "m message 5", note.LastMessage.Content)
	require.Equal(t, fmt.Sprintf("bob.%s.%d", chat, last.Seq), note.ID)
	rcv.set(func(r *receiver) { require.Zero(t, r.badSig) })

	// The same notification went to natter.notify.bob for backend services.
	nmu.Lock()
	require.Len(t, notes, 1)
	require.Equal(t, "natter.notify.bob", notes[0].Subject)
	var onSubject notifier.Notification
	require.NoError(t, json.Unmarshal(notes[0].Data, &onSubject))
	require.Equal(t, note.ID, onSubject.ID)
	nmu.Unlock()

	// Unmuted, dave is notified of the next message; bob too, with his badge growing.
	status, _ = n.Do(t, "PUT", "/api/v1/chats/"+chat+"/mute", n.Token(t, "dave"), map[string]any{"muted": false})
	require.Equal(t, http.StatusOK, status)
	sendBurst(t, n, "alice", chat, "again", 1)
	require.Eventually(t, func() bool { return len(rcv.notifications()) == 3 }, 10*time.Second, 20*time.Millisecond)
	for _, nt := range rcv.notifications()[1:] {
		require.Contains(t, []string{"bob", "dave"}, nt.UserID)
		if nt.UserID == "bob" {
			require.Equal(t, last.Seq+1, nt.Count)
		}
	}
}

func TestWebhookReceiverThatFailsThenRecovers(t *testing.T) {
	rcv := newReceiver(t)
	rcv.set(func(r *receiver) { r.failNext = 2 })
	cfg := presenceConfig(t)
	rcv.configure(t, cfg)
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	sendBurst(t, n, "alice", chat, "m", 2)
	require.Eventually(t, func() bool { return len(rcv.notifications()) == 1 }, 15*time.Second, 20*time.Millisecond)
	note := rcv.notifications()[0]
	require.Equal(t, "bob", note.UserID)
	rcv.set(func(r *receiver) { require.Equal(t, 3, r.attempts[note.ID], "two failures, then delivered") })
	requireDLQ(t, n, 0)
}

// requireDLQ asserts NATTER_DLQ holds want messages.
func requireDLQ(t *testing.T, n *testutil.Natter, want uint64) {
	t.Helper()
	s, err := n.JS.Stream(ctxT(t, 5*time.Second), subjects.DLQStream)
	require.NoError(t, err)
	info, err := s.Info(ctxT(t, 5*time.Second))
	require.NoError(t, err)
	require.Equal(t, want, info.State.Msgs)
}

func TestWebhookDeadLetterThenReplay(t *testing.T) {
	rcv := newReceiver(t)
	rcv.set(func(r *receiver) { r.failAll = true })
	ns := natstest.Server(t)
	cfg := presenceConfig(t)
	cfg.NATS.URL = ns.ClientURL()
	rcv.configure(t, cfg)
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	last := sendBurst(t, n, "alice", chat, "m", 3)

	// Every attempt fails: the notification lands in NATTER_DLQ.
	require.Eventually(t, func() bool {
		s, err := n.JS.Stream(ctxT(t, time.Second), subjects.DLQStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctxT(t, time.Second))
		return err == nil && info.State.Msgs == 1
	}, 15*time.Second, 50*time.Millisecond)
	id := fmt.Sprintf("bob.%s.%d", chat, last.Seq)
	rcv.set(func(r *receiver) { require.Equal(t, cfg.Notifier.Attempts, r.attempts[id]) })
	raw, err := getLastDLQ(t, n)
	require.NoError(t, err)
	require.Equal(t, "4", raw.Header.Get("Natter-Attempts"))
	require.Contains(t, raw.Header.Get("Natter-Error"), "503")

	// A replay while the receiver is still down keeps it.
	args := []string{"notify", "replay", "-nats.url", ns.ClientURL(), "-data-dir", cfg.DataDir,
		"-notifier.webhook-url", cfg.Notifier.WebhookURL, "-notifier.webhook-secret-file", cfg.Notifier.WebhookSecretFile,
		"-notifier.attempts", "1", "-log.level", "error"}
	var out, errb bytes.Buffer
	require.Equal(t, 0, app.Main(args, &out, &errb), errb.String())
	require.Contains(t, out.String(), "0 delivered, 1 failed again")
	requireDLQ(t, n, 1)

	// The receiver recovers; the operator replays: delivered once, and gone from the DLQ.
	rcv.set(func(r *receiver) { r.failAll = false })
	out.Reset()
	require.Equal(t, 0, app.Main(args, &out, &errb), errb.String())
	require.Contains(t, out.String(), "1 delivered, 0 failed again")
	got := rcv.notifications()
	require.Len(t, got, 1)
	require.Equal(t, id, got[0].ID)
	require.Equal(t, "bob", got[0].UserID)
	require.Equal(t, last.Seq, got[0].Count)
	requireDLQ(t, n, 0)
	out.Reset()
	require.Equal(t, 0, app.Main(args, &out, &errb), errb.String())
	require.Contains(t, out.String(), "0 delivered, 0 failed again", "nothing left to replay")
}

func getLastDLQ(t *testing.T, n *testutil.Natter) (*jetstream.RawStreamMsg, error) {
	s, err := n.JS.Stream(ctxT(t, 5*time.Second), subjects.DLQStream)
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(ctxT(t, 5*time.Second), n.Config.NATS.Subjects().DLQ("notify"))
}

func TestTwoNotifiersSendEachNotificationOnce(t *testing.T) {
	rcv := newReceiver(t)
	ns := natstest.Server(t)
	ca := presenceConfig(t)
	ca.NATS.URL = ns.ClientURL()
	rcv.configure(t, ca)
	a := testutil.StartNatter(t, ca)
	// The notifier sets up its stream, bucket and consumers in its Run, after Start
	// returns. On a loaded machine a's was still doing so when b's began, and a role
	// that fails stops its process: a's gateway then drained and answered the first
	// dial with 503. Start b once a's consumers exist (what a second instance
	// started later finds), and say so if either process stopped.
	require.Eventually(t, func() bool {
		_, err1 := a.JS.Consumer(ctxT(t, 5*time.Second), subjects.LogStream, subjects.NotifierConsumer)
		_, err2 := a.JS.Consumer(ctxT(t, 5*time.Second), "KV_"+notifier.WindowBucket, subjects.NotifierWindowConsumer)
		return err1 == nil && err2 == nil
	}, 60*time.Second, 20*time.Millisecond, "a's notifier has set up its consumers")
	cb := presenceConfig(t)
	cb.NATS.URL = ns.ClientURL()
	cb.DataDir = ca.DataDir
	cb.Roles = []string{app.RoleNotifier}
	rcv.configure(t, cb)
	b := testutil.StartNatter(t, cb)
	defer func() {
		for name, n := range map[string]*testutil.Natter{"a": a, "b": b} {
			select {
			case <-n.Done():
				t.Errorf("instance %s stopped: %v", name, n.Err())
			default:
			}
		}
	}()

	var chats []string
	for i := range 4 {
		chats = append(chats, a.CreateChat(t, "alice", "group", fmt.Sprintf("g%d", i), "bob", "carol"))
	}
	want := map[string]bool{}
	for round := range 3 {
		for _, chat := range chats {
			last := sendBurst(t, a, "alice", chat, fmt.Sprintf("r%d-", round), 3)
			for _, u := range []string{"bob", "carol"} {
				want[fmt.Sprintf("%s.%s.%d", u, chat, last.Seq)] = true
			}
		}
		// Let this round's windows close before the next round opens new ones.
		require.Eventually(t, func() bool { return len(rcv.notifications()) == len(want) }, 15*time.Second, 20*time.Millisecond,
			"round %d", round)
	}
	time.Sleep(2 * ca.Notifier.Window)
	got := map[string]int{}
	for _, nt := range rcv.notifications() {
		got[nt.ID]++
	}
	require.Len(t, got, len(want))
	for id := range want {
		require.Equal(t, 1, got[id], "notification %s sent once", id)
	}
	rcv.set(func(r *receiver) {
		for id, n := range r.attempts {
			require.Equal(t, 1, n, "%s requested once", id)
		}
	})
	sa, sb := a.Notifier.Sent(), b.Notifier.Sent()
	t.Logf("notifications sent by instance a: %d, b: %d", sa, sb)
	require.EqualValues(t, len(want), sa+sb, "the instances shared the work, none twice")
}

func TestMuteHostileInput(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	tok := n.Token(t, "alice")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	path := "/api/v1/chats/" + chat + "/mute"
	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "PUT", path, "", `{"muted":true}`, 401, "unauthorized"},
		{"not a member", "PUT", path, n.Token(t, "mallory"), `{"muted":true}`, 403, "not_member"},
		{"not a member reads", "GET", path, n.Token(t, "mallory"), nil, 403, "not_member"},
		{"invalid chat id", "PUT", "/api/v1/chats/a.b/mute", tok, `{"muted":true}`, 400, "invalid_id"},
		{"muted missing", "PUT", path, tok, `{}`, 400, "bad_request"},
		{"muted not a bool", "PUT", path, tok, `{"muted":"yes"}`, 400, "bad_request"},
		{"until in the past", "PUT", path, tok, `{"muted":true,"until":"` + past + `"}`, 400, "bad_request"},
		{"until not a time", "PUT", path, tok, `{"muted":true,"until":"tomorrow"}`, 400, "bad_request"},
		{"until when unmuting", "PUT", path, tok, `{"muted":false,"until":"` + future + `"}`, 400, "bad_request"},
		{"unknown field", "PUT", path, tok, `{"muted":true,"forever":true}`, 400, "bad_request"},
		{"malformed", "PUT", path, tok, `{"muted":`, 400, "bad_request"},
		{"oversize", "PUT", path, tok, `{"muted":true,"x":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.Do(t, tc.method, tc.path, tc.token, tc.body)
			require.Equal(t, tc.status, status, string(body))
			require.Contains(t, string(body), `"code":"`+tc.code+`"`)
		})
	}
	// None of it muted anything; a good request does, and reads back.
	status, body := n.Do(t, "GET", path, tok, nil)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"chatId":"`+chat+`","muted":false}`, string(body))
	status, body = n.Do(t, "PUT", path, tok, `{"muted":true,"until":"`+future+`"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = n.Do(t, "GET", path, tok, nil)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"chatId":"`+chat+`","muted":true,"until":"`+future+`"}`, string(body))
	status, body = n.Do(t, "GET", path, n.Token(t, "bob"), nil)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"chatId":"`+chat+`","muted":false}`, string(body), "mutes are per user")
}
