package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// never is a refill rate so slow that no token comes back during a test: the burst is
// then exactly how many frames are accepted, with no timing in the assertions.
const never = 0.0001

// sendMany sends n messages from c concurrently and counts acks and rate_limited
// refusals; any other outcome fails the test.
func sendMany(t *testing.T, c *client.Conn, chat, prefix string, n int) (acked, limited int) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Send(ctx, chat, fmt.Sprintf("%s-%03d", prefix, i), "flood")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				acked++
				return
			}
			if errCode(t, err) == protocol.CodeRateLimited {
				limited++
			}
		}()
	}
	wg.Wait()
	return acked, limited
}

func TestMessageRatePerConnection(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.ConnMsgRate, cfg.Gateway.Limits.ConnMsgBurst = never, 5
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")

	acked, limited := sendMany(t, alice, chat, "m", 40)
	require.Equal(t, 5, acked, "the burst is accepted")
	require.Equal(t, 35, limited, "everything over the rate is refused with rate_limited")
	require.NoError(t, alice.Ping(ctxT(t, 5*time.Second)), "the connection stays open")

	// Every other rate-limited frame type is refused the same way.
	for _, f := range []*protocol.Frame{
		{Type: protocol.FrameEdit, ID: "e1", ChatID: chat, MessageID: "e1", RefID: "m-000", Content: "x"},
		{Type: protocol.FrameTyping, ID: "t1", ChatID: chat},
	} {
		require.NoError(t, alice.Frame(ctxT(t, 5*time.Second), f))
		e := next(t, alice, protocol.FrameError, 5*time.Second)
		require.Equal(t, protocol.CodeRateLimited, e.Code, "%s: %s", f.Type, e.Message)
		require.True(t, e.Retry)
	}

	// Nothing beyond the rate was stored or delivered.
	got := collect(t, bob, 5, 10*time.Second)
	require.EqualValues(t, 5, got[4].Seq)
	quiet(t, bob, 300*time.Millisecond)
	require.Eventually(t, func() bool { return len(history(t, n, "bob", chat, "").Messages) == 5 }, 5*time.Second, 50*time.Millisecond)
	require.Len(t, history(t, n, "bob", chat, "").Messages, 5)

	// Another connection of the same user has its own bucket.
	alice2 := n.Dial(t, "alice")
	_, err := alice2.Send(ctxT(t, 5*time.Second), chat, "second-device", "hi")
	require.NoError(t, err)
}

func TestMessageRatePerUserIsSharedByConnections(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.UserMsgRate, cfg.Gateway.Limits.UserMsgBurst = never, 6
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	a1, a2, bob := n.Dial(t, "alice"), n.Dial(t, "alice"), n.Dial(t, "bob")

	ack1, lim1 := sendMany(t, a1, chat, "a1", 10)
	ack2, lim2 := sendMany(t, a2, chat, "a2", 10)
	require.Equal(t, 6, ack1+ack2, "one bucket for both of alice's connections")
	require.Equal(t, 14, lim1+lim2)

	// bob is not alice: his bucket is his own.
	_, err := bob.Send(ctxT(t, 5*time.Second), chat, "bob-1", "fine")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(history(t, n, "bob", chat, "").Messages) == 7 }, 5*time.Second, 50*time.Millisecond)
}

