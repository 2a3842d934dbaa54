package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/presence"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

var subj = subjects.New("natter", 1)

func testConfig() presence.Config {
	return presence.Config{Expiry: 2 * time.Second, Grace: time.Second, Workers: 4}
}

// startPresence runs a presence instance on ns until the test ends.
func startPresence(t *testing.T, ns *server.Server, cfg presence.Config) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	p, err := presence.New(cfg, presence.Deps{NC: nc, JS: js, Subjects: subj, Replicas: 1}, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		nc.Close()
	})
}

// gateway plays a gateway: it sends reports as the real one does.
type gateway struct {
	t   *testing.T
	nc  *nats.Conn
	id  string
	seq uint64
}

func newGateway(t *testing.T, ns *server.Server, id string) *gateway {
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return &gateway{t: t, nc: nc, id: id}
}

// send sends r and returns the reply, retrying while no presence instance listens.
func (g *gateway) send(r presencekv.Report) presencekv.Reply {
	g.t.Helper()
	data, _ := json.Marshal(r)
	var reply presencekv.Reply
	require.Eventually(g.t, func() bool {
		m, err := g.nc.Request(subj.Heartbeat(), data, 5*time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			return false
		}
		require.NoError(g.t, err)
		require.NoError(g.t, json.Unmarshal(m.Data, &reply))
		return true
	}, 10*time.Second, 20*time.Millisecond)
	return reply
}

func (g *gateway) heartbeat() presencekv.Reply {
	return g.send(presencekv.Report{Kind: presencekv.KindHeartbeat, Gateway: g.id, IntervalMs: 200})
}

// devices reports users' counts, each with the next seq.
func (g *gateway) devices(counts map[string]int) {
	g.t.Helper()
	users := map[string]presencekv.Devices{}
	for uid, n := range counts {
		g.seq++
		users[uid] = presencekv.Devices{N: n, Seq: g.seq}
	}
	reply := g.send(presencekv.Report{Kind: presencekv.KindDevices, Gateway: g.id, Users: users})
	require.Empty(g.t, reply.Error)
}

// beat sends heartbeats every 200ms until stop is called.
func (g *gateway) beat() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				data, _ := json.Marshal(presencekv.Report{Kind: presencekv.KindHeartbeat, Gateway: g.id, IntervalMs: 200})
				_, _ = g.nc.Request(subj.Heartbeat(), data, time.Second)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// updates records the presence_update frames published.
type updates struct {
	mu  sync.Mutex
	all []protocol.Frame
}

func watch(t *testing.T, ns *server.Server) *updates {
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	u := &updates{}
	_, err = nc.Subscribe(subj.Presence("*"), func(m *nats.Msg) {
		var f protocol.Frame
		require.NoError(t, json.Unmarshal(m.Data, &f))
		require.Equal(t, protocol.FramePresenceUpdate, f.Type)
		require.Equal(t, subj.Presence(f.UserID), m.Subject)
		u.mu.Lock()
		u.all = append(u.all, f)
		u.mu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return u
}

// of returns the updates about uid so far.
func (u *updates) of(uid string) []protocol.Frame {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []protocol.Frame
	for _, f := range u.all {
		if f.UserID == uid {
			out = append(out, f)
		}
	}
	return out
}

func (u *updates) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.all)
}

