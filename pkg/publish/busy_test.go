package publish_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/stretchr/testify/require"
)

// TestFullIngressIsErrBusy: when NATTER_IN holds nats.ingress-max-bytes (nothing
// sequences it here), Publish and PublishBatch fail at once with ErrBusy, saying to
// publish again later, and store nothing.
func TestFullIngressIsErrBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ncfg := natsutil.DefaultConfig()
	ncfg.Partitions, ncfg.IngressMaxBytes = 2, 1<<20
	require.NoError(t, natsutil.EnsureStreams(ctx, js, &ncfg))
	for _, size := range []int{64 << 10, 1 << 10, 1} { // to the last byte
		fill := []byte(strings.Repeat("x", size))
		for i := 0; ; i++ {
			require.Less(t, i, 2000, "1 MiB is full")
			if _, err := js.Publish(ctx, ncfg.Subjects().In("filler"), fill); err != nil {
				require.True(t, natsutil.IngressFull(err), "%v", err)
				break
			}
		}
	}
	in, err := js.Stream(ctx, "NATTER_IN")
	require.NoError(t, err)
	info, err := in.Info(ctx)
	require.NoError(t, err)
	before := info.State.Msgs

	pub, err := publish.New(js, "", "reminder-bot")
	require.NoError(t, err)
	defer pub.Close()
	_, err = pub.Text(ctx, "chat1", "reminder-bot", "stand-up in 5 minutes")
	require.ErrorIs(t, err, publish.ErrBusy)
	require.Contains(t, err.Error(), "publish it again with the same MessageID later")
	_, err = pub.PublishBatch(ctx, []*protocol.Message{
		{ChatID: "chat1", SenderID: "reminder-bot", Content: "one"}, {ChatID: "chat2", SenderID: "reminder-bot", Content: "two"}})
	var be *publish.BatchError
	require.ErrorAs(t, err, &be)
	for _, e := range be.Errs {
		require.ErrorIs(t, e, publish.ErrBusy)
	}

	info, err = in.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, before, info.State.Msgs, "nothing stored")
	require.NoError(t, ctx.Err(), "refused at once, not after waiting for an answer")
}
