package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// liveHeap returns the process's live heap: what the collection it forces found
// reachable (runtime/metrics /gc/heap/live:bytes). The server runs in this process
// (testutil.StartNatter), so this is the gateway's memory, with the test's own
// (small, and the same before and after) beside it. Not MemStats.HeapAlloc: that
// also counts everything allocated while the collection ran, live or not, and on a
// loaded machine a collection runs long enough for the gateway to read several
// more (already garbage) pages meanwhile, which is not memory it holds.
// memoryChildEnv marks the test binary TestUnreadHistoryFloodKeepsMemoryBounded
// runs itself in.
const memoryChildEnv = "NATTER_MEMORY_TEST_CHILD"

func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestUnreadHistoryFloodKeepsMemoryBounded (memory amplification by unread answers,
// docs/security.md): connections ask
// for history pages of 500 large messages, hundreds of times each, and never read
// the answers. Before, every page was queued (forty pages grew the gateway by 412 MiB).
// Now a history answer waits for its connection's queue to be half empty
// (gateway.send-queue-bytes), a page holds at most gateway.history-page-bytes, and
// the connection stops being read meanwhile, so each connection holds at most its
// queue, one page being answered and one page read from the store; the write
// timeout then closes it. The bound asserted follows from those settings.
//
// The heap is the whole process's, so the test runs in a test binary of its own:
// in the suite's process, what earlier tests left winding down (their roles'
// goroutines and caches) grew the heap by 100 MiB during the measurement.
func TestUnreadHistoryFloodKeepsMemoryBounded(t *testing.T) {
	if os.Getenv(memoryChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestUnreadHistoryFloodKeepsMemoryBounded$", "-test.count", "1", "-test.v")
		cmd.Env = append(os.Environ(), memoryChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a process of its own:\n%s", out)
		require.NoError(t, err, "the memory test failed in its own process")
		return
	}
	const (
		conns       = 2
		requests    = 400 // 50 MiB of answers even when cut: more than the sockets' buffers hold
		queueBytes  = 512 << 10
		pageBytes   = 128 << 10
		messages    = store.MaxPage
		contentSize = 15 << 10
	)
	cfg := testutil.Config(t)
	cfg.Gateway.SendQueueBytes, cfg.Gateway.HistoryPageBytes = queueBytes, pageBytes
	cfg.Gateway.WriteTimeout = 2 * time.Second // how long a client that reads nothing keeps its connection
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "big", "mallory")

	// 500 messages of 15 KiB: a full page is 7.5 MiB. One at a time: alice's live
	// copies of them then never fill her queue, which is small here.
	alice := n.Dial(t, "alice")
	go func() { // alice reads her messages' live copies, as a client does
		for range alice.Frames() {
		}
	}()
	content := strings.Repeat("x", contentSize)
	for i := range messages {
		_, err := alice.Send(ctxT(t, 30*time.Second), chat, fmt.Sprintf("m%03d", i), content)
		require.NoError(t, err, "%v", alice.Err())
	}
	require.Eventually(t, func() bool { // persisted: pages are read from the store alone
		last, err := n.Store.LastSeq(ctxT(t, 5*time.Second), chat)
		return err == nil && last == messages
	}, 30*time.Second, 50*time.Millisecond)

	// Warm the store's caches with the pages the flood will read.
	for range 3 {
		_, err := alice.HistoryBefore(ctxT(t, 10*time.Second), chat, 0, store.MaxPage)
		require.NoError(t, err)
	}
	before := liveHeap()
	floods := make([]*websocket.Conn, conns)
	for i := range floods {
		ws, _, err := websocket.Dial(ctxT(t, 5*time.Second), n.WSURL(), &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + n.Token(t, "mallory")}}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = ws.CloseNow() })
		floods[i] = ws
		for r := range requests {
			f := protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameHistory, ID: fmt.Sprint(r), ChatID: chat, Limit: store.MaxPage})
			require.NoError(t, ws.Write(ctxT(t, 5*time.Second), websocket.MessageText, f))
		}
	}
	// The gateway answers what it can, stops reading, and closes each connection
	// once its writes have been blocked for the write timeout. The live heap is
	// sampled until then.
	var peak uint64
	require.Eventually(t, func() bool {
		peak = max(peak, liveHeap())
		c, _ := n.Gateway.Connections()
		return c == 1 // alice's
	}, 60*time.Second, 100*time.Millisecond, "the flooding connections are closed")
	peak = max(peak, liveHeap())

	// Per connection: its queue, the page being answered, and one page read from the
	// store before it is cut (its rows and the decoded messages: twice the page).
	rawPage := uint64(messages) * (contentSize + 1<<10)
	perConn := uint64(queueBytes+2*pageBytes) + 2*rawPage
	bound := conns*perConn + 32<<20 // and generous slack for everything else
	growth := int64(peak) - int64(before)
	t.Logf("live heap: %d MiB before, peak %d MiB (growth %d MiB; bound %d MiB; unbounded would be about %d MiB)",
		before>>20, peak>>20, growth>>20, bound>>20, conns*requests*rawPage>>20)
	require.Less(t, growth, int64(bound))

	// A client that reads gets every message, in pages cut at pageBytes, with
	// hasMore true until the last.
	var seen int
	beforeSeq := uint64(0)
	for pages := 1; ; pages++ {
		f, err := alice.HistoryBefore(ctxT(t, 10*time.Second), chat, beforeSeq, store.MaxPage)
		require.NoError(t, err)
		require.NotEmpty(t, f.Messages)
		require.Less(t, len(f.Messages), messages, "a page is cut at the byte cap")
		for i, m := range f.Messages {
			require.EqualValues(t, messages-seen-i, m.Seq, "newest first, no gap")
		}
		seen += len(f.Messages)
		beforeSeq = f.Messages[len(f.Messages)-1].Seq
		if !f.HasMore {
			break
		}
		require.Less(t, pages, messages, "paging ends")
	}
	require.Equal(t, messages, seen)
}
