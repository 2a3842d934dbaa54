package history

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
)

// TestReadTail: a range of one chat's log messages, interleaved with another
// chat's, comes back whole and in order from the batched direct get; an answer that
// stops short of the range's last message (here: asked for fewer than the range
// holds) is not taken, and the range is read again a get at a time.
func TestReadTail(t *testing.T) {
	ns := natstest.Server(t)
	js, err := jetstream.New(natstest.Conn(t, ns))
	require.NoError(t, err)
	ctx := context.Background()
	ncfg := natsutil.DefaultConfig()
	require.NoError(t, natsutil.EnsureStreams(ctx, js, &ncfg))
	s := ncfg.Subjects()
	var xs []uint64 // stream seqs of chat x's messages 1..20
	for seq := uint64(1); seq <= 20; seq++ {
		for _, chat := range []string{"x", "y"} {
			m := protocol.Message{ChatID: chat, Seq: seq, MessageID: chat + strconv.FormatUint(seq, 10), MessageType: protocol.TypeText}
			ack, err := js.Publish(ctx, s.Log(chat), protocol.EncodeMessageFrame(&m))
			require.NoError(t, err)
			if chat == "x" {
				xs = append(xs, ack.Sequence)
			}
		}
	}
	st, err := js.Stream(ctx, subjects.LogStream)
	require.NoError(t, err)
	require.True(t, st.CachedInfo().Config.AllowDirect)
	chatSeqs := func(raws []logMsg) []uint64 {
		var out []uint64
		for _, r := range raws {
			m, err := protocol.DecodeMessageFrame(r.data)
			require.NoError(t, err)
			require.Equal(t, "x", m.ChatID)
			out = append(out, m.Seq)
		}
		return out
	}
	want := []uint64{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

	raws, ok := readTailDirect(ctx, js, subjects.LogStream, s.Log("x"), xs[2], xs[14], 13)
	require.True(t, ok)
	require.Equal(t, want, chatSeqs(raws))
	require.Equal(t, xs[2], raws[0].seq)

	_, ok = readTailDirect(ctx, js, subjects.LogStream, s.Log("x"), xs[2], xs[14], 5)
	require.False(t, ok, "an answer short of the range's last message")
	raws, err = readTail(ctx, js, st, s.Log("x"), xs[2], xs[14], 5)
	require.NoError(t, err)
	require.Equal(t, want, chatSeqs(raws), "read again a get at a time")
}
