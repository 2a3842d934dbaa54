package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

func TestDirectChatDelivery(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	again := n.CreateChat(t, "bob", "direct", "", "alice")
	require.Equal(t, chat, again, "a direct chat between the same two users is returned again")

	alice1, alice2, bob := n.Dial(t, "alice"), n.Dial(t, "alice"), n.Dial(t, "bob")
	require.Equal(t, "alice", alice1.Connected.UserID)
	ack, err := alice1.Send(ctxT(t, 5*time.Second), chat, "hello-1", "hi bob")
	require.NoError(t, err)
	require.Equal(t, protocol.FrameAck, ack.Type)
	require.Equal(t, "hello-1", ack.MessageID)

	for _, c := range []struct {
		name string
		f    *protocol.Frame
	}{
		{"bob", next(t, bob, protocol.FrameMessage, 5*time.Second)},
		{"alice's second device", next(t, alice2, protocol.FrameMessage, 5*time.Second)},
		{"alice's sending device", next(t, alice1, protocol.FrameMessage, 5*time.Second)},
	} {
		require.EqualValues(t, 1, c.f.Seq, c.name)
		require.Equal(t, "hello-1", c.f.MessageID, c.name)
		require.Equal(t, "alice", c.f.SenderID, c.name)
		require.Equal(t, "hi bob", c.f.Content, c.name)
		require.Equal(t, chat, c.f.ChatID, c.name)
		require.Equal(t, protocol.TypeText, c.f.MessageType, c.name)
		require.NotZero(t, c.f.Timestamp, c.name)
	}
}

func TestGroupOrderIsTotalAndFIFO(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "ann", "group", "three", "ben", "cid")
	ann, ben, cid := n.Dial(t, "ann"), n.Dial(t, "ben"), n.Dial(t, "cid")
	const per = 100
	var wg sync.WaitGroup
	send := func(name string) {
		defer wg.Done()
		c := ann
		if name == "ben" {
			c = ben
		}
		for i := 0; i < per; i++ {
			_, err := c.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("%s-%03d", name, i), fmt.Sprintf("%s %d", name, i))
			if err != nil {
				t.Errorf("%s send %d: %v", name, i, err)
				return
			}
		}
	}
	wg.Add(2)
	go send("ann")
	go send("ben")
	var got [3][]*protocol.Frame
	got[0] = collect(t, ann, 2*per, 20*time.Second)
	got[1] = collect(t, ben, 2*per, 20*time.Second)
	got[2] = collect(t, cid, 2*per, 20*time.Second)
	wg.Wait()
	for i, frames := range got {
		last := map[string]int{"ann": -1, "ben": -1}
		for j, f := range frames {
			require.EqualValues(t, j+1, f.Seq, "member %d: seqs 1..200 with no gap", i)
			require.Equal(t, got[0][j].MessageID, f.MessageID, "member %d sees the same order as member 0", i)
			k, err := strconv.Atoi(f.MessageID[len(f.MessageID)-3:])
			require.NoError(t, err)
			require.Greater(t, k, last[f.SenderID], "sender FIFO for %s", f.SenderID)
			last[f.SenderID] = k
		}
	}
}

func TestDuplicateMessageIDStoredOnce(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	_, err := alice.Send(ctxT(t, 5*time.Second), chat, "same", "once")
	require.NoError(t, err)
	ack, err := alice.Send(ctxT(t, 5*time.Second), chat, "same", "once")
	require.NoError(t, err)
	require.True(t, ack.Duplicate, "the second ack says it was a duplicate")
	_, err = alice.Send(ctxT(t, 5*time.Second), chat, "other", "after")
	require.NoError(t, err)
	msgs := collect(t, bob, 2, 5*time.Second)
	require.Equal(t, "same", msgs[0].MessageID)
	require.Equal(t, "other", msgs[1].MessageID)
	require.EqualValues(t, 2, msgs[1].Seq)
	quiet(t, bob, 300*time.Millisecond)
	require.Eventually(t, func() bool {
		page := history(t, n, "alice", chat, "")
		return len(page.Messages) == 2
	}, 5*time.Second, 50*time.Millisecond)
}

