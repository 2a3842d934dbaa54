package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestGroupCapUnderConcurrentAdds: the member cap holds however adds race. The
// gateway's check (gateway.max-group-members) reads the count before it publishes,
// so adds made at once all pass it; the sequencer, which applies a chat's
// membership events one at a time, refuses those past sequencer.max-group-members
// with group_full. Every caller is told the truth: 201 and all its users are
// members, or 409 group_full and none is.
func TestGroupCapUnderConcurrentAdds(t *testing.T) {
	const cap, before, racers, each = 50, 30, 8, 10
	for _, tc := range []struct {
		name string
		// gateway is gateway.max-group-members: the same as the sequencer's, or far
		// above it (as if every add passed the gateway's read at once).
		gateway int
	}{
		{"racing the gateway's check", cap},
		{"past the gateway's check", 1_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testutil.Config(t)
			cfg.Gateway.MaxGroupMembers = tc.gateway
			cfg.Sequencer.MaxGroupMembers = cap
			n := testutil.StartNatter(t, cfg)
			svc := n.ScopedServiceToken(t, "importer", protocol.ScopeChatsAdmin)
			chat := n.CreateChat(t, "owner", "group", "capped")
			path := "/api/v1/chats/" + chat + "/members"
			var first []string
			for i := 1; i < before; i++ {
				first = append(first, fmt.Sprintf("p%02d", i))
			}
			status, body := n.Do(t, "POST", path, svc, map[string]any{"userIds": first})
			require.Equal(t, http.StatusCreated, status, "%s", body)
			require.Equal(t, before, memberCount(t, n, chat))

			// Each racer adds its own users, all at once.
			statuses := make([]int, racers)
			bodies := make([][]byte, racers)
			users := make([][]string, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for r := range racers {
				for i := range each {
					users[r] = append(users[r], fmt.Sprintf("r%dx%02d", r, i))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					statuses[r], bodies[r] = n.Do(t, "POST", path, svc, map[string]any{"userIds": users[r]})
				}()
			}
			close(start)
			wg.Wait()

			added := 0
			for r := range racers {
				in, err := n.Store.MembersAmong(context.Background(), chat, users[r])
				require.NoError(t, err)
				switch statuses[r] {
				case http.StatusCreated:
					added++
					require.Len(t, in, each, "racer %d was told its users were added", r)
				case http.StatusConflict:
					requireRefused(t, statuses[r], bodies[r], http.StatusConflict, protocol.CodeGroupFull)
					require.Empty(t, in, "racer %d was told group_full", r)
				default:
					t.Fatalf("racer %d: %d %s", r, statuses[r], bodies[r])
				}
			}
			require.Equal(t, (cap-before)/each, added, "as many adds as fit")
			require.Equal(t, cap, memberCount(t, n, chat))

			// One user more, alone, is past the cap too.
			status, body = n.Do(t, "POST", path, svc, map[string]any{"userId": "one-more"})
			requireRefused(t, status, body, http.StatusConflict, protocol.CodeGroupFull)
			require.Equal(t, cap, memberCount(t, n, chat))
		})
	}
}