func TestFloodFromOneUserNeverStarvesOthers(t *testing.T) {
	cfg := testutil.Config(t)
	// The limit applies to everyone: bob's burst covers his 200 messages, mallory
	// sends far more than hers.
	const per, burst = 200, 250
	cfg.Gateway.Limits.UserMsgRate, cfg.Gateway.Limits.UserMsgBurst = never, burst
	n := testutil.StartNatter(t, cfg)
	victims := n.CreateChat(t, "bob", "direct", "", "carol")
	floodChat := n.CreateChat(t, "mallory", "direct", "", "dave") // not bob or carol: they count only bob's
	bob, carol := n.Dial(t, "bob"), n.Dial(t, "carol")
	m1, m2 := n.Dial(t, "mallory"), n.Dial(t, "mallory")

	// mallory floods from two connections, 16 requests in flight on each, until bob
	// has finished. (A client that writes without ever reading its answers is closed
	// as a slow consumer instead; this one reads them.)
	stop := make(chan struct{})
	var limited, acked atomic.Int64
	var wg sync.WaitGroup
	ctx := ctxT(t, 90*time.Second)
	for k, m := range []*client.Conn{m1, m2} {
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := m.Send(ctx, floodChat, fmt.Sprintf("flood-%d-%d-%d", k, w, i), "spam")
					var pe *protocol.Error
					switch {
					case err == nil:
						acked.Add(1)
					case errors.As(err, &pe) && pe.Code == protocol.CodeRateLimited:
						limited.Add(1)
					default:
						t.Errorf("flood: %v", err)
						return
					}
				}
			}()
		}
	}

	// bob starts once mallory has used up her burst and is being refused.
	require.Eventually(t, func() bool { return limited.Load() > 0 }, 30*time.Second, 10*time.Millisecond,
		"acked %d; connections: %v, %v", &acked, m1.Err(), m2.Err())
	done := make(chan error, 1)
	go func() {
		ctx := ctxT(t, 60*time.Second)
		for i := range per {
			if _, err := bob.Send(ctx, victims, fmt.Sprintf("bob-%03d", i), "hello"); err != nil {
				done <- fmt.Errorf("bob send %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	got := collect(t, carol, per, 60*time.Second)
	require.NoError(t, <-done, "every one of bob's messages is acked while the flood runs")
	close(stop)
	wg.Wait()
	for i, f := range got {
		require.Equal(t, victims, f.ChatID)
		require.Equal(t, fmt.Sprintf("bob-%03d", i), f.MessageID, "all delivered, in order")
		require.EqualValues(t, i+1, f.Seq)
	}
	require.Positive(t, limited.Load(), "the flood was refused")
	require.LessOrEqual(t, acked.Load(), int64(burst), "at most the burst of the flood was accepted")
	require.NoError(t, m1.Ping(ctx), "the flooder is refused, not disconnected")
	// Only what was acked was stored: the newest stored seq is the ack count.
	require.Eventually(t, func() bool {
		return slices.Max(append(seqsOf(history(t, n, "mallory", floodChat, "").Messages), 0)) == uint64(acked.Load())
	}, 5*time.Second, 50*time.Millisecond)
}

// dialErr dials as user and returns the error (nil: connected, closed at test end).
func dialErr(t *testing.T, n *testutil.Natter, user string, inFrame bool) error {
	c, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, user), &client.Options{TokenInFrame: inFrame})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return err
}

func TestConnectionCaps(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.ConnsPerUser, cfg.Gateway.Limits.ConnsPerGateway = 2, 3
	n := testutil.StartNatter(t, cfg)
	a1 := n.Dial(t, "alice")
	n.Dial(t, "alice")

	err := dialErr(t, n, "alice", false)
	require.ErrorContains(t, err, "HTTP 429", "a third connection for alice is refused before the upgrade")
	err = dialErr(t, n, "alice", true)
	require.Error(t, err, "and after a connect frame")
	require.Equal(t, websocket.StatusCode(protocol.CloseRateLimited), websocket.CloseStatus(err), "%v", err)

	n.Dial(t, "bob") // the gateway's third connection
	require.ErrorContains(t, dialErr(t, n, "carol", false), "HTTP 429", "the gateway is full")
	require.ErrorContains(t, dialErr(t, n, "carol", true), "HTTP 429", "the gateway is full before the upgrade too")

	// A closed connection frees its slots.
	require.NoError(t, a1.Close())
	require.Eventually(t, func() bool { return dialErr(t, n, "carol", false) == nil }, 5*time.Second, 50*time.Millisecond)
	require.ErrorContains(t, dialErr(t, n, "alice", false), "HTTP 429", "full again")
}

func TestConnectRatePerIP(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.ConnectRate, cfg.Gateway.Limits.ConnectBurst = never, 3
	n := testutil.StartNatter(t, cfg)
	for _, u := range []string{"alice", "bob", "carol"} {
		n.Dial(t, u)
	}
	require.ErrorContains(t, dialErr(t, n, "dave", false), "HTTP 429")

	resp, err := http.Get(n.HTTPURL() + "/ws")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	var body struct {
		Error struct {
			Code  protocol.Code `json:"code"`
			Retry bool          `json:"retry"`
		} `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, protocol.CodeRateLimited, body.Error.Code)
	require.True(t, body.Error.Retry)

	// REST is not a connection attempt: it still works from the same address.
	status, _ := n.Do(t, "GET", "/api/v1/chats", n.Token(t, "alice"), nil)
	require.NotEqual(t, http.StatusTooManyRequests, status)
}
