package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This file runs natter as an operator would: one OS process per role instance,
// built from this module, on a 3-node cluster of nats-server processes with R3
// streams (proc_test.go), sharing one SQLite file (WAL mode works across
// processes on one machine; across machines use Cassandra). Processes are killed
// with SIGKILL and restarted; a gateway is also stopped with SIGTERM (the drain).
// NATS nodes are crashed in crash_test.go.

// procCluster is the set of processes of one test.
type procCluster struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex // guards gws
	gws    []*proc
}

// liveGateways returns the addresses of the gateways whose process runs.
func (pc *procCluster) liveGateways() []string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var out []string
	for _, g := range pc.gws {
		if a := g.gatewayAddr(); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (pc *procCluster) token(user string) string {
	tok, err := auth.Sign(pc.secret, user, time.Hour, false)
	require.NoError(pc.t, err)
	return tok
}

// pclient is one user's device, sending under load and reconnecting to whichever
// gateway is up, resuming with sync.
type pclient struct {
	pc    *procCluster
	user  string
	pref  int // preferred gateway index
	chat  string
	hints atomic.Int32 // reconnect hints received

	mu    sync.Mutex // guards the fields below
	conn  *client.Conn
	seen  map[uint64]string // seq -> message ID, live or from sync
	sent  map[string]bool   // message IDs sent at least once
	acked []string
	err   error
}

// connect dials a live gateway, preferring pref, and resumes from the highest
// contiguous seq seen.
func (c *pclient) connect(ctx context.Context) (*client.Conn, error) {
	gws := c.pc.liveGateways()
	if len(gws) == 0 {
		return nil, errors.New("no gateway up")
	}
	addr := gws[c.pref%len(gws)]
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := client.Dial(dctx, "ws://"+addr+"/ws", c.pc.token(c.user), nil)
	if err != nil {
		return nil, err
	}
	go c.read(conn)
	sctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := conn.Sync(sctx, []protocol.ChatCursor{{ChatID: c.chat, Seq: c.contiguous()}}); err != nil {
		conn.CloseNow()
		return nil, err
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	return conn, nil
}

func (c *pclient) read(conn *client.Conn) {
	for f := range conn.Frames() {
		switch f.Type {
		case protocol.FrameMessage:
			c.mu.Lock()
			if prev, ok := c.seen[f.Seq]; ok && prev != f.MessageID {
				c.err = fmt.Errorf("%s: seq %d is %s and %s", c.user, f.Seq, prev, f.MessageID)
			}
			c.seen[f.Seq] = f.MessageID
			c.mu.Unlock()
		case protocol.FrameReconnect:
			c.hints.Add(1)
		}
	}
}

// contiguous is the highest seq such that every seq up to it was seen.
func (c *pclient) contiguous() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s uint64
	for {
		if _, ok := c.seen[s+1]; !ok {
			return s
		}
		s++
	}
}

func (c *pclient) ackedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// run sends until ctx ends: each message is resent with the same ID until acked,
// across reconnects. A receiver (send false) only keeps its connection up.
func (c *pclient) run(ctx context.Context, interval time.Duration, send bool) {
	var conn *client.Conn
	for !send && ctx.Err() == nil {
		if conn == nil || connDone(conn) {
			var err error
			if conn, err = c.connect(ctx); err != nil {
				conn = nil
			}
		}
		procSleep(ctx, 50*time.Millisecond)
	}
	for i := 0; ctx.Err() == nil; i++ {
		id := fmt.Sprintf("%s-%05d", c.user, i)
		for ctx.Err() == nil {
			if conn == nil || connDone(conn) {
				var err error
				if conn, err = c.connect(ctx); err != nil {
					conn = nil
					procSleep(ctx, 100*time.Millisecond)
					continue
				}
			}
			c.mu.Lock()
			c.sent[id] = true
			c.mu.Unlock()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := conn.Send(sctx, c.chat, id, "from "+c.user)
			cancel()
			if err == nil {
				c.mu.Lock()
				c.acked = append(c.acked, id)
				c.mu.Unlock()
				break
			}
			var pe *protocol.Error
			if errors.As(err, &pe) && !pe.Code.Retryable() {
				c.mu.Lock()
				c.err = fmt.Errorf("%s: send %s: %w", c.user, id, err)
				c.mu.Unlock()
				return
			}
			conn.CloseNow()
			conn = nil
		}
		procSleep(ctx, interval)
	}
}

func connDone(c *client.Conn) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

func procSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// restGet makes an authenticated GET to a gateway and returns the 2xx body.
func restGet(t *testing.T, addr, path, token string) []byte {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, string(out))
	return out
}

