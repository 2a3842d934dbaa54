package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 14, finding 10: one user built a 3,001-member group alone and turned 3
// posts into 3,001 push notifications. These tests do the same against a running
// natter with small limits and assert the refusals.

// rateLimitedBody checks a 429 answer: code rate_limited, retry true, and a retry
// hint both in Retry-After and in retryAfterMs.
func rateLimitedBody(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, string(body))
	var e struct {
		Error struct {
			Code         protocol.Code `json:"code"`
			Retry        bool          `json:"retry"`
			RetryAfterMs int64         `json:"retryAfterMs"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e))
	require.Equal(t, protocol.CodeRateLimited, e.Error.Code)
	require.True(t, e.Error.Retry)
	require.Positive(t, e.Error.RetryAfterMs)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After in seconds")
	require.GreaterOrEqual(t, int64(secs)*1000, e.Error.RetryAfterMs, "Retry-After rounds up")
}

// doResp is testutil's Do keeping the response headers.
func doResp(t *testing.T, n *testutil.Natter, method, path, token string, body any) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(method, n.HTTPURL()+path, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, out
}

// TestChatCreationAndMemberAddsAreRateLimited: a user creates chats and adds
// members until the buckets refuse; creating a group whole is charged per member,
// so it is no way around the member-add bucket; refusals change nothing; other
// users are not affected.
func TestChatCreationAndMemberAddsAreRateLimited(t *testing.T) {
	cfg := testutil.Config(t)
	lim := &cfg.Gateway.Limits.REST
	lim.ChatCreateRate, lim.ChatCreateBurst = 0.001, 3
	lim.MemberAddRate, lim.MemberAddBurst = 0.001, 6
	n := testutil.StartNatter(t, cfg)
	alice := n.Token(t, "alice")

	// A group naming more members than the burst can never pass: too_large.
	status, body := n.Do(t, "POST", "/api/v1/chats", alice, map[string]any{"type": "group", "members": []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7"}})
	require.Equal(t, http.StatusRequestEntityTooLarge, status, string(body))
	require.Contains(t, string(body), "member-add-burst")

	// 1 creation, 4 members.
	resp, body := doResp(t, n, "POST", "/api/v1/chats", alice, map[string]any{"type": "group", "members": []string{"u1", "u2", "u3", "u4"}, "name": "g"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var chat struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(body, &chat))
	// 2 more members: the bucket (6) is empty after them.
	for _, u := range []string{"u5", "u6"} {
		status, body := n.Do(t, "POST", "/api/v1/chats/"+chat.ID+"/members", alice, map[string]any{"userId": u})
		require.Equal(t, http.StatusCreated, status, string(body))
	}
	resp, body = doResp(t, n, "POST", "/api/v1/chats/"+chat.ID+"/members", alice, map[string]any{"userId": "u7"})
	rateLimitedBody(t, resp, body)
	// A creation naming a member is refused whole when the member bucket is empty:
	// nothing is created, and the creation token it took is given back (two more
	// creations pass below, as the burst of 3 allows).
	resp, body = doResp(t, n, "POST", "/api/v1/chats", alice, map[string]any{"type": "group", "members": []string{"u8"}})
	rateLimitedBody(t, resp, body)
	status, body = n.Do(t, "GET", "/api/v1/chats/"+chat.ID+"/members", alice, nil)
	require.Equal(t, http.StatusOK, status)
	var ms struct {
		Members []struct{ UserID string } `json:"members"`
	}
	require.NoError(t, json.Unmarshal(body, &ms))
	require.Len(t, ms.Members, 7, "alice and u1..u6: the refused add changed nothing")
	status, body = n.Do(t, "GET", "/api/v1/chats", alice, nil)
	require.Equal(t, http.StatusOK, status)
	var list struct {
		Chats []json.RawMessage `json:"chats"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Chats, 1, "the refused creations created nothing")

	// Chat creation: groups without other members cost no member adds. Two more
	// creations pass (3 in all), the fourth is refused.
	for i := range 2 {
		status, body := n.Do(t, "POST", "/api/v1/chats", alice, map[string]any{"type": "group", "name": fmt.Sprint("solo", i)})
		require.Equal(t, http.StatusCreated, status, string(body))
	}
	resp, body = doResp(t, n, "POST", "/api/v1/chats", alice, map[string]any{"type": "group", "name": "one too many"})
	rateLimitedBody(t, resp, body)

	// Bob's buckets are his own.
	bob := n.Token(t, "bob")
	status, body = n.Do(t, "POST", "/api/v1/chats", bob, map[string]any{"type": "group", "members": []string{"u1", "u2"}})
	require.Equal(t, http.StatusCreated, status, string(body))

	require.Equal(t, "3", metricValue(t, n, "natter_gateway_rest_rate_limited_total"))
}

