package natsutil_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/stretchr/testify/require"
)

// Next gives every message in order: those waiting, and one published after Next
// has waited longer than RecheckWait (its wait without a bound); it ends with the
// context, and with the iterator.
func TestNextTakesEveryMessage(t *testing.T) {
	ns := natstest.Server(t)
	js, err := jetstream.New(natstest.Conn(t, ns))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "C", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	for i := range 40 {
		_, err := js.Publish(ctx, "s.x", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(16), jetstream.PullExpiry(5*time.Second))
	require.NoError(t, err)
	for i := range 40 {
		m, err := natsutil.Next(ctx, it)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(m.Data()))
		require.NoError(t, m.Ack())
	}
	time.AfterFunc(3*natsutil.RecheckWait, func() { _, _ = js.Publish(ctx, "s.x", []byte("late")) })
	m, err := natsutil.Next(ctx, it)
	require.NoError(t, err)
	require.Equal(t, "late", string(m.Data()))

	cctx, cancel := context.WithTimeout(ctx, 3*natsutil.RecheckWait)
	defer cancel()
	_, err = natsutil.Next(cctx, it)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	it.Stop()
	_, err = natsutil.Next(ctx, it)
	require.ErrorIs(t, err, jetstream.ErrMsgIteratorClosed)
}
