package notifier

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// A decided notification covers its chat's messages up to the seq it was decided
// on, per user and chat, and only grows.
func TestCoveredWindows(t *testing.T) {
	c := newClosedWindows()
	require.False(t, c.covers("w.bob.c1", 1), "nothing decided yet")
	c.cover("w.bob.c1", 10)
	require.True(t, c.covers("w.bob.c1", 1))
	require.True(t, c.covers("w.bob.c1", 10))
	require.False(t, c.covers("w.bob.c1", 11), "sequenced after the decision")
	require.False(t, c.covers("w.bob.c2", 5), "another chat")
	require.False(t, c.covers("w.carol.c1", 5), "another member")
	c.cover("w.bob.c1", 7) // a late, older decision does not shrink it
	require.True(t, c.covers("w.bob.c1", 10))
	c.cover("w.bob.c1", 12)
	require.True(t, c.covers("w.bob.c1", 12))
}

// A window whose close marker this instance handled is opened again with one write
// expecting the marker's revision; a marker revision that is no longer the key's
// last (another window or marker came since) falls back to Create, which tells an
// open window (ErrKeyExists) from a closed one. Against a real server, since the
// write's headers are what the server checks.
func TestWindowReopenedAfterItsMarker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := jetStream(t)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: WindowBucket, History: 1, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Hour,
	})
	require.NoError(t, err)
	n := &Notifier{cfg: Config{Window: time.Second}, deps: Deps{JS: js}, windows: kv, closed: newClosedWindows()}
	const key = "w.bob.c1"
	require.NoError(t, n.createWindow(ctx, key, 0), "a window never opened before")
	require.ErrorIs(t, n.createWindow(ctx, key, 0), jetstream.ErrKeyExists, "open")

	stream, err := js.Stream(ctx, "KV_"+WindowBucket)
	require.NoError(t, err)
	var marker uint64
	require.Eventually(t, func() bool {
		m, err := stream.GetLastMsgForSubject(ctx, "$KV."+WindowBucket+"."+key)
		if err != nil || m.Header.Get("Nats-Marker-Reason") == "" {
			return false
		}
		marker = m.Sequence
		return true
	}, 20*time.Second, 50*time.Millisecond, "the window's TTL ends in a marker")

	require.ErrorIs(t, n.reopen(ctx, key, marker-1, time.Second), errWindowChanged, "not the key's last revision")
	require.NoError(t, n.reopen(ctx, key, marker, time.Second), "reopened with one write")
	e, err := kv.Get(ctx, key)
	require.NoError(t, err, "the window is open again")
	require.Greater(t, e.Revision(), marker)
	m, err := stream.GetLastMsgForSubject(ctx, "$KV."+WindowBucket+"."+key)
	require.NoError(t, err)
	require.Equal(t, "1s", m.Header.Get(jetstream.MsgTTLHeader), "it closes again after the window")
	err = n.createWindow(ctx, key, marker)
	require.True(t, errors.Is(err, jetstream.ErrKeyExists), "the marker's revision is stale and the window open: %v", err)

	// The instance's memory of markers is used once.
	n.closed.closed(key, 42)
	require.EqualValues(t, 42, n.closed.take(key))
	require.Zero(t, n.closed.take(key), "used")
}
