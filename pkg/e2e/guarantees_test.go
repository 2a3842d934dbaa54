package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestResumeAtTheSeam: messages sent while a client reconnects arrive exactly once
// and in order: history first, then live, with nothing doubled at the seam.
func TestResumeAtTheSeam(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := n.Dial(t, "alice")
	const total = 300
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for i := 1; i <= total; i++ {
			if _, err := alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%03d", i), "x"); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var last uint64
	for round := 0; round < 5; round++ {
		bob, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, "bob"), &client.Options{Resume: true})
		require.NoError(t, err)
		res, err := bob.Sync(ctxT(t, 10*time.Second), []protocol.ChatCursor{{ChatID: chat, Seq: last}})
		require.NoError(t, err)
		require.Len(t, res.Chats, 1)
		// Read a while, strictly in order, then drop the connection mid-stream.
		deadline := time.After(60 * time.Millisecond)
	read:
		for {
			select {
			case f := <-bob.Frames():
				if f == nil {
					break read
				}
				if f.Type != protocol.FrameMessage {
					continue
				}
				require.EqualValues(t, last+1, f.Seq, "round %d: exactly once, in order", round)
				last = f.Seq
			case <-deadline:
				break read
			}
		}
		bob.CloseNow()
	}
	<-sendDone
	// Final resume collects the rest.
	bob, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, "bob"), &client.Options{Resume: true, TokenInFrame: true})
	require.NoError(t, err)
	defer bob.CloseNow()
	_, err = bob.Sync(ctxT(t, 10*time.Second), []protocol.ChatCursor{{ChatID: chat, Seq: last}})
	require.NoError(t, err)
	for last < total {
		f := next(t, bob, protocol.FrameMessage, 10*time.Second)
		require.EqualValues(t, last+1, f.Seq)
		last = f.Seq
	}
	quiet(t, bob, 200*time.Millisecond)
}

func TestSyncWithoutCursorsListsChats(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	c1 := n.CreateChat(t, "alice", "direct", "", "bob")
	c2 := n.CreateChat(t, "alice", "group", "g", "carol")
	alice := n.Dial(t, "alice")
	for i := 0; i < 3; i++ {
		_, err := alice.Send(ctxT(t, 5*time.Second), c1, fmt.Sprintf("a%d", i), "x")
		require.NoError(t, err)
	}
	collect(t, alice, 3, 5*time.Second)
	res, err := alice.Sync(ctxT(t, 5*time.Second), nil)
	require.NoError(t, err)
	got := map[string]uint64{}
	for _, c := range res.Chats {
		got[c.ChatID] = c.Seq
	}
	require.Equal(t, map[string]uint64{c1: 3, c2: 0}, got)
	_, err = alice.Sync(ctxT(t, 5*time.Second), []protocol.ChatCursor{{ChatID: "someone-elses", Seq: 0}})
	require.Equal(t, protocol.CodeNotMember, errCode(t, err))
	many := make([]protocol.ChatCursor, 1001)
	for i := range many {
		many[i] = protocol.ChatCursor{ChatID: fmt.Sprintf("c%d", i)}
	}
	_, err = alice.Sync(ctxT(t, 5*time.Second), many)
	require.Equal(t, protocol.CodeTooLarge, errCode(t, err))
}

func TestReceiptsMoveForwardOnly(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	for i := 1; i <= 5; i++ {
		_, err := alice.Send(ctxT(t, 5*time.Second), chat, fmt.Sprintf("m%d", i), "x")
		require.NoError(t, err)
	}
	collect(t, bob, 5, 5*time.Second)
	ctx := ctxT(t, 10*time.Second)
	// bob's unread count is 5 before any receipt (once persisted).
	require.Eventually(t, func() bool { return listChats(t, n, "bob")[0].Unread == 5 }, 5*time.Second, 20*time.Millisecond)

	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameDelivered, ChatID: chat, Seq: 5}))
	r := next(t, alice, protocol.FrameReceipt, 5*time.Second)
	require.Equal(t, "bob", r.UserID)
	require.EqualValues(t, 5, r.Delivered)
	require.EqualValues(t, 0, r.Read)
	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 3}))
	r = next(t, alice, protocol.FrameReceipt, 5*time.Second)
	require.EqualValues(t, 5, r.Delivered)
	require.EqualValues(t, 3, r.Read)
	// A lower watermark is ignored: no receipt, state unchanged.
	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 2}))
	// Beyond the last message is clamped.
	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 999}))
	r = next(t, alice, protocol.FrameReceipt, 5*time.Second)
	require.EqualValues(t, 5, r.Read, "the lower value sent before was ignored; 999 clamps to the last seq")
	chats := listChats(t, n, "bob")
	require.EqualValues(t, 0, chats[0].Unread)
	require.EqualValues(t, 5, chats[0].ReadSeq)

	// Strangers and bad input.
	mallory := n.Dial(t, "mallory")
	require.NoError(t, mallory.Frame(ctx, &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 1}))
	e := next(t, mallory, protocol.FrameError, 5*time.Second)
	require.Equal(t, protocol.CodeNotMember, e.Code)
	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameRead, ChatID: chat}))
	e = next(t, bob, protocol.FrameError, 5*time.Second)
	require.Equal(t, protocol.CodeBadRequest, e.Code)
	require.NoError(t, bob.Frame(ctx, &protocol.Frame{Type: protocol.FrameDelivered, ChatID: "a.b", Seq: 1}))
	e = next(t, bob, protocol.FrameError, 5*time.Second)
	require.Equal(t, protocol.CodeInvalidID, e.Code)
}