// restPost makes an authenticated JSON POST to a gateway.
func restPost(t *testing.T, addr, path, token string, body any) []byte {
	t.Helper()
	data, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(data))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, string(out))
	return out
}

// TestRolesAsSeparateProcesses: 2 gateways, 2 sequencers, a persister (and the
// presence and notifier roles when this build has them) as separate processes on
// a 3-node NATS cluster with R3 streams. Clients on different gateways chat under
// load while one process of each role is killed with SIGKILL and restarted, and a
// gateway is drained with SIGTERM. Every acked message must be delivered to every
// member and be in history, with seqs 1..N and no gap or duplicate; presence crosses
// gateways.
func TestRolesAsSeparateProcesses(t *testing.T) {
	dir := t.TempDir()
	cl := startNATSCluster(t, 3)
	secret := []byte(strings.Repeat("k", 16) + "natter-cluster-process-test")
	secretFile := filepath.Join(dir, "jwt.secret")
	require.NoError(t, os.WriteFile(secretFile, secret, 0o600))
	dbPath := filepath.Join(dir, "natter.db")
	pc := &procCluster{t: t, secret: secret}

	var procs []*proc
	newProc := func(name string, roles string, extra ...string) *proc {
		p := newProc(t, dir, name, roles == app.RoleGateway, append([]string{"serve", "--roles", roles,
			"--nats.url", cl.URLs(), "--nats.replicas", "3", "--nats.partitions", "4",
			"--data-dir", filepath.Join(dir, name), "--store.sqlite-path", dbPath,
			"--auth.dev=false", "--auth.secret-file", secretFile,
			"--log.level", "info",
			"--gateway.drain-window", "300ms", "--gateway.consent-direct-adds",
			"--sequencer.pinned-ttl", "2s",
			"--persister.ack-wait", "2s",
			"--presence.grace", "0s",
			// A killed gateway's devices must expire well within the test.
			"--presence.expiry", "4s", "--gateway.presence-heartbeat", "1s",
		}, extra...)...)
		procs = append(procs, p)
		return p
	}
	t.Cleanup(func() { stopAll(t, procs) })
	seq := []*proc{newProc("sequencer-1", app.RoleSequencer), newProc("sequencer-2", app.RoleSequencer)}
	gw := []*proc{newProc("gateway-1", app.RoleGateway), newProc("gateway-2", app.RoleGateway)}
	pc.gws = gw
	pers := newProc("persister-1", app.RolePersister)
	others := []*proc{}
	for _, r := range []string{"presence", "notifier"} {
		if _, err := app.Targets([]string{r}); err == nil {
			others = append(others, newProc(r+"-1", r))
		} else {
			t.Logf("role %s is not in this build: not started", r)
		}
	}
	// The first process creates the R3 streams; the others then start concurrently,
	// each waiting for its own readiness.
	seq[0].start()
	var wg sync.WaitGroup
	for _, p := range procs[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); p.start() }()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	users := []string{"alice", "bob", "carol"}
	out := restPost(t, gw[0].gatewayAddr(), "/api/v1/chats", pc.token("alice"), map[string]any{"type": "group", "name": "ops", "members": users[1:]})
	var chat struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(out, &chat))

	// alice on gateway 1, bob on gateway 2, carol on both (two devices).
	clients := []*pclient{
		{pc: pc, user: "alice", pref: 0, chat: chat.ID, seen: map[uint64]string{}, sent: map[string]bool{}},
		{pc: pc, user: "bob", pref: 1, chat: chat.ID, seen: map[uint64]string{}, sent: map[string]bool{}},
		{pc: pc, user: "carol", pref: 0, chat: chat.ID, seen: map[uint64]string{}, sent: map[string]bool{}},
		{pc: pc, user: "carol", pref: 1, chat: chat.ID, seen: map[uint64]string{}, sent: map[string]bool{}},
	}
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var load sync.WaitGroup
	for i, c := range clients {
		load.Add(1)
		go func() { defer load.Done(); c.run(ctx, 15*time.Millisecond, i < 3) }() // carol's second device only receives
	}

	total := func() int {
		n := 0
		for _, c := range clients {
			n += c.ackedCount()
		}
		return n
	}
	minSeen := func() int {
		m := -1
		for _, c := range clients {
			c.mu.Lock()
			if m < 0 || len(c.seen) < m {
				m = len(c.seen)
			}
			c.mu.Unlock()
		}
		return m
	}
	// progress waits until messages are acked and delivered beyond where they are.
	began := time.Now()
	progress := func(what string) {
		t.Helper()
		defer func() { t.Logf("%5.1fs traffic flows %s", time.Since(began).Seconds(), what) }()
		a, s := total(), minSeen()
		ok := assert.Eventually(t, func() bool { return total() >= a+45 && minSeen() >= s+45 }, 30*time.Second, 20*time.Millisecond,
			"traffic flows %s", what)
		if !ok {
			t.Logf("acked %d→%d, delivered to every device %d→%d", a, total(), s, minSeen())
		}
		for _, c := range clients {
			c.mu.Lock()
			require.NoError(t, c.err)
			c.mu.Unlock()
		}
		require.True(t, ok)
	}
	progress("at first")

	// SIGKILL one process of each role, under load, and restart it.
	for _, victim := range append([]*proc{gw[0], seq[0], pers}, others...) {
		victim.kill()
		progress("with " + victim.name + " killed")
		victim.start()
		progress("after " + victim.name + " restarted")
	}
	// The other sequencer too: partitions move back to the restarted one.
	seq[1].kill()
	progress("with sequencer-2 killed")
	seq[1].start()

	// SIGTERM a gateway: its clients get reconnect hints, move, and lose nothing.
	gw[1].terminate()
	require.Positive(t, clients[1].hints.Load()+clients[3].hints.Load(), "gateway-2's clients were told to reconnect")
	progress("with gateway-2 drained")
	gw[1].start()
	progress("at the end")

	stopLoad()
	load.Wait()

	// Every acked message is delivered to every device (live or through sync on
	// reconnect), in one order, seqs 1..N with no gap, and is in history.
	acked, sent := map[string]bool{}, map[string]bool{}
	for _, c := range clients {
		require.NoError(t, c.err)
		for _, id := range c.acked {
			acked[id] = true
		}
		for id := range c.sent {
			sent[id] = true
		}
	}
	st, err := store.OpenSQLite(ctxT(t, 10*time.Second), dbPath)
	require.NoError(t, err)
	defer st.Close()
	// Converge: every device resumes (sync) until it has every acked message with
	// no gap, all devices agree on N, and the persister has stored seqs 1..N.
	// (A send whose ack the stopped load never saw may be among the N.)
	var n int
	resume := func(c *pclient) {
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn == nil || connDone(conn) {
			_, _ = c.connect(context.Background())
			return
		}
		_, _ = conn.Sync(ctxT(t, 5*time.Second), []protocol.ChatCursor{{ChatID: c.chat, Seq: c.contiguous()}})
	}
	converged := func() bool {
		n = -1
		for _, c := range clients {
			resume(c)
			c.mu.Lock()
			have := len(c.seen)
			ids := make(map[string]bool, have)
			for _, id := range c.seen {
				ids[id] = true
			}
			c.mu.Unlock()
			if uint64(have) != c.contiguous() || (n >= 0 && have != n) {
				return false
			}
			n = have
			for id := range acked {
				if !ids[id] {
					return false
				}
			}
		}
		last, err := st.LastSeq(ctxT(t, 5*time.Second), chat.ID)
		return err == nil && int(last) == n &&
			pers.metricSum("natter_consumer_pending", `consumer="PERSISTER"`) == 0 &&
			pers.metricSum("natter_consumer_ack_pending", `consumer="PERSISTER"`) == 0
	}
	require.Eventually(t, converged, 30*time.Second, 100*time.Millisecond,
		"every device gets every acked message, seqs 1..N, and the persister stores them")
	t.Logf("%5.1fs converged: %d messages acked (%d sequenced) through %d processes under faults",
		time.Since(began).Seconds(), len(acked), n, len(procs))
	// One order for everyone, each message once, every acked message among them.
	order := clients[0].seen
	for _, c := range clients {
		c.mu.Lock()
		require.Len(t, c.seen, n, "%s: nothing beyond the sequenced messages", c.user)
		ids := map[string]bool{}
		for s := uint64(1); s <= uint64(n); s++ {
			id := c.seen[s]
			require.Equal(t, order[s], id, "%s sees the same order", c.user)
			require.False(t, ids[id], "%s: %s delivered under two seqs", c.user, id)
			ids[id] = true
			require.True(t, sent[id], "%s: %s was never sent", c.user, id)
		}
		for id := range acked {
			require.True(t, ids[id], "%s: acked message %s delivered", c.user, id)
		}
		c.mu.Unlock()
	}

	// Persisted in order in the shared SQLite file.
	var stored []protocol.Message
	for after := uint64(0); ; {
		page, err := st.History(ctxT(t, 5*time.Second), chat.ID, store.HistoryQuery{Dir: store.Forward, After: after, Limit: store.MaxPage})
		require.NoError(t, err)
		stored = append(stored, page...)
		if len(page) < store.MaxPage {
			break
		}
		after = page[len(page)-1].Seq
	}
	require.Len(t, stored, n)
	for i, m := range stored {
		require.EqualValues(t, i+1, m.Seq, "history has no gap")
		require.Equal(t, order[m.Seq], m.MessageID, "history has the delivered order")
	}

	// Presence crosses gateways: bob, through gateway 2, sees alice (connected to
	// gateway 1) online, and offline once her devices are gone.
	if len(others) > 0 && others[0].name == "presence-1" {
		presence := func() string {
			body := restGet(t, gw[1].gatewayAddr(), "/api/v1/users/alice/presence", pc.token("bob"))
			var p struct {
				Status string `json:"status"`
			}
			require.NoError(t, json.Unmarshal(body, &p))
			return p.Status
		}
		require.Eventually(t, func() bool { return presence() == "online" }, 10*time.Second, 50*time.Millisecond)
		clients[0].mu.Lock()
		clients[0].conn.CloseNow()
		clients[0].mu.Unlock()
		if !assert.Eventually(t, func() bool { return presence() == "offline" }, 10*time.Second, 50*time.Millisecond,
			"alice offline once her only connection closed") {
			dumpPresence(t, cl.URLs(), "alice")
			t.FailNow()
		}
	}

	// The processes' metrics saw it: sequencing happened on both sequencers' watch.
	var sequenced float64
	for _, s := range seq {
		if v := s.metricSum("natter_sequencer_sequenced_total", ""); v > 0 {
			sequenced += v
		}
	}
	require.Positive(t, sequenced)
}

// dumpPresence logs the presence bucket's entries about user (its summary and
// each gateway's device count): what a failed presence check needs to be read.
func dumpPresence(t *testing.T, urls, user string) {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Logf("presence dump: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx := ctxT(t, 10*time.Second)
	kv, err := js.KeyValue(ctx, presencekv.Bucket)
	if err != nil {
		t.Logf("presence dump: %v", err)
		return
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Logf("presence dump: %v", err)
		return
	}
	for k := range keys.Keys() {
		if !strings.Contains(k, user) && !strings.HasPrefix(k, presencekv.LeaseKey("")) {
			continue
		}
		if e, err := kv.Get(ctx, k); err == nil {
			t.Logf("presence dump: %s rev %d at %s: %s", k, e.Revision(), e.Created().Format(time.RFC3339Nano), e.Value())
		}
	}
}