type page struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"hasMore"`
	Cursor   struct {
		Before string `json:"before"`
		After  string `json:"after"`
	} `json:"cursor"`
}

func history(t *testing.T, n *testutil.Natter, user, chat, query string) page {
	t.Helper()
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages"+query, n.Token(t, user), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var p page
	require.NoError(t, json.Unmarshal(body, &p))
	return p
}

func seqsOf(ms []protocol.Message) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func TestHistoryPagingAndRestart(t *testing.T) {
	cfg := testutil.Config(t)
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := n.Dial(t, "alice")
	for i := 1; i <= 25; i++ {
		_, err := alice.Send(ctxT(t, 5*time.Second), chat, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i))
		require.NoError(t, err)
	}
	collect(t, alice, 25, 10*time.Second)
	// Newest first by default, paging back with cursor.before.
	p1 := history(t, n, "bob", chat, "?limit=10")
	require.Equal(t, []uint64{25, 24, 23, 22, 21, 20, 19, 18, 17, 16}, seqsOf(p1.Messages))
	require.True(t, p1.HasMore)
	p2 := history(t, n, "bob", chat, "?limit=10&before="+p1.Cursor.Before)
	require.Equal(t, []uint64{15, 14, 13, 12, 11, 10, 9, 8, 7, 6}, seqsOf(p2.Messages))
	p3 := history(t, n, "bob", chat, "?limit=10&before="+p2.Cursor.Before)
	require.Equal(t, []uint64{5, 4, 3, 2, 1}, seqsOf(p3.Messages))
	require.False(t, p3.HasMore)
	// Forward with cursor.after.
	f1 := history(t, n, "bob", chat, "?limit=10&after=0")
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seqsOf(f1.Messages))
	f2 := history(t, n, "bob", chat, "?limit=10&after="+f1.Cursor.After)
	require.Equal(t, []uint64{11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, seqsOf(f2.Messages))
	require.Equal(t, "text 11", f2.Messages[0].Content)

	// Wait for the persister, then restart everything on the same data directory.
	require.Eventually(t, func() bool {
		last, err := n.Store.LastSeq(ctxT(t, time.Second), chat)
		return err == nil && last == 25
	}, 10*time.Second, 20*time.Millisecond)
	n.Stop()
	n2 := testutil.StartNatter(t, cfg)
	after := history(t, n2, "alice", chat, "?limit=100")
	require.Len(t, after.Messages, 25, "history intact after restart")
	alice = n2.Dial(t, "alice")
	_, err := alice.Send(ctxT(t, 5*time.Second), chat, "m26", "after restart")
	require.NoError(t, err)
	m := next(t, alice, protocol.FrameMessage, 5*time.Second)
	require.EqualValues(t, 26, m.Seq, "the sequence continues, no seq reused")
}

func TestHistoryFrame(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := n.Dial(t, "alice")
	for i := 1; i <= 5; i++ {
		_, err := alice.Send(ctxT(t, 5*time.Second), chat, fmt.Sprintf("m%d", i), "x")
		require.NoError(t, err)
	}
	collect(t, alice, 5, 5*time.Second) // sequenced (history may still merge the log tail)
	bob := n.Dial(t, "bob")
	res, err := bob.HistoryBefore(ctxT(t, 5*time.Second), chat, 4, 2)
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 2}, seqsOf(res.Messages))
	res, err = bob.HistoryAfter(ctxT(t, 5*time.Second), chat, 3, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{4, 5}, seqsOf(res.Messages))
	require.False(t, res.HasMore)

	// "after": 0 pages forward from seq 1 (it once answered with the newest page, so
	// a client filling a gap at seq 1 never got it); no after pages back from the end.
	res, err = bob.HistoryAfter(ctxT(t, 5*time.Second), chat, 0, 3)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, seqsOf(res.Messages))
	require.True(t, res.HasMore)
	res, err = bob.HistoryBefore(ctxT(t, 5*time.Second), chat, 0, 3)
	require.NoError(t, err)
	require.Equal(t, []uint64{5, 4, 3}, seqsOf(res.Messages))
	require.NoError(t, bob.WriteRaw(ctxT(t, 5*time.Second), []byte(`{"type":"history","id":"raw0","chatId":"`+chat+`","after":0,"limit":2}`)))
	raw := nextFrame(t, bob, 5*time.Second, "history_result raw0", func(f *protocol.Frame) bool { return f.ID == "raw0" })
	require.Equal(t, []uint64{1, 2}, seqsOf(raw.Messages))
	_, err = bob.HistoryAfter(ctxT(t, 5*time.Second), chat, 5, 10)
	require.NoError(t, err, "an empty page is an answer, not an error")

	// Both bounds contradict each other: a bad_request, as on REST.
	require.NoError(t, bob.WriteRaw(ctxT(t, 5*time.Second), []byte(`{"type":"history","id":"both","chatId":"`+chat+`","after":1,"before":4}`)))
	bad := nextFrame(t, bob, 5*time.Second, "error both", func(f *protocol.Frame) bool { return f.ID == "both" })
	require.Equal(t, protocol.FrameError, bad.Type)
	require.Equal(t, protocol.CodeBadRequest, bad.Code)
}