type chatSummary struct {
	ID      string `json:"id"`
	Unread  uint64 `json:"unread"`
	ReadSeq uint64 `json:"readSeq"`
	LastSeq uint64 `json:"lastSeq"`
}

func listChats(t *testing.T, n *testutil.Natter, user string) []chatSummary {
	t.Helper()
	status, body := n.Do(t, "GET", "/api/v1/chats", n.Token(t, user), nil)
	require.Equal(t, http.StatusOK, status)
	var out struct {
		Chats []chatSummary `json:"chats"`
	}
	require.NoError(t, jsonUnmarshal(body, &out))
	return out.Chats
}

// TestLargeChatPublishesOnce: a 10,000-member chat is delivered through its log
// subject: one publish, no per-user fan-out, every connected member receives it.
func TestLargeChatPublishesOnce(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.MaxBodyBytes = 1 << 20
	n := testutil.StartNatter(t, cfg)
	const members = 10_000
	var names []string
	for i := 1; i < members; i++ {
		names = append(names, fmt.Sprintf("m%05d", i))
	}
	chat := n.CreateChat(t, "m00000", "group", "everyone", names...)
	// 150 connected members (file descriptors are the limit here, not the design).
	var conns []*client.Conn
	for i := 0; i < 150; i++ {
		conns = append(conns, n.Dial(t, fmt.Sprintf("m%05d", i*61)))
	}
	before := n.Seq.FanoutPublishes()
	logSub, err := n.NC.SubscribeSync(n.Config.NATS.Subjects().Log(chat))
	require.NoError(t, err)
	_, err = conns[0].Send(ctxT(t, 10*time.Second), chat, "hello-all", "hi everyone")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *client.Conn) {
			defer wg.Done()
			f := next(t, c, protocol.FrameMessage, 20*time.Second)
			require.Equal(t, "hello-all", f.MessageID)
		}(c)
	}
	wg.Wait()
	require.Equal(t, before, n.Seq.FanoutPublishes(), "no per-user publish for a large chat")
	_, err = logSub.NextMsg(time.Second)
	require.NoError(t, err)
	_, err = logSub.NextMsg(200 * time.Millisecond)
	require.Error(t, err, "exactly one publish on the log subject")
	info, err := n.JS.Stream(ctxT(t, 5*time.Second), subjects.LogStream)
	require.NoError(t, err)
	st, err := info.Info(ctxT(t, 5*time.Second), jsonSubjectFilter(n.Config.NATS.Subjects().Log(chat)))
	require.NoError(t, err)
	require.EqualValues(t, 1, st.State.Subjects[n.Config.NATS.Subjects().Log(chat)])
}

// TestSlowConsumerIsClosedAndResumes: a connection that stops reading is closed
// with slow_consumer; it never delays others; it resumes with sync without loss.
func TestSlowConsumerIsClosedAndResumes(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.SendQueue = 64
	cfg.Gateway.WriteTimeout = 2 * time.Second
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "fast", "slow")
	alice, fast := n.Dial(t, "alice"), n.Dial(t, "fast")
	// slow: a raw WebSocket that never reads.
	hdr := http.Header{"Authorization": {"Bearer " + n.Token(t, "slow")}}
	slow, _, err := websocket.Dial(ctxT(t, 5*time.Second), n.WSURL(), &websocket.DialOptions{HTTPHeader: hdr})
	require.NoError(t, err)
	defer slow.CloseNow()
	big := strings.Repeat("x", 16<<10-100)
	const total = 800
	go func() {
		for i := 1; i <= total; i++ {
			if _, err := alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%03d", i), big); err != nil {
				t.Errorf("send: %v", err)
				return
			}
		}
	}()
	got := collect(t, fast, total, 60*time.Second)
	for i, f := range got {
		require.EqualValues(t, i+1, f.Seq, "the fast member gets everything, in order")
	}
	require.Eventually(t, func() bool { return n.Gateway.SlowConsumers() > 0 }, 10*time.Second, 20*time.Millisecond)
	// The slow client finds its connection closed, reconnects and syncs everything.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var readErr error
	for readErr == nil {
		_, _, readErr = slow.Read(ctx)
	}
	require.NoError(t, ctx.Err(), "the slow connection was closed by the server")
	again, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, "slow"), &client.Options{Resume: true})
	require.NoError(t, err)
	defer again.CloseNow()
	_, err = again.Sync(ctxT(t, 30*time.Second), []protocol.ChatCursor{{ChatID: chat, Seq: 0}})
	require.NoError(t, err)
	msgs := collect(t, again, total, 30*time.Second)
	require.EqualValues(t, total, msgs[total-1].Seq)
}

// TestReceiptsInBigGroupsGoToSenders: above gateway.receipts-max-members, a receipt
// reaches the senders of the messages it covers (and the reader), not every member.
func TestReceiptsInBigGroupsGoToSenders(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.ReceiptsMaxMembers = 2
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, bob, carol := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	_, err := alice.Send(ctxT(t, 5*time.Second), chat, "m1", "x")
	require.NoError(t, err)
	collect(t, bob, 1, 5*time.Second)
	collect(t, carol, 1, 5*time.Second)
	require.NoError(t, bob.Frame(ctxT(t, 5*time.Second), &protocol.Frame{Type: protocol.FrameRead, ChatID: chat, Seq: 1}))
	r := next(t, alice, protocol.FrameReceipt, 5*time.Second)
	require.Equal(t, "bob", r.UserID)
	require.EqualValues(t, 1, r.Read)
	timer := time.NewTimer(300 * time.Millisecond)
	defer timer.Stop()
	for {
		select {
		case f := <-carol.Frames():
			require.NotEqual(t, protocol.FrameReceipt, f.Type, "carol sent nothing bob read")
		case <-timer.C:
			return
		}
	}
}