// statuses returns the statuses published about uid, in order.
func (u *updates) statuses(uid string) []string {
	var out []string
	for _, f := range u.of(uid) {
		out = append(out, f.Status)
	}
	return out
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

func TestTwoInstancesPublishEachChangeOnce(t *testing.T) {
	ns := natstest.Server(t)
	startPresence(t, ns, testConfig())
	startPresence(t, ns, testConfig())
	ups := watch(t, ns)
	gw := newGateway(t, ns, "gw1")
	require.True(t, gw.heartbeat().Resync, "a new gateway reports all its users")
	require.False(t, gw.heartbeat().Resync)
	stop := gw.beat()
	defer stop()

	gw.devices(map[string]int{"u1": 1})
	require.Eventually(t, func() bool { return len(ups.of("u1")) == 1 }, 5*time.Second, 10*time.Millisecond)
	f := ups.of("u1")[0]
	require.Equal(t, "online", f.Status)
	require.Equal(t, 1, f.Devices)

	gw.devices(map[string]int{"u1": 2})
	require.Eventually(t, func() bool { return len(ups.of("u1")) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, ups.of("u1")[1].Devices)

	// A stale report (an older seq, as from a retried or reordered request) is ignored.
	stale := presencekv.Report{Kind: presencekv.KindDevices, Gateway: gw.id,
		Users: map[string]presencekv.Devices{"u1": {N: 7, Seq: 1}}}
	require.Empty(t, gw.send(stale).Error)

	// Many users at once, reports spread over both instances: one update each.
	counts := map[string]int{}
	for i := range 60 {
		counts[fmt.Sprintf("m%d", i)] = 1
	}
	gw.devices(counts)
	require.Eventually(t, func() bool { return ups.count() == 2+60 }, 5*time.Second, 10*time.Millisecond)

	// The last device goes: offline only after the grace period, once.
	left := time.Now()
	gw.devices(map[string]int{"u1": 0})
	require.Eventually(t, func() bool { return len(ups.of("u1")) == 3 }, 5*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(left), testConfig().Grace-100*time.Millisecond, "not before the grace period")
	off := ups.of("u1")[2]
	require.Equal(t, "offline", off.Status)
	require.InDelta(t, left.UnixMilli(), off.LastSeen, 1000)
	require.Equal(t, []string{"online", "online", "offline"}, ups.statuses("u1"), "the stale report changed nothing")

	// The gateway dies: every user goes offline by themselves, once each.
	stop()
	require.Eventually(t, func() bool { return ups.count() == 3+60+60 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 3+60+60, ups.count(), "no double update")
	for uid := range counts {
		require.Equal(t, []string{"online", "offline"}, ups.statuses(uid), uid)
	}
}

func TestQuickReconnectDoesNotFlap(t *testing.T) {
	ns := natstest.Server(t)
	startPresence(t, ns, testConfig())
	ups := watch(t, ns)
	gw := newGateway(t, ns, "gw1")
	gw.heartbeat()
	defer gw.beat()()
	gw.devices(map[string]int{"u": 1})
	require.Eventually(t, func() bool { return len(ups.of("u")) == 1 }, 5*time.Second, 10*time.Millisecond)
	gw.devices(map[string]int{"u": 0})
	gw.devices(map[string]int{"u": 1})
	// Another gateway takes over the user while the first reports 0: still online.
	gw2 := newGateway(t, ns, "gw2")
	gw2.heartbeat()
	defer gw2.beat()()
	gw2.devices(map[string]int{"u": 1})
	gw.devices(map[string]int{"u": 0})
	time.Sleep(testConfig().Grace + 1500*time.Millisecond)
	require.Equal(t, []string{"online"}, ups.statuses("u")[:1])
	for _, f := range ups.of("u") {
		require.Equal(t, "online", f.Status, "never offline: %+v", ups.of("u"))
	}
}

func TestGoneAndSweep(t *testing.T) {
	ns := natstest.Server(t)
	startPresence(t, ns, testConfig())
	ups := watch(t, ns)
	gw := newGateway(t, ns, "gw1")
	gw.heartbeat()
	defer gw.beat()()
	gw.devices(map[string]int{"a": 1, "b": 1})
	require.Eventually(t, func() bool { return ups.count() == 2 }, 5*time.Second, 10*time.Millisecond)

	// After a resync that re-reported only a, the sweep takes b offline.
	before := gw.seq + 1
	gw.devices(map[string]int{"a": 1})
	require.Empty(t, gw.send(presencekv.Report{Kind: presencekv.KindSweep, Gateway: gw.id, Before: before}).Error)
	require.Eventually(t, func() bool { return len(ups.of("b")) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "offline", ups.of("b")[1].Status)
	require.Len(t, ups.of("a"), 1)

	// A gateway stopping cleanly: its users go offline after the grace period.
	require.Empty(t, gw.send(presencekv.Report{Kind: presencekv.KindGone, Gateway: gw.id}).Error)
	require.Eventually(t, func() bool { return len(ups.of("a")) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "offline", ups.of("a")[1].Status)
}

func TestSetStatus(t *testing.T) {
	ns := natstest.Server(t)
	startPresence(t, ns, testConfig())
	ups := watch(t, ns)
	gw := newGateway(t, ns, "gw1")
	gw.heartbeat()
	defer gw.beat()()
	set := func(status string) *presencekv.User {
		r := gw.send(presencekv.Report{Kind: presencekv.KindSet, User: "u", Status: status})
		require.Empty(t, r.Error)
		require.NotNil(t, r.User)
		return r.User
	}
	// Chosen while offline: kept, nothing visible changes.
	u := set("away")
	require.Equal(t, "away", u.Set)
	require.Zero(t, ups.count())
	gw.devices(map[string]int{"u": 1})
	require.Eventually(t, func() bool { return len(ups.of("u")) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "away", ups.of("u")[0].Status)
	u = set("invisible")
	require.Equal(t, 1, u.Devices())
	require.Eventually(t, func() bool { return len(ups.of("u")) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "offline", ups.of("u")[1].Status)
	require.NotZero(t, ups.of("u")[1].LastSeen)
	set("online")
	require.Eventually(t, func() bool { return len(ups.of("u")) == 3 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "online", ups.of("u")[2].Status)
}

func TestBadReportsAreRefused(t *testing.T) {
	ns := natstest.Server(t)
	startPresence(t, ns, testConfig())
	ups := watch(t, ns)
	gw := newGateway(t, ns, "gw1")
	gw.heartbeat()
	many := map[string]presencekv.Devices{}
	for i := range presencekv.MaxReportUsers + 1 {
		many[fmt.Sprintf("u%d", i)] = presencekv.Devices{N: 1, Seq: uint64(i + 1)}
	}
	for _, tc := range []struct {
		name string
		r    presencekv.Report
	}{
		{"no kind", presencekv.Report{Gateway: "gw1"}},
		{"unknown kind", presencekv.Report{Kind: "launch", Gateway: "gw1"}},
		{"gateway id with dot", presencekv.Report{Kind: presencekv.KindHeartbeat, Gateway: "gw.>"}},
		{"no gateway", presencekv.Report{Kind: presencekv.KindDevices}},
		{"user id wildcard", presencekv.Report{Kind: presencekv.KindDevices, Gateway: "gw1", Users: map[string]presencekv.Devices{"*": {N: 1, Seq: 1}}}},
		{"negative devices", presencekv.Report{Kind: presencekv.KindDevices, Gateway: "gw1", Users: map[string]presencekv.Devices{"u": {N: -1, Seq: 1}}}},
		{"no seq", presencekv.Report{Kind: presencekv.KindDevices, Gateway: "gw1", Users: map[string]presencekv.Devices{"u": {N: 1}}}},
		{"too many users", presencekv.Report{Kind: presencekv.KindDevices, Gateway: "gw1", Users: many}},
		{"set bad status", presencekv.Report{Kind: presencekv.KindSet, User: "u", Status: "busy"}},
		{"set bad user", presencekv.Report{Kind: presencekv.KindSet, User: "u.v", Status: "away"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gw.send(tc.r)
			require.Contains(t, r.Error, "bad report")
		})
	}
	t.Run("malformed JSON", func(t *testing.T) {
		m, err := gw.nc.Request(subj.Heartbeat(), []byte(`{"kind":`), 5*time.Second)
		require.NoError(t, err)
		require.Contains(t, string(m.Data), "bad report")
	})
	time.Sleep(200 * time.Millisecond)
	require.Zero(t, ups.count(), "nothing changed")
}
