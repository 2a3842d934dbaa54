package natsutil

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// The media bucket's automatic size fits what the embedded JetStream may store, so
// a small disk does not keep Natter from starting.
func TestAutoMediaMaxBytes(t *testing.T) {
	require.Equal(t, int64(DefaultMediaMaxBytes), autoMediaMaxBytes(nil))
	require.Equal(t, int64(DefaultMediaMaxBytes), autoMediaMaxBytes(&server.JetStreamConfig{MaxStore: 1 << 40}))
	require.Equal(t, int64(18<<20), autoMediaMaxBytes(&server.JetStreamConfig{MaxStore: 36 << 20}))
	require.Equal(t, int64(1<<20), autoMediaMaxBytes(&server.JetStreamConfig{MaxStore: 1 << 10}))
	c := DefaultConfig()
	require.Equal(t, int64(DefaultMediaMaxBytes), c.mediaMaxBytes(), "0 on an external server: the default")
}
