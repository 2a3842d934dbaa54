package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Issue 14, finding 4: the SSE fallback skipped every abuse limit. These run each
// attack over both transports (transport_test.go) and assert the same refusal.

// TestTransportConnectionFloodRefused is the reported attack with the default limits:
// 300 event streams (or WebSockets) for one user from one address. Only
// gateway.limits.conns-per-user of them are accepted, the rest get 429.
func TestTransportConnectionFloodRefused(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cfg := testutil.Config(t)
			cfg.Gateway.Limits = app.DefaultConfig().Gateway.Limits
			n := testutil.StartNatter(t, cfg)
			var mu sync.Mutex
			var wg sync.WaitGroup
			accepted, statuses := 0, map[int]int{}
			for range 300 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p, status := tr.dial(t, n, "mallory")
					mu.Lock()
					defer mu.Unlock()
					if p != nil {
						accepted++
					} else {
						statuses[status]++
					}
				}()
			}
			wg.Wait()
			require.Equal(t, cfg.Gateway.Limits.ConnsPerUser, accepted, "refusals: %v", statuses)
			require.Equal(t, map[int]int{http.StatusTooManyRequests: 300 - accepted}, statuses)
		})
	}
}

func TestTransportConnectRatePerIP(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cfg := testutil.Config(t)
			cfg.Gateway.Limits.ConnectRate, cfg.Gateway.Limits.ConnectBurst = never, 3
			n := testutil.StartNatter(t, cfg)
			// The bucket is per address, whatever the transport: the other one spends
			// part of it.
			other := transports[0]
			if tr.name == other.name {
				other = transports[1]
			}
			_, status := other.dial(t, n, "alice")
			require.Zero(t, status)
			for _, u := range []string{"bob", "carol"} {
				_, status := tr.dial(t, n, u)
				require.Zero(t, status)
			}
			_, status = tr.dial(t, n, "dave")
			require.Equal(t, http.StatusTooManyRequests, status)
		})
	}
}

func TestTransportConnectionCaps(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cfg := testutil.Config(t)
			cfg.Gateway.Limits.ConnsPerUser, cfg.Gateway.Limits.ConnsPerGateway = 2, 3
			n := testutil.StartNatter(t, cfg)
			for _, tr := range transports { // one of each: they share alice's slots
				_, status := tr.dial(t, n, "alice")
				require.Zero(t, status)
			}
			_, status := tr.dial(t, n, "alice")
			require.Equal(t, http.StatusTooManyRequests, status, "a third connection for alice")
			_, status = tr.dial(t, n, "bob")
			require.Zero(t, status, "the gateway's third connection")
			_, status = tr.dial(t, n, "carol")
			require.Equal(t, http.StatusTooManyRequests, status, "the gateway is full")
		})
	}
}

// TestTransportFrameRates floods one connection with sends (the report: 1,000 POSTs
// to /api/v1/frames, all accepted) and with read frames, and counts the answers.
func TestTransportFrameRates(t *testing.T) {
	const burst, readBurst, flood = 5, 3, 60
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cfg := testutil.Config(t)
			cfg.Gateway.Limits.ConnMsgRate, cfg.Gateway.Limits.ConnMsgBurst = never, burst
			cfg.Gateway.Limits.ConnReadRate, cfg.Gateway.Limits.ConnReadBurst = never, readBurst
			n := testutil.StartNatter(t, cfg)
			chat := n.CreateChat(t, "alice", "direct", "", "bob")
			p, status := tr.dial(t, n, "alice")
			require.Zero(t, status)

			for i := range flood {
				p.frame(t, &protocol.Frame{Type: protocol.FrameSend, ChatID: chat, MessageID: fmt.Sprintf("m%03d", i), Content: "flood"})
			}
			acked, limited := 0, 0
			for range flood {
				f := p.next(t, protocol.FrameAck, protocol.FrameError)
				if f.Type == protocol.FrameAck {
					acked++
					continue
				}
				require.Equal(t, protocol.CodeRateLimited, f.Code, f.Message)
				limited++
			}
			require.Equal(t, burst, acked)
			require.Equal(t, flood-burst, limited)

			// Read frames: every kind counts against the read bucket.
			kinds := []*protocol.Frame{
				{Type: protocol.FrameHistory, ChatID: chat, Limit: 500},
				{Type: protocol.FrameSync, Chats: []protocol.ChatCursor{{ChatID: chat}}},
				{Type: protocol.FrameRead, ChatID: chat, Seq: 1},
				{Type: protocol.FramePresenceSub, UserIDs: []string{"bob"}},
				{Type: protocol.FramePing},
			}
			answered, refused := 0, 0
			for i := range 4 * len(kinds) {
				f := *kinds[i%len(kinds)]
				f.ID = fmt.Sprintf("r%02d", i)
				p.frame(t, &f)
				if i < readBurst {
					answered++
					continue
				}
				e := p.next(t, protocol.FrameError)
				require.Equal(t, protocol.CodeRateLimited, e.Code, "%s: %s", f.Type, e.Message)
				require.Equal(t, f.ID, e.ID)
				refused++
			}
			require.Equal(t, 4*len(kinds)-readBurst, refused)

			// Only what was acked was stored.
			require.Eventually(t, func() bool { return len(history(t, n, "bob", chat, "").Messages) == burst }, 5*time.Second, 50*time.Millisecond)
			require.Len(t, history(t, n, "bob", chat, "").Messages, burst)
		})
	}
}
