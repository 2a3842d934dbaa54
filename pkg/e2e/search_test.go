package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

type searchResult struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"hasMore"`
	Cursor   string             `json:"cursor"`
}

// searchAs runs GET /api/v1/search as user and returns the result's chat/seq keys.
func searchAs(t *testing.T, n *testutil.Natter, user string, q url.Values) (searchResult, []string) {
	t.Helper()
	var r searchResult
	status, body := call(t, n, "GET", "/api/v1/search?"+q.Encode(), user, nil, &r)
	require.Equal(t, http.StatusOK, status, string(body))
	var keys []string
	for _, m := range r.Messages {
		keys = append(keys, fmt.Sprintf("%s/%d", m.ChatID, m.Seq))
	}
	return r, keys
}

func TestSearchOverTheCallersChats(t *testing.T) {
	searchOverTheCallersChats(t, testutil.StartNatter(t, testutil.Config(t)))
}

// The same, on Cassandra: SAI-indexed search through the whole server.
func TestCassandraSearchOverTheCallersChats(t *testing.T) {
	searchOverTheCallersChats(t, testutil.StartNatter(t, cassandraConfig(t, cassandraHosts(t))))
}

func searchOverTheCallersChats(t *testing.T, n *testutil.Natter) {
	one := n.CreateChat(t, "alice", "group", "one", "bob", "carol")
	two := n.CreateChat(t, "alice", "direct", "", "dave")
	alice, bob, dave := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "dave")
	ctx := ctxT(t, 20*time.Second)
	for _, s := range []struct {
		chat, id   string
		text       string
		sendAsBob  bool
		sendAsDave bool
	}{
		{chat: one, id: "o1", text: "Deploy the Café release on Friday"},
		{chat: one, id: "o2", text: "friday works for me", sendAsBob: true},
		{chat: two, id: "t1", text: "Private: the cafe password is swordfish", sendAsDave: true},
		{chat: one, id: "o3", text: "nothing to see"},
	} {
		c := alice
		if s.sendAsBob {
			c = bob
		} else if s.sendAsDave {
			c = dave
		}
		_, err := c.Send(ctx, s.chat, s.id, s.text)
		require.NoError(t, err)
	}
	collect(t, alice, 4, 5*time.Second)
	// Search reads the store: wait for the persister.
	require.Eventually(t, func() bool {
		_, keys := searchAs(t, n, "alice", url.Values{"q": {"cafe"}})
		return len(keys) == 2
	}, 10*time.Second, 20*time.Millisecond)

	r, keys := searchAs(t, n, "alice", url.Values{"q": {"CAFÉ"}})
	require.ElementsMatch(t, []string{two + "/1", one + "/1"}, keys, "across the caller's chats, case and accents folded")
	requireNewestFirst(t, r.Messages) // chats are sequenced independently: either may be newer
	_, keys = searchAs(t, n, "bob", url.Values{"q": {"cafe"}})
	require.Equal(t, []string{one + "/1"}, keys, "never another's chat")
	_, keys = searchAs(t, n, "mallory", url.Values{"q": {"cafe"}})
	require.Empty(t, keys)
	_, keys = searchAs(t, n, "alice", url.Values{"q": {"friday"}, "chatId": {one}})
	require.Equal(t, []string{one + "/2", one + "/1"}, keys)
	r, keys = searchAs(t, n, "alice", url.Values{"q": {"friday"}, "limit": {"1"}})
	require.Equal(t, []string{one + "/2"}, keys)
	require.True(t, r.HasMore)
	_, keys = searchAs(t, n, "alice", url.Values{"q": {"friday"}, "limit": {"1"}, "cursor": {r.Cursor}})
	require.Equal(t, []string{one + "/1"}, keys, "the cursor continues")
	_, keys = searchAs(t, n, "alice", url.Values{"q": {"rel"}})
	require.Equal(t, []string{one + "/1"}, keys, "the last word matches as a prefix")

	// Edits and deletes change what is found, in their current state.
	_, err := alice.Edit(ctx, one, "o1", "Deploy the bakery release on Friday")
	require.NoError(t, err)
	_, err = bob.Delete(ctx, one, "o2")
	require.NoError(t, err)
	// Both operations are persisted on their own schedule: wait for each.
	require.Eventually(t, func() bool {
		_, edited := searchAs(t, n, "bob", url.Values{"q": {"bakery"}})
		_, deleted := searchAs(t, n, "bob", url.Values{"q": {"works"}})
		return len(edited) == 1 && len(deleted) == 0
	}, 10*time.Second, 20*time.Millisecond)
	r, _ = searchAs(t, n, "bob", url.Values{"q": {"bakery"}})
	require.True(t, r.Messages[0].Edited)
	_, keys = searchAs(t, n, "bob", url.Values{"q": {"cafe"}})
	require.Empty(t, keys, "the old text is not found")
	_, keys = searchAs(t, n, "bob", url.Values{"q": {"works"}})
	require.Empty(t, keys, "a deleted message is not found")

	// A member who leaves no longer finds the chat's messages.
	status, body := call(t, n, "DELETE", "/api/v1/chats/"+one+"/members/bob", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	_, keys = searchAs(t, n, "bob", url.Values{"q": {"bakery"}})
	require.Empty(t, keys)

	for _, tc := range []struct {
		name, user, query string
		status            int
		code              protocol.Code
	}{
		{"no token", "", "q=cafe", 401, protocol.CodeUnauthorized},
		{"no q", "alice", "", 400, protocol.CodeBadRequest},
		{"blank q", "alice", "q=%20%20", 400, protocol.CodeBadRequest},
		{"only punctuation", "alice", "q=%22%2A%28", 400, protocol.CodeBadRequest},
		{"q too long", "alice", "q=" + strings.Repeat("a", 257), 413, protocol.CodeTooLarge},
		{"bad limit", "alice", "q=cafe&limit=0", 400, protocol.CodeBadRequest},
		{"limit too big", "alice", "q=cafe&limit=101", 400, protocol.CodeBadRequest},
		{"bad cursor", "alice", "q=cafe&cursor=x", 400, protocol.CodeBadRequest},
		{"invalid chat", "alice", "q=cafe&chatId=a.b", 400, protocol.CodeInvalidID},
		{"non-member chat", "bob", "q=cafe&chatId=" + two, 403, protocol.CodeNotMember},
		{"removed member's chat", "bob", "q=cafe&chatId=" + one, 403, protocol.CodeNotMember},
		{"unknown chat", "alice", "q=cafe&chatId=nosuchchat", 403, protocol.CodeNotMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, n, "GET", "/api/v1/search?"+tc.query, tc.user, nil, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
}

// requireNewestFirst checks search results are ordered by timestamp, then chat ID,
// then seq, all descending.
func requireNewestFirst(t *testing.T, ms []protocol.Message) {
	t.Helper()
	for i := 1; i < len(ms); i++ {
		a, b := ms[i-1], ms[i]
		require.True(t, a.Timestamp > b.Timestamp || a.Timestamp == b.Timestamp &&
			(a.ChatID > b.ChatID || a.ChatID == b.ChatID && a.Seq > b.Seq), "result %d is newer than %d", i, i-1)
	}
}
