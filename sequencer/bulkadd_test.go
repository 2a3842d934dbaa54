package sequencer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
)

// TestBulkAddToLargeChatBytesPerUser: above the large-chat threshold the sequencer
// tells each added user on their own subject (their gateway joins the chat's log
// subject on it). Each copy names the chat and that user with the number added,
// not all k users: O(k) bytes per event rather than O(k²). The log holds the
// whole event, which is what history shows. The bytes per added user are logged
// (docs/performance.md, "Bulk adds and the member cap").
func TestBulkAddToLargeChatBytesPerUser(t *testing.T) {
	const k = protocol.MaxBulkMembers
	e := setup(t)
	e.cfg.LargeChatThreshold = 10
	var mu sync.Mutex
	copies := map[string][][]byte{} // user subject -> what it received
	bytes := 0
	sub, err := e.nc.Subscribe(e.subj.User("*"), func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		copies[m.Subject] = append(copies[m.Subject], m.Data)
		bytes += len(m.Data)
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, e.nc.Flush())

	users := make([]string, k)
	for i := range users {
		users[i] = fmt.Sprintf("user%07d", i) // 11 bytes, as the bench's IDs
	}
	ev := protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: users, By: "alice"}
	meta, err := json.Marshal(ev)
	require.NoError(t, err)
	m := &protocol.Message{ChatID: "c1", MessageID: "add1", SenderID: "alice", MessageType: protocol.TypeSystem, Meta: meta}
	msg := &nats.Msg{Subject: e.subj.In("c1"), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "c1:add1")
	msg.Header.Set(protocol.HeaderChange, "1") // as a gateway publishes a change it authorized
	_, err = e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
	e.run(t)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(copies) >= k
	}, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, e.nc.Flush())
	mu.Lock()
	defer mu.Unlock()
	t.Logf("members_added of %d users to a large chat: %d bytes on user subjects, %d per added user", k, bytes, bytes/k)

	logged := e.logMessage(t, "c1", 1)
	require.Equal(t, users, sysEvent(t, logged).UserIDs, "the log (history) names every user added")
	for _, u := range users {
		got := copies[e.subj.User(u)]
		require.Len(t, got, 1, "%s is told once", u)
		f, err := protocol.DecodeMessageFrame(got[0])
		require.NoError(t, err)
		require.Equal(t, logged.Seq, f.Seq)
		require.Equal(t, logged.MessageID, f.MessageID)
		require.Equal(t, protocol.TypeSystem, f.MessageType)
		ev := sysEvent(t, f)
		require.Equal(t, protocol.EventMembersAdded, ev.Event)
		require.Equal(t, []string{u}, ev.UserIDs, "its copy names the user it goes to")
		require.Equal(t, k, ev.Total, "and how many were added")
		require.Equal(t, "alice", ev.By)
	}
	require.Len(t, copies, k, "nobody else is told on their subject: the chat is large")
	require.Less(t, bytes/k, 512, "bytes per added user do not grow with the event")
}

// logMessage returns chat's log message of seq.
func (e *env) logMessage(t *testing.T, chat string, seq uint64) protocol.Message {
	t.Helper()
	st, err := e.js.Stream(context.Background(), subjects.LogStream)
	require.NoError(t, err)
	raw, err := st.GetLastMsgForSubject(context.Background(), e.subj.Log(chat))
	require.NoError(t, err)
	m, err := protocol.DecodeMessageFrame(raw.Data)
	require.NoError(t, err)
	require.Equal(t, seq, m.Seq)
	return m
}

func sysEvent(t *testing.T, m protocol.Message) protocol.SystemEvent {
	t.Helper()
	var ev protocol.SystemEvent
	require.NoError(t, json.Unmarshal(m.Meta, &ev))
	require.True(t, strings.HasPrefix(ev.Event, "member"))
	return ev
}
