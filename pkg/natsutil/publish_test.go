package natsutil_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/stretchr/testify/require"
)

// A publish sent while its stream has no leader (here: no stream yet, the same
// "no responders" a leaderless stream gives) is sent again until the stream
// answers, and stored once.
func TestPublishRetriesUntilTheStreamAnswers(t *testing.T) {
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	created := make(chan error, 1)
	time.AfterFunc(1500*time.Millisecond, func() {
		_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
		created <- err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: "s.1", Data: []byte("x"), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "m1")
	ack, err := natsutil.Publish(ctx, js, msg)
	require.NoError(t, err)
	require.NoError(t, <-created)
	require.False(t, ack.Duplicate)
	ack, err = natsutil.Publish(ctx, js, msg)
	require.NoError(t, err)
	require.True(t, ack.Duplicate, "sent again, stored once")
	s, err := js.Stream(ctx, "S")
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs)
}

// Without an answer before ctx ends, the last attempt's error comes back; a
// refusal (a failed fence) comes back at once.
func TestPublishGivesUp(t *testing.T) {
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err = natsutil.Publish(ctx, js, &nats.Msg{Subject: "nowhere", Data: []byte("x")})
	require.Error(t, err)
	require.True(t, natsutil.RetryablePublish(err), "%v", err)

	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err)
	fenced := &nats.Msg{Subject: "s.1", Data: []byte("x"), Header: nats.Header{}}
	fenced.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "7")
	// Without a deadline: a refusal that were retried would never return.
	_, err = natsutil.Publish(context.Background(), js, fenced)
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	require.False(t, natsutil.RetryablePublish(err))
}

// A subscription that falls behind and drops messages is named in the error the
// connection reports, so the log says which one fell behind.
func TestSlowConsumerErrorNamesTheSubscription(t *testing.T) {
	ns := natstest.Server(t)
	errs := make(chan error, 16)
	nc, err := natsutil.Connect(&natsutil.Config{URL: ns.ClientURL()}, nil, "t", "", func(err error) {
		select {
		case errs <- err:
		default:
		}
	})
	require.NoError(t, err)
	defer nc.Close()
	release := make(chan struct{})
	defer close(release)
	sub, err := nc.Subscribe("slow.sub", func(*nats.Msg) { <-release })
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(1, -1))
	for range 5 {
		require.NoError(t, nc.Publish("slow.sub", []byte("x")))
	}
	require.NoError(t, nc.Flush())
	select {
	case err := <-errs:
		require.ErrorIs(t, err, nats.ErrSlowConsumer)
		require.Contains(t, err.Error(), `subscription "slow.sub"`)
	case <-time.After(10 * time.Second):
		t.Fatal("no slow consumer error reported")
	}
}