// TestRESTPostsAreRateLimited: REST message posts are under a per-user bucket; a
// service token has its own, larger one; refused posts are not stored.
func TestRESTPostsAreRateLimited(t *testing.T) {
	cfg := testutil.Config(t)
	lim := &cfg.Gateway.Limits.REST
	lim.PostRate, lim.PostBurst = 0.001, 3
	lim.ServicePostRate, lim.ServicePostBurst = 0.001, 5
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := n.Token(t, "alice")
	for i := range 3 {
		status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", alice, map[string]any{"messageId": fmt.Sprint("a", i), "content": "hi"})
		require.Equal(t, http.StatusAccepted, status, string(body))
	}
	resp, body := doResp(t, n, "POST", "/api/v1/chats/"+chat+"/messages", alice, map[string]any{"messageId": "a3", "content": "hi"})
	rateLimitedBody(t, resp, body)

	svc := n.ServiceToken(t, "billing")
	for i := range 5 {
		status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", svc, map[string]any{"messageId": fmt.Sprint("s", i), "content": "invoice", "senderId": "billing-bot"})
		require.Equal(t, http.StatusAccepted, status, string(body))
	}
	resp, body = doResp(t, n, "POST", "/api/v1/chats/"+chat+"/messages", svc, map[string]any{"messageId": "s5", "content": "invoice", "senderId": "billing-bot"})
	rateLimitedBody(t, resp, body)

	// History holds the 8 accepted posts (plus the creation event), not the refused.
	require.Eventually(t, func() bool {
		status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages?limit=100", alice, nil)
		if status != http.StatusOK {
			return false
		}
		var page struct {
			Messages []protocol.Message `json:"messages"`
		}
		_ = json.Unmarshal(body, &page)
		ids := map[string]bool{}
		for _, m := range page.Messages {
			ids[m.MessageID] = true
		}
		return ids["a2"] && ids["s4"] && !ids["a3"] && !ids["s5"]
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // a refused post that slipped through would be sequenced by now
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages?limit=100", alice, nil)
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, string(body), `"a3"`)
	require.NotContains(t, string(body), `"s5"`)
}

// TestPushFanOutPerSenderIsBounded: one sender's posts into a large group of
// offline members cause at most notifier.sender-push-burst notifications (plus the
// rate); the rest are counted as suppressed, and the messages are delivered as
// always.
func TestPushFanOutPerSenderIsBounded(t *testing.T) {
	cfg := presenceConfig(t)
	cfg.Notifier.Window = time.Second
	cfg.Notifier.SenderPushRate, cfg.Notifier.SenderPushBurst = 0.001, 10
	n := testutil.StartNatter(t, cfg)
	members := make([]string, 60)
	for i := range members {
		members[i] = fmt.Sprintf("m%02d", i)
	}
	chat := n.CreateChat(t, "mallory", "group", "spam", members...)
	var mu sync.Mutex
	got := map[string]int{}
	sub, err := n.NC.Subscribe(n.Config.NATS.Subjects().Notify("*"), func(m *nats.Msg) {
		mu.Lock()
		got[m.Subject]++
		mu.Unlock()
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		s := 0
		for _, c := range got {
			s += c
		}
		return s
	}

	sendBurst(t, n, "mallory", chat, "spam", 3)
	// On a loaded machine the three messages, the windows they open and the
	// notifications of those that close take long and overlap: count only once the
	// notifier is idle (notifierIdle), then exactly.
	notifierIdle(t, n, 90*time.Second)
	assert.Eventually(t, func() bool { return total() >= 10 }, 10*time.Second, 20*time.Millisecond)
	if total() != 10 || n.Notifier.Sent() != 10 {
		t.Fatalf("3 posts to 60 offline members: 10 pushes, not 60 or 180; got %d; sent %d, suppressed %d",
			total(), n.Notifier.Sent(), n.Notifier.Suppressed())
	}
	require.GreaterOrEqual(t, n.Notifier.Suppressed(), int64(50), "60 recipients, 10 pushes: the other 50 are suppressed")
	require.Regexp(t, `^[1-9]\d+$`, metricValue(t, n, "natter_notifier_push_suppressed_total"))
	require.Equal(t, "10", metricValue(t, n, "natter_notifier_sent_total"))

	// Another sender is not affected by mallory's budget, and the messages
	// themselves reached the members.
	chat2 := n.CreateChat(t, "alice", "group", "team", "m00", "m01")
	sendBurst(t, n, "alice", chat2, "hello", 1)
	notifierIdle(t, n, 90*time.Second)
	assert.Eventually(t, func() bool { return total() >= 12 }, 10*time.Second, 20*time.Millisecond)
	if total() != 12 {
		mu.Lock()
		t.Fatalf("alice to m00 and m01: 2 more pushes; pushes by subject: %v; sent %d, suppressed %d", got, n.Notifier.Sent(), n.Notifier.Suppressed())
	}
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages?limit=10", n.Token(t, "m59"), nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), "spam message 3")
}

// notifierIdle waits until n's notifier has handled everything: every sequenced
// message (its log consumer has nothing pending or unacknowledged), no coalescing
// window is open, and every closed window's notification is sent (the window
// consumer has nothing pending or unacknowledged; a notification is published
// before its window is acknowledged). No push comes after that but the delivery of
// those already published.
func notifierIdle(t *testing.T, n *testutil.Natter, d time.Duration) {
	t.Helper()
	drained := func(stream, name string) bool {
		c, err := n.JS.Consumer(ctxT(t, 5*time.Second), stream, name)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctxT(t, 5*time.Second))
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	}
	require.Eventually(t, func() bool {
		if !drained(subjects.LogStream, subjects.NotifierConsumer) {
			return false
		}
		kv, err := n.JS.KeyValue(ctxT(t, 5*time.Second), notifier.WindowBucket)
		if err != nil {
			return false
		}
		keys, err := kv.ListKeys(ctxT(t, 5*time.Second))
		if err != nil {
			return false
		}
		open := 0
		for range keys.Keys() {
			open++
		}
		return open == 0 && drained("KV_"+notifier.WindowBucket, subjects.NotifierWindowConsumer)
	}, d, 50*time.Millisecond, "the notifier handles every message and window")
}

// metricValue is the value of an unlabelled metric on n's admin /metrics.
func metricValue(t *testing.T, n *testutil.Natter, name string) string {
	t.Helper()
	status, body := getURL(t, "http://"+n.Admin.Addr().String()+"/metrics")
	require.Equal(t, http.StatusOK, status)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return ""
}
