package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// bigGroupSize is the group built by the large-group tests: the default
// gateway.max-group-members.
const bigGroupSize = 100_000

// TestBigGroupBulkSQLite builds a 100,000-member group with bulk adds on SQLite
// (see bigGroup).
func TestBigGroupBulkSQLite(t *testing.T) {
	bigGroup(t, testutil.Config(t))
}

// TestBigGroupBulkCassandra is TestBigGroupBulkSQLite on a Cassandra node.
func TestBigGroupBulkCassandra(t *testing.T) {
	bigGroup(t, cassandraConfig(t, cassandraHosts(t)))
}

type changeAnswer struct {
	ChatID  string   `json:"chatId"`
	Changed bool     `json:"changed"`
	Seq     uint64   `json:"seq"`
	UserIDs []string `json:"userIds"`
	Skipped []string `json:"skipped"`
}

type errorAnswer struct {
	Error struct {
		Code protocol.Code `json:"code"`
	} `json:"error"`
}

// bigGroup: a group of bigGroupSize members is created with bulk calls (a service
// token with chats:admin, 1,000 users a call), its members are paged through, a
// member added and removed in bulk receives and then stops receiving, and the
// limits answer with stable codes.
func bigGroup(t *testing.T, cfg *app.Config) {
	cfg.Gateway.MaxGroupMembers = bigGroupSize + 3
	cfg.Sequencer.MaxGroupMembers = bigGroupSize + 3
	cfg.Gateway.Consent.DirectAdds = false // a user's adds follow the consent rule; a service's are direct
	n := testutil.StartNatter(t, cfg)
	svc := n.ScopedServiceToken(t, "importer", protocol.ScopeChatsAdmin)
	chat := n.CreateChat(t, "owner", "group", "everyone")
	path := "/api/v1/chats/" + chat + "/members"
	status, body := n.Do(t, "POST", path, svc, map[string]any{"userIds": []string{"late"}})
	require.Equal(t, http.StatusCreated, status, "%s", body)

	// A connected member and a user added later, both connected from the start.
	late := n.Dial(t, "late")
	start := time.Now()
	users := make([]string, 0, protocol.MaxBulkMembers)
	for i := 0; i < bigGroupSize; i++ {
		users = append(users, fmt.Sprintf("u%06d", i))
		if len(users) < protocol.MaxBulkMembers && i < bigGroupSize-1 {
			continue
		}
		status, body := n.Do(t, "POST", path, svc, map[string]any{"userIds": users})
		require.Contains(t, []int{http.StatusCreated, http.StatusAccepted}, status, "%s", body)
		var ch changeAnswer
		require.NoError(t, jsonUnmarshal(body, &ch))
		require.True(t, ch.Changed)
		require.Equal(t, users, ch.UserIDs)
		users = users[:0]
		if done := i + 1; done%20_000 == 0 {
			t.Logf("%d members added after %s", done, time.Since(start).Round(time.Millisecond))
		}
	}
	t.Logf("%d members added in %d bulk calls in %s", bigGroupSize, bigGroupSize/protocol.MaxBulkMembers, time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool {
		c, err := n.Store.MemberCount(context.Background(), chat)
		return err == nil && c == bigGroupSize+2
	}, 60*time.Second, 100*time.Millisecond)

	// Adding them again changes nothing.
	status, body = n.Do(t, "POST", path, svc, map[string]any{"userIds": []string{"u000001", "u000002"}})
	require.Equal(t, http.StatusOK, status, "%s", body)
	var again changeAnswer
	require.NoError(t, jsonUnmarshal(body, &again))
	require.False(t, again.Changed)
	require.Equal(t, []string{"u000001", "u000002"}, again.Skipped)

	// Paging: every member once, in order, 1,000 a page.
	tok := n.Token(t, "u000042")
	seen, after := 0, ""
	prev := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, bigGroupSize/1000+5)
		q := "?limit=1000"
		if after != "" {
			q += "&after=" + after
		}
		status, body := n.Do(t, "GET", path+q, tok, nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
		var page struct {
			Members []store.Member `json:"members"`
			Next    string         `json:"next"`
		}
		require.NoError(t, jsonUnmarshal(body, &page))
		for _, m := range page.Members {
			require.Greater(t, m.UserID, prev)
			prev = m.UserID
		}
		seen += len(page.Members)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	require.Equal(t, bigGroupSize+2, seen)

	// A member added in bulk hears of it and then receives the conversation.
	newbie := n.Dial(t, "newbie")
	status, body = n.Do(t, "POST", path, svc, map[string]any{"userIds": []string{"newbie", "u000001"}})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	f := nextFrame(t, newbie, 20*time.Second, "members_added", func(f *protocol.Frame) bool {
		return f.Type == protocol.FrameMessage && f.MessageType == protocol.TypeSystem
	})
	var ev protocol.SystemEvent
	require.NoError(t, jsonUnmarshal(f.Meta, &ev))
	require.Equal(t, protocol.EventMembersAdded, ev.Event)
	require.Equal(t, []string{"newbie"}, ev.UserIDs, "only the user who was not a member is named")
	owner := n.Dial(t, "owner")
	_, err := owner.Send(ctxT(t, 10*time.Second), chat, "hello-1", "hello everyone")
	require.NoError(t, err)
	nextFrame(t, newbie, 20*time.Second, "hello-1 to newbie", func(f *protocol.Frame) bool { return f.MessageID == "hello-1" })
	nextFrame(t, late, 20*time.Second, "hello-1 to late", func(f *protocol.Frame) bool { return f.MessageID == "hello-1" })

	// Removed in bulk: the removal arrives, nothing after it does, and sends are refused.
	status, body = n.Do(t, "DELETE", path, svc, map[string]any{"userIds": []string{"newbie", "late", "nobody"}})
	require.Equal(t, http.StatusOK, status, "%s", body)
	var rm changeAnswer
	require.NoError(t, jsonUnmarshal(body, &rm))
	require.Equal(t, []string{"late", "newbie"}, rm.UserIDs)
	require.Equal(t, []string{"nobody"}, rm.Skipped)
	nextFrame(t, newbie, 20*time.Second, "members_removed to newbie", func(f *protocol.Frame) bool {
		return f.Type == protocol.FrameMessage && f.MessageType == protocol.TypeSystem &&
			jsonUnmarshal(f.Meta, &ev) == nil && ev.Event == protocol.EventMembersRemoved
	})
	nextFrame(t, late, 20*time.Second, "members_removed to late", func(f *protocol.Frame) bool {
		return f.Type == protocol.FrameMessage && f.MessageType == protocol.TypeSystem &&
			jsonUnmarshal(f.Meta, &ev) == nil && ev.Event == protocol.EventMembersRemoved
	})
	_, err = owner.Send(ctxT(t, 10*time.Second), chat, "hello-2", "after the removal")
	require.NoError(t, err)
	keep := n.Dial(t, "u000001")
	_, err = owner.Send(ctxT(t, 10*time.Second), chat, "hello-3", "and again")
	require.NoError(t, err)
	nextFrame(t, keep, 20*time.Second, "hello-3 to a member", func(f *protocol.Frame) bool { return f.MessageID == "hello-3" })
	quiet(t, newbie, time.Second)
	quiet(t, late, 100*time.Millisecond)
	_, err = late.Send(ctxT(t, 10*time.Second), chat, "late-1", "am I still here?")
	require.Error(t, err, "a removed member cannot send")

	// Limits, with stable codes; nothing changes.
	over := make([]string, protocol.MaxBulkMembers+1)
	for i := range over {
		over[i] = fmt.Sprintf("x%05d", i)
	}
	for _, tc := range []struct {
		name   string
		method string
		body   any
		status int
		code   protocol.Code
	}{
		{"too many in one call", "POST", map[string]any{"userIds": over}, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge},
		{"none", "POST", map[string]any{"userIds": []string{}}, http.StatusBadRequest, protocol.CodeBadRequest},
		{"bad id", "POST", map[string]any{"userIds": []string{"a.b"}}, http.StatusBadRequest, protocol.CodeInvalidID},
		{"both forms", "POST", map[string]any{"userId": "x", "userIds": []string{"y"}}, http.StatusBadRequest, protocol.CodeBadRequest},
		{"past the group limit", "POST", map[string]any{"userIds": []string{"x1", "x2", "x3"}}, http.StatusConflict, protocol.CodeGroupFull},
		{"remove too many", "DELETE", map[string]any{"userIds": over}, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.Do(t, tc.method, path, svc, tc.body)
			require.Equal(t, tc.status, status, "%s", body)
			var e errorAnswer
			require.NoError(t, jsonUnmarshal(body, &e))
			require.Equal(t, tc.code, e.Error.Code)
		})
	}
	count, err := n.Store.MemberCount(context.Background(), chat)
	require.NoError(t, err)
	require.Equal(t, bigGroupSize+1, count, "the refused calls changed nothing")
	// A user admin's bulk add follows the consent rule: who shares no chat with
	// them is invited instead (docs/protocol.md, "Invitations").
	status, body = n.Do(t, "POST", path, n.Token(t, "owner"), map[string]any{"userIds": []string{"u000001", "stranger1"}})
	require.Equal(t, http.StatusAccepted, status, "%s", body)
	var inv struct {
		Changed bool     `json:"changed"`
		Invited []string `json:"invited"`
		Skipped []string `json:"skipped"`
	}
	require.NoError(t, jsonUnmarshal(body, &inv))
	require.False(t, inv.Changed)
	require.Equal(t, []string{"stranger1"}, inv.Invited)
	require.Equal(t, []string{"u000001"}, inv.Skipped)
	// A plain member may not add anyone.
	status, _ = n.Do(t, "POST", path, tok, map[string]any{"userIds": []string{"x9"}})
	require.Equal(t, http.StatusForbidden, status)
}
