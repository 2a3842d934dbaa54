package natsutil

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
)

// ingressOf16 returns a server whose NATTER_IN was created with 16 partitions and
// holds one send (sent is true), or none.
func ingressOf16(t *testing.T, sent bool) jetstream.JetStream {
	t.Helper()
	ctx := context.Background()
	js, old := testJS(t), flagDefaults(t)
	old.Partitions = 16
	require.NoError(t, EnsureStreams(ctx, js, &old))
	if sent {
		_, err := js.Publish(ctx, old.Subjects().In("c1"), []byte("x"))
		require.NoError(t, err)
	}
	return js
}

// TestPartitionsChosen: an unset nats.partitions takes an existing NATTER_IN's own
// count (so an upgrade changes no deployment's count), and for a new stream 2 with
// the embedded server and 16 with an external one; a count set explicitly may
// change the stream only while it holds no message, and is refused, saying what
// to do, while it holds sends.
func TestPartitionsChosen(t *testing.T) {
	ctx := context.Background()
	t.Run("new, embedded", func(t *testing.T) {
		js, c := testJS(t), flagDefaults(t)
		require.NoError(t, EnsureStreams(ctx, js, &c))
		require.Equal(t, DefaultPartitionsEmbedded, c.Partitions)
		require.Equal(t, c.Subjects().InTransformDest(), ingressConfig(t, js).SubjectTransform.Destination)
	})
	t.Run("new, external", func(t *testing.T) {
		js, c := testJS(t), flagDefaults(t)
		c.URL = "nats://127.0.0.1:4222" // only says the server is not embedded: js is the connection
		require.NoError(t, EnsureStreams(ctx, js, &c))
		require.Equal(t, DefaultPartitionsCluster, c.Partitions)
		require.Contains(t, ingressConfig(t, js).SubjectTransform.Destination, "partition(16,")
	})
	t.Run("an existing stream keeps its count", func(t *testing.T) {
		js := ingressOf16(t, true)
		c := flagDefaults(t) // embedded: would be 2 for a new stream
		require.NoError(t, EnsureStreams(ctx, js, &c))
		require.Equal(t, 16, c.Partitions)
		require.Contains(t, ingressConfig(t, js).SubjectTransform.Destination, "partition(16,")

		// A process that does not create the streams learns the count too.
		other := flagDefaults(t)
		require.NoError(t, EnsureOwned(ctx, js, &other, Owned{}))
		require.Equal(t, 16, other.Partitions)
	})
	t.Run("a set count that differs is refused while sends are stored", func(t *testing.T) {
		js := ingressOf16(t, true)
		c := flagDefaults(t)
		c.Partitions = 4
		err := EnsureStreams(ctx, js, &c)
		require.ErrorIs(t, err, ErrPartitionsChanged)
		require.ErrorContains(t, err, "nats.partitions is 4 but NATTER_IN was created with 16 and still holds messages (1)")
		require.ErrorContains(t, err, "leave nats.partitions unset")
		got := ingressConfig(t, js)
		require.Contains(t, got.SubjectTransform.Destination, "partition(16,", "unchanged")
		s, err := js.Stream(ctx, subjects.InStream)
		require.NoError(t, err)
		require.EqualValues(t, 1, s.CachedInfo().State.Msgs, "nothing lost")
	})
	t.Run("a set count that differs applies to an empty stream", func(t *testing.T) {
		js := ingressOf16(t, false)
		c := flagDefaults(t)
		c.Partitions = 4
		require.NoError(t, EnsureStreams(ctx, js, &c))
		require.Equal(t, c.Subjects().InTransformDest(), ingressConfig(t, js).SubjectTransform.Destination)
	})
	t.Run("out of range", func(t *testing.T) {
		c := flagDefaults(t)
		c.Partitions = -1
		require.ErrorContains(t, c.Validate(), "nats.partitions must be 1..1024, or 0")
	})
}
