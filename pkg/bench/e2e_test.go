package bench_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/bench"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// start returns a natter for one test and a bench configuration pointed at it.
func start(t *testing.T, mode string) *bench.Config {
	return startWith(t, mode, testutil.Config(t))
}

// startWith is start on a server configured as c.
func startWith(t *testing.T, mode string, c *app.Config) *bench.Config {
	n := testutil.StartNatter(t, c)
	return &bench.Config{Mode: mode, URLs: []string{n.WSURL()}, DataDir: n.Config.DataDir,
		NATSURL: n.NATS.ClientURL(), Rate: -1, Duration: time.Second, Warmup: 200 * time.Millisecond,
		Size: 64, Window: 16, DialConcurrency: 8, CreateConcurrency: 4, DrainTimeout: 20 * time.Second,
		BaselineDuration: 500 * time.Millisecond}
}

// TestBenchLoadDeliversEverything is a short real run: every message sent is
// delivered to every connection of every member, with no errors. Correctness
// only: nothing here depends on how fast the machine is.
func TestBenchLoadDeliversEverything(t *testing.T) {
	tests := []struct {
		name                      string
		conns, users, size, chats int
		rate                      float64
		recipientsPerMessage      int64
		baseline                  bool
	}{
		{"1:1 paced, with baseline", 6, 6, 2, 3, 60, 2, true},
		{"groups of 3, two devices per user", 6, 3, 3, 1, 30, 6, false},
		{"1:1 unpaced (window-bound)", 4, 4, 2, 2, 0, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := start(t, "load")
			cfg.Conns, cfg.Users, cfg.ChatSize, cfg.Chats, cfg.Rate, cfg.Baseline = tc.conns, tc.users, tc.size, tc.chats, tc.rate, tc.baseline
			require.NoError(t, cfg.Resolve())
			res, err := bench.Run(t.Context(), cfg)
			require.NoError(t, err)
			require.Empty(t, res.Errors)
			require.EqualValues(t, tc.conns, res.Connected)
			require.Positive(t, res.Sent)
			require.Equal(t, res.Sent, res.Acked)
			require.Equal(t, res.Sent*tc.recipientsPerMessage, res.Delivered, "delivered == sent × recipients")
			require.Equal(t, res.Expected, res.Delivered)
			require.NotNil(t, res.Persisted)
			require.True(t, *res.Persisted, "the persister caught up")
			require.NotNil(t, res.Notified, "the notifier runs: its catch-up is reported")
			require.True(t, *res.Notified, "the notifier caught up")
			require.Positive(t, res.Latency.Count)
			require.True(t, res.OK)
			if tc.baseline {
				require.NotNil(t, res.Baseline)
				require.Positive(t, res.Baseline.Published)
				require.Positive(t, res.Ratio)
			}
			var out bytes.Buffer
			res.WriteJSON(&out)
			var back bench.Result
			require.NoError(t, json.Unmarshal(out.Bytes(), &back), "--json output parses")
			require.Equal(t, res.Delivered, back.Delivered)
		})
	}
}

// TestBenchResumeLosesNothing disconnects every client, posts while they are away,
// and checks each resumed client got every message with no gap or duplicate.
func TestBenchResumeLosesNothing(t *testing.T) {
	cfg := start(t, "resume")
	cfg.Conns, cfg.OfflineMsgs = 8, 3
	require.NoError(t, cfg.Resolve())
	res, err := bench.Run(t.Context(), cfg)
	require.NoError(t, err)
	require.NotNil(t, res.Resume)
	require.EqualValues(t, 8, res.Resume.Resumed)
	require.Zero(t, res.Resume.Incomplete)
	require.Zero(t, res.Resume.Dupes)
	require.Zero(t, res.Resume.Gaps)
	require.Empty(t, res.Errors)
	require.True(t, res.OK)
}

