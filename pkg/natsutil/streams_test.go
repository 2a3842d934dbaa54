package natsutil

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
)

// flagDefaults is the configuration with every flag at its default (partitions
// unset: chosen against NATTER_IN).
func flagDefaults(t *testing.T) Config {
	t.Helper()
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	require.Zero(t, c.Partitions, "unset by default")
	require.NoError(t, c.Validate())
	return c
}

// defaults is flagDefaults with 2 partitions set.
func defaults(t *testing.T) Config {
	t.Helper()
	c := flagDefaults(t)
	c.Partitions = 2
	return c
}

func testJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func ingressConfig(t *testing.T, js jetstream.JetStream) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), subjects.InStream)
	require.NoError(t, err)
	return s.CachedInfo().Config
}

// TestIngressStorage: a new NATTER_IN is a bounded memory stream by default (or a
// file one when asked); an existing one keeps its storage, whatever the setting,
// with everything it holds, and the operator is told how to switch.
func TestIngressStorage(t *testing.T) {
	ctx := context.Background()
	t.Run("new, default", func(t *testing.T) {
		js, c := testJS(t), defaults(t)
		require.NoError(t, c.Validate())
		require.NoError(t, EnsureStreams(ctx, js, &c))
		got := ingressConfig(t, js)
		require.Equal(t, jetstream.MemoryStorage, got.Storage)
		require.EqualValues(t, DefaultIngressMaxBytes, got.MaxBytes)
		require.Equal(t, jetstream.DiscardNew, got.Discard, "full means refused, never dropped")
		require.Empty(t, IngressStorageNote(ctx, js, &c))
	})
	t.Run("new, file", func(t *testing.T) {
		js, c := testJS(t), defaults(t)
		c.IngressStorage, c.IngressMaxBytes = IngressFile, -1
		require.NoError(t, c.Validate())
		require.NoError(t, EnsureStreams(ctx, js, &c))
		got := ingressConfig(t, js)
		require.Equal(t, jetstream.FileStorage, got.Storage)
		require.EqualValues(t, -1, got.MaxBytes)
	})
	t.Run("an existing file stream keeps its storage and messages", func(t *testing.T) {
		js, c := testJS(t), defaults(t)
		old := InStreamConfig(&c)
		old.Storage, old.MaxBytes, old.Discard = jetstream.FileStorage, -1, jetstream.DiscardOld // as older Natters made it
		_, err := js.CreateStream(ctx, old)
		require.NoError(t, err)
		// More than the cap, unsequenced: lowering the cap must not drop any of it.
		payload := []byte(strings.Repeat("u", 64<<10))
		for range 40 {
			_, err = js.Publish(ctx, c.Subjects().In("c1"), payload)
			require.NoError(t, err)
		}
		c.IngressMaxBytes = 1 << 20
		require.NoError(t, EnsureStreams(ctx, js, &c))
		got := ingressConfig(t, js)
		require.Equal(t, jetstream.FileStorage, got.Storage, "JetStream cannot change storage: kept")
		require.EqualValues(t, 1<<20, got.MaxBytes, "the cap applies all the same")
		s, err := js.Stream(ctx, subjects.InStream)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 40, info.State.Msgs, "every unsequenced message is still there (DiscardNew drops nothing stored)")
		require.EqualValues(t, 1, info.State.FirstSeq)
		_, err = js.Publish(ctx, c.Subjects().In("c1"), []byte("x"))
		require.True(t, IngressFull(err), "new sends wait until it is below the cap: %v", err)
		note := IngressStorageNote(ctx, js, &c)
		require.Contains(t, note, "keeps it")
		require.Contains(t, note, "nats stream rm NATTER_IN")
	})
	t.Run("an existing memory stream stays in memory and bounded", func(t *testing.T) {
		js, c := testJS(t), defaults(t)
		require.NoError(t, EnsureStreams(ctx, js, &c))
		c.IngressStorage, c.IngressMaxBytes = IngressFile, -1
		require.NoError(t, EnsureStreams(ctx, js, &c))
		got := ingressConfig(t, js)
		require.Equal(t, jetstream.MemoryStorage, got.Storage)
		require.EqualValues(t, DefaultIngressMaxBytes, got.MaxBytes, "memory is never unbounded")
		require.NotEmpty(t, IngressStorageNote(ctx, js, &c))
	})
}

// TestIngressFull: a full NATTER_IN refuses a publish with an error IngressFull
// recognizes, keeps what it holds, and takes publishes again once room is made.
func TestIngressFull(t *testing.T) {
	ctx := context.Background()
	js, c := testJS(t), defaults(t)
	c.IngressMaxBytes = 1 << 20
	require.NoError(t, EnsureStreams(ctx, js, &c))
	payload := []byte(strings.Repeat("x", 32<<10))
	var err error
	n := 0
	for ; n < 100; n++ {
		if _, err = js.Publish(ctx, c.Subjects().In("c1"), payload); err != nil {
			break
		}
	}
	require.Error(t, err, "1 MiB holds fewer than 100 messages of 32 KiB")
	require.True(t, IngressFull(err), "%v", err)
	require.False(t, IngressFull(context.DeadlineExceeded))
	s, err := js.Stream(ctx, subjects.InStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, n, info.State.Msgs)
	require.EqualValues(t, 1, info.State.FirstSeq, "nothing was discarded")
	require.NoError(t, s.Purge(ctx)) // what the sequencer's janitor does once it acked them
	_, err = js.Publish(ctx, c.Subjects().In("c1"), payload)
	require.NoError(t, err)
}

func TestIngressConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		storage string
		max     int64
		bad     string
	}{
		{name: "memory, default cap", storage: IngressMemory, max: DefaultIngressMaxBytes},
		{name: "file, unlimited", storage: IngressFile, max: -1},
		{name: "memory must be bounded", storage: IngressMemory, max: -1, bad: "memory must be bounded"},
		{name: "a tiny cap", storage: IngressFile, max: 1000, bad: "at least 1MiB"},
		{name: "unknown storage", storage: "disk", max: -1, bad: `"memory" or "file"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults(t)
			c.IngressStorage, c.IngressMaxBytes = tc.storage, tc.max
			err := c.Validate()
			if tc.bad == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.bad)
		})
	}
}
