package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// adminGet fetches path from n's admin server.
func adminGet(t *testing.T, n *testutil.Natter, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr().String() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// closeOf waits for c to be closed by the server and returns the close frame.
func closeOf(t *testing.T, c *client.Conn, d time.Duration) websocket.CloseError {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(d):
		t.Fatalf("connection not closed within %s", d)
	}
	var ce websocket.CloseError
	require.True(t, errors.As(c.Err(), &ce), "closed with a close frame, got %v", c.Err())
	return ce
}

// TestGracefulDrain stops a gateway with connected clients: each gets a reconnect
// hint, the hints spread over the drain window, sends keep working until the
// connection's turn, every connection is then closed with 1001 shutting_down, new
// connections and readiness are refused meanwhile, and nothing acked is lost.
func TestGracefulDrain(t *testing.T) {
	const window = 1500 * time.Millisecond
	cfg := testutil.Config(t)
	cfg.Gateway.DrainWindow = window
	n := testutil.StartNatter(t, cfg)
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	chat := n.CreateChat(t, users[0], "group", "drain", users[1:]...)
	conns := make([]*client.Conn, len(users))
	for i, u := range users {
		conns[i] = n.Dial(t, u)
	}
	status, body := adminGet(t, n, "/readyz")
	require.Equal(t, http.StatusOK, status, body)

	var acked []string
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("before-%d", i)
		_, err := conns[i%len(conns)].Send(ctxT(t, 5*time.Second), chat, id, "before the drain")
		require.NoError(t, err)
		acked = append(acked, id)
	}
	for _, c := range conns {
		collect(t, c, len(acked), 10*time.Second)
	}

	stopped := make(chan struct{})
	go func() { defer close(stopped); n.Stop() }()

	hints := map[*client.Conn]int64{}
	for _, c := range conns {
		f := next(t, c, protocol.FrameReconnect, 5*time.Second)
		hints[c] = f.AfterMs
	}
	var after []int64
	for _, ms := range hints {
		require.Greater(t, ms, int64(0), "no client is told to reconnect at once")
		require.LessOrEqual(t, ms, window.Milliseconds(), "every hint is within the drain window")
		after = append(after, ms)
	}
	sort.Slice(after, func(i, j int) bool { return after[i] < after[j] })
	for i := 1; i < len(after); i++ {
		require.Greater(t, after[i], after[i-1], "hints are spread: no two clients get the same delay: %v", after)
	}
	require.GreaterOrEqual(t, after[len(after)-1]-after[0], window.Milliseconds()/2, "hints span the window: %v", after)

	// While draining: unready, new connections refused with 503 shutting_down.
	status, body = adminGet(t, n, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body, `"gateway":"draining`)
	_, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, "u0"), nil)
	require.ErrorContains(t, err, "HTTP 503")
	resp, err := http.Get(n.HTTPURL() + "/ws")
	require.NoError(t, err)
	var eb struct {
		Error struct {
			Code protocol.Code `json:"code"`
		} `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, protocol.CodeShuttingDown, eb.Error.Code)

	// The connection with the latest turn still sends, is acked and delivered.
	last := conns[0]
	for c, ms := range hints {
		if ms > hints[last] {
			last = c
		}
	}
	_, err = last.Send(ctxT(t, 5*time.Second), chat, "during-drain", "sent while draining")
	require.NoError(t, err, "a draining gateway still serves a connection until its turn")
	acked = append(acked, "during-drain")
	m := next(t, last, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, "during-drain", m.MessageID)

	for _, c := range conns {
		ce := closeOf(t, c, 10*time.Second)
		require.Equal(t, websocket.StatusGoingAway, ce.Code)
		require.True(t, strings.HasPrefix(ce.Reason, string(protocol.CodeShuttingDown)), "reason %q", ce.Reason)
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the process did not stop after the drain")
	}

	// Nothing acked is lost: after a restart history has every message, seqs 1..N.
	n2 := testutil.StartNatter(t, cfg)
	page := history(t, n2, "u1", chat, "?after=0&limit=100")
	require.Len(t, page.Messages, len(acked))
	got := map[string]bool{}
	for i, msg := range page.Messages {
		require.EqualValues(t, i+1, msg.Seq, "no gap")
		got[msg.MessageID] = true
	}
	for _, id := range acked {
		require.True(t, got[id], "acked message %s is in history", id)
	}
	require.Eventually(t, func() bool {
		last, err := n2.Store.LastSeq(ctxT(t, time.Second), chat)
		return err == nil && last == uint64(len(acked))
	}, 10*time.Second, 20*time.Millisecond, "and persisted")
}

// TestDrainWithoutWindowClosesAtOnce: drain-window 0 still says why, and stops
// without waiting.
func TestDrainWithoutWindowClosesAtOnce(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.DrainWindow = 0
	n := testutil.StartNatter(t, cfg)
	c := n.Dial(t, "alice")
	go n.Stop()
	f := next(t, c, protocol.FrameReconnect, 5*time.Second)
	require.Zero(t, f.AfterMs)
	ce := closeOf(t, c, 5*time.Second)
	require.Equal(t, websocket.StatusGoingAway, ce.Code)
	require.True(t, strings.HasPrefix(ce.Reason, string(protocol.CodeShuttingDown)), "reason %q", ce.Reason)
}

// TestAdminMetricsAfterTraffic checks the admin endpoints of a running process and
// that the metrics move with traffic.
func TestAdminMetricsAfterTraffic(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Admin.Pprof = true
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	for i := 0; i < 3; i++ {
		_, err := alice.Send(ctxT(t, 5*time.Second), chat, fmt.Sprintf("m%d", i), "hi")
		require.NoError(t, err)
	}
	collect(t, bob, 3, 5*time.Second)
	require.NoError(t, bob.Frame(ctxT(t, time.Second), &protocol.Frame{Type: "no_such_type"}))
	next(t, bob, protocol.FrameError, 5*time.Second)

	status, body := adminGet(t, n, "/healthz")
	require.Equal(t, http.StatusOK, status, body)
	status, body = adminGet(t, n, "/readyz")
	require.Equal(t, http.StatusOK, status, body)
	require.Eventually(t, func() bool {
		_, body = adminGet(t, n, "/metrics")
		return strings.Contains(body, `natter_consumer_pending{consumer="PERSISTER",stream="NATTER_LOG"} 0`) &&
			strings.Contains(body, `natter_consumer_ack_pending{consumer="PERSISTER",stream="NATTER_LOG"} 0`)
	}, 10*time.Second, 50*time.Millisecond, "the persister catches up: lag 0\n%s", body)
	for _, want := range []string{
		"natter_gateway_connections 2",
		"natter_gateway_users 2",
		`natter_gateway_frames_in_total{type="send"} 3`,
		`natter_gateway_frames_in_total{type="other"} 1`,
		`natter_gateway_frames_out_total{type="ack"} 3`,
		`natter_gateway_frames_out_total{type="message"} 6`,
		`natter_errors_total{code="unknown_type"} 1`,
		"natter_gateway_send_ack_seconds_count 3",
		"natter_gateway_deliver_seconds_count 6",
		"natter_sequencer_sequenced_total 3",
		"natter_sequencer_fanout_publishes_total 6",
		"natter_sequencer_log_batches_total 0", // three sends, each sequenced alone
		"natter_sequencer_log_batched_messages_total 0",
		"natter_sequencer_log_batch_fallbacks_total 0",
		`natter_sequencer_step_seconds_count{outcome="ok"} 3`,
		"natter_sequencer_ingress_to_log_seconds_count 3",
		`natter_store_seconds_count{op="append_messages"}`,
		`natter_consumer_pending{consumer="SEQ_0",stream="NATTER_IN"} 0`,
		"natter_persister_batch_size_count",
		"process_resident_memory_bytes",
	} {
		require.Contains(t, body, want)
	}
	status, _ = adminGet(t, n, "/debug/pprof/heap?debug=1")
	require.Equal(t, http.StatusOK, status)

	// The store stops answering: the process is no longer ready, and says why.
	require.NoError(t, n.Store.Close())
	status, body = adminGet(t, n, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body, `"store"`)
}