// TestBenchFanoutAndIdle covers the other client modes on one server. The fan-out
// group has more members than a user may name when creating one (the default
// gateway.limits.member-add-burst, 200): the bench fills it in bulk (the fan-out
// mode at 1,000 and 10,000 members had failed with too_large since those limits),
// as it does a group of more strangers than a user may invite at once (the default
// gateway.limits.invite-burst, 20).
func TestBenchFanoutAndIdle(t *testing.T) {
	c := testutil.Config(t)
	c.Gateway.Limits.REST.MemberAddRate, c.Gateway.Limits.REST.MemberAddBurst = 1, 200 // the default burst
	// The defaults: strangers are invited, at most 20 at once.
	c.Gateway.Limits.REST.InviteRate, c.Gateway.Limits.REST.InviteBurst = 0.05, 20
	c.Gateway.Consent.DirectAdds = false
	cfg := startWith(t, "fanout", c)
	cfg.Members, cfg.Rate = 250, 5
	require.NoError(t, cfg.Resolve())
	res, err := bench.Run(t.Context(), cfg)
	require.NoError(t, err)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent*250, res.Delivered)
	require.True(t, res.OK)

	idle := *cfg
	idle.Mode, idle.Conns, idle.Users, idle.Duration = "idle", 10, 0, 300*time.Millisecond
	require.NoError(t, idle.Resolve())
	res, err = bench.Run(t.Context(), &idle)
	require.NoError(t, err)
	require.EqualValues(t, 10, res.Connected)
	require.NotNil(t, res.Idle)
	require.True(t, res.OK)

	// Between the invitation burst (20) and the member-add burst (200): a user may
	// not invite that many strangers at once either (too_large before).
	small := *cfg
	small.Members = 50
	require.NoError(t, small.Resolve())
	res, err = bench.Run(t.Context(), &small)
	require.NoError(t, err)
	require.Equal(t, res.Sent*50, res.Delivered)
	require.True(t, res.OK)
}

// TestBenchPublishAcksEverything runs the publish mode (pkg/publish batches over
// NATS as the backend user): every published message is acked, none fails, and
// the persister catches up.
func TestBenchPublishAcksEverything(t *testing.T) {
	for _, batch := range []int{1, 7} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			cfg := start(t, "publish")
			cfg.Conns, cfg.Batch, cfg.Publishers = 6, batch, 3
			cfg.GatewayPIDs = []int{os.Getpid()} // the server runs in this process: its CPU is measured
			require.NoError(t, cfg.Resolve())
			res, err := bench.Run(t.Context(), cfg)
			require.NoError(t, err)
			require.Empty(t, res.Errors)
			require.Positive(t, res.Sent)
			require.Equal(t, res.Sent, res.Acked)
			require.Zero(t, res.Failed)
			require.NotNil(t, res.Publish)
			require.Equal(t, batch, res.Publish.Batch)
			require.Positive(t, res.Publish.Batches)
			require.NotNil(t, res.Persisted)
			require.True(t, *res.Persisted, "the persister caught up")
			require.NotNil(t, res.Notified, "the notifier runs: its catch-up is reported")
			require.True(t, *res.Notified, "the notifier caught up")
			require.True(t, res.OK)
			// The CPU until every role caught up holds the window's and what came
			// after it.
			require.Positive(t, res.Publish.ServerCPUPerMsgUs)
			require.GreaterOrEqual(t, res.Publish.CaughtUpCPUPerMsgUs, res.Publish.ServerCPUPerMsgUs)
			var out bytes.Buffer
			res.WriteTable(&out)
			require.Contains(t, out.String(), "batch→answered")
			require.Contains(t, out.String(), "until caught up")
			require.Contains(t, out.String(), "notifier")
		})
	}
}

// With --rate the publish mode's publishers share a cap: over the 1.2 s they
// publish (warm-up and window) at most rate × 1.2 s messages plus one batch go out
// (the limiter's burst), and some do.
func TestBenchPublishRate(t *testing.T) {
	cfg := start(t, "publish")
	cfg.Conns, cfg.Batch, cfg.Publishers, cfg.Rate = 6, 5, 4, 50
	require.NoError(t, cfg.Resolve())
	require.EqualValues(t, 50, cfg.Rate, "a rate given is kept")
	res, err := bench.Run(t.Context(), cfg)
	require.NoError(t, err)
	require.Positive(t, res.Sent)
	require.LessOrEqual(t, res.Sent, int64(50*1.2)+5, "capped at the rate")
	require.Equal(t, res.Sent, res.Acked)

	def := start(t, "publish")
	def.Batch, def.Publishers = 1, 1
	require.NoError(t, def.Resolve())
	require.Zero(t, def.Rate, "no cap by default")
}

func TestMainRefusesBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Error(t, bench.Main([]string{"--mode", "nope", "--embedded"}, &out, &errOut, nil))
	require.Error(t, bench.Main([]string{"--embedded"}, &out, &errOut, nil), "no Starter: --embedded is refused")
	require.Error(t, bench.Main([]string{"--conns", "x"}, &out, &errOut, nil))
	require.Error(t, bench.Main([]string{"stray"}, &out, &errOut, nil))
}

// TestBenchManyChatsThroughTheStore creates direct chats in the server's store
// (more chats than users, so every user is in several) and sends to random ones:
// everything is delivered, as for chats made over REST. A second run reuses the
// first one's chats (--run, --create existing).
func TestBenchManyChatsThroughTheStore(t *testing.T) {
	cfg := start(t, "load")
	cfg.Conns, cfg.Chats, cfg.Rate, cfg.Create, cfg.SampleEvery = 6, 12, 60, "store", 300*time.Millisecond
	cfg.GatewayPIDs = []int{os.Getpid()} // the test's natter runs in this process
	require.NoError(t, cfg.Resolve())
	res, err := bench.Run(t.Context(), cfg)
	require.NoError(t, err)
	require.Equal(t, 12, res.Chats, "every pair is a distinct chat")
	require.Equal(t, "store", res.CreateVia)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent*2, res.Delivered)
	require.True(t, res.OK)
	require.Greater(t, res.ChatsTouched, 1.0)
	var at []string
	for _, s := range res.Server {
		at = append(at, s.At)
	}
	require.Subset(t, at, []string{"start", "created", "connected", "end"})
	require.Greater(t, len(at), 4, "samples during the window (--sample-every)")
	for _, s := range res.Server {
		require.Positive(t, s.RSS, s.At)
	}

	again := *cfg
	again.RunID, again.Create, again.SampleEvery = res.Run, "existing", 0
	require.NoError(t, again.Resolve())
	res2, err := bench.Run(t.Context(), &again)
	require.NoError(t, err)
	require.Equal(t, res.Run, res2.Run)
	require.Equal(t, 12, res2.Chats)
	require.Equal(t, res2.Sent*2, res2.Delivered)
	require.True(t, res2.OK)
}

// TestBenchLargeGroup builds a group of 2,500 with bulk adds, 40 of them connected:
// every message reaches every connected member and every offline member is
// notified, the last time of the newest message.
func TestBenchLargeGroup(t *testing.T) {
	cfg := start(t, "largegroup")
	cfg.Members, cfg.GroupSize, cfg.Rate, cfg.NotifyTimeout = 40, 2500, 5, time.Minute
	require.NoError(t, cfg.Resolve())
	res, err := bench.Run(t.Context(), cfg)
	require.NoError(t, err)
	require.Empty(t, res.Errors)
	require.EqualValues(t, 40, res.Connected)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent*40, res.Delivered, "every connected member, the sender included")
	require.NotNil(t, res.LargeGroup)
	require.Equal(t, 2500, res.LargeGroup.GroupSize)
	require.Equal(t, 3, res.LargeGroup.AddCalls)
	require.EqualValues(t, 2500-40, res.LargeGroup.NotifyWant)
	require.Equal(t, res.LargeGroup.NotifyWant, res.LargeGroup.Notified)
	require.Positive(t, res.LargeGroup.NotifyAllS)
	require.Greater(t, res.LargeGroup.NewestSeq, uint64(res.Sent), "the chat's last seq: the adds' events and every send")
	require.Equal(t, res.LargeGroup.NotifyWant, res.LargeGroup.NotifiedNewest, "every offline member notified of the newest message")
	require.GreaterOrEqual(t, res.LargeGroup.NotifyNewestS, res.LargeGroup.NotifyFirst)
	require.True(t, res.OK)
}
