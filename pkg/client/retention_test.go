package client_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

func TestOrdererSkip(t *testing.T) {
	o := client.NewOrderer("c", 0)
	o.Push(msg(1, ""))
	o.Push(msg(4, ""))
	o.Push(msg(5, ""))
	o.Push(msg(8, ""))
	require.Empty(t, o.Skip(1), "at or below LastSeq: nothing")
	got := o.Skip(3) // 2 and 3 are gone: 4 and 5 follow
	require.Equal(t, []uint64{4, 5}, seqs(got))
	require.EqualValues(t, 5, o.LastSeq())
	got = o.Skip(9) // 6, 7 and 9 gone; 8 was held below it
	require.Equal(t, []uint64{8}, seqs(got))
	require.EqualValues(t, 9, o.LastSeq())
	_, _, gap := o.Gap()
	require.False(t, gap)
	out, dup := o.Push(msg(7, ""))
	require.True(t, dup, "a skipped seq arriving late is below the order: dropped")
	require.Empty(t, out)
}

// TestClientSkipsExpiredGap: live delivery loses two disappearing messages, and by
// the time the client fills the gap they (and the one held after them) have
// expired. The history answer skips them; the client must deliver what it holds
// and stop asking, instead of waiting for seqs that will never come.
func TestClientSkipsExpiredGap(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	status, body := n.Do(t, "PUT", "/api/v1/chats/"+chat+"/ttl", n.Token(t, "alice"), map[string]int64{"messageTtl": 5})
	require.Equal(t, http.StatusOK, status, string(body))
	alice := runClient(t, n, "alice", n.WSURL(), nil)
	var dropped []uint64
	bob := runClient(t, n, "bob", n.WSURL(), func(c *client.Config) {
		// The first fill (at GapGrace) brings the ttl event bob connected after; the
		// second (at twice GapGrace) comes after the 5 s TTL and finds 3 and 4 expired.
		c.GapGrace = 3 * time.Second
		c.Inbound = func(f *protocol.Frame) []*protocol.Frame {
			if f.Type == protocol.FrameMessage && (f.Seq == 3 || f.Seq == 4) && !slices.Contains(dropped, f.Seq) {
				dropped = append(dropped, f.Seq)
				return nil
			}
			return []*protocol.Frame{f}
		}
	})
	for i := 2; i <= 5; i++ {
		_, err := alice.Send(context.Background(), chat, fmt.Sprintf("x%d", i), "vanishing")
		require.NoError(t, err)
	}
	got := receive(t, bob, 3, 20*time.Second)
	require.Equal(t, []uint64{1, 2, 5}, seqs(got), "the ttl event, 2, then 5 once 3 and 4 are known gone")
	require.Equal(t, []uint64{3, 4}, dropped)
	require.EqualValues(t, 5, bob.LastSeq(chat))
	noMore(t, bob, 300*time.Millisecond)
}
