package app

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestBadStartPartitionsChanged: a data directory whose NATTER_IN (on file) was
// created with 16 partitions and holds a send that was never sequenced. Starting
// with another nats.partitions would strand that send; the start is refused at
// once, in one line that says what to do, and the send is still there. Unset, the
// count is the stream's own (natsutil.TestPartitionsChosen).
func TestBadStartPartitionsChanged(t *testing.T) {
	dir := t.TempDir()
	// withIngress runs f on the data directory's embedded server, its NATTER_IN
	// created (or kept) with 16 partitions on file.
	withIngress := func(f func(ctx context.Context, js jetstream.JetStream, c *natsutil.Config)) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var c natsutil.Config
		c.RegisterFlags(flag.NewFlagSet("nats", flag.ContinueOnError))
		c.Listen, c.Partitions, c.IngressStorage, c.IngressMaxBytes = "none", 16, natsutil.IngressFile, -1
		e, err := natsutil.StartEmbedded(&c, dir, zap.NewNop())
		require.NoError(t, err)
		defer func() { e.Server.Shutdown(); e.Server.WaitForShutdown() }()
		nc, err := natsutil.Connect(&c, e, "partitions test", natsutil.UserAdmin, nil)
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		require.NoError(t, natsutil.EnsureStreams(ctx, js, &c))
		f(ctx, js, &c)
	}
	withIngress(func(ctx context.Context, js jetstream.JetStream, c *natsutil.Config) {
		_, err := js.Publish(ctx, c.Subjects().In("c1"), []byte(`{"type":"send"}`))
		require.NoError(t, err)
	})
	badStart(t, quiet(dir, "--nats.ingress-storage", "file", "--nats.partitions", "4"),
		"nats.partitions is 4 but NATTER_IN was created with 16 and still holds messages (1)",
		"leave nats.partitions unset")
	withIngress(func(ctx context.Context, js jetstream.JetStream, c *natsutil.Config) {
		s, err := js.Stream(ctx, "NATTER_IN")
		require.NoError(t, err)
		require.EqualValues(t, 1, s.CachedInfo().State.Msgs, "the send is still stored")
		require.Contains(t, s.CachedInfo().Config.SubjectTransform.Destination, "partition(16,", "and the count unchanged")
	})
}
