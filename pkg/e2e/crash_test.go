package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
)

// TestCrashes crashes everything there is to crash, for real, under load from
// several senders: natter role processes and nats-server processes (3 nodes,
// sync_interval: always, R3 streams) are killed with SIGKILL — a gateway, a
// sequencer, the persister, the NATS node leading NATTER_IN, the one leading
// NATTER_LOG, and a role together with a NATS node — and restarted. Then what
// every sender was acknowledged is checked against history (REST, and the store
// once the persister has caught up) and against what every member's devices
// received: nothing lost, nothing duplicated, one order per chat, each sender's
// messages in the order it sent them, no gaps. Each fault's failover time (from
// the kill until every sender is acknowledged again, and until every device
// receives messages sent after the kill) is logged in a fixed format beside the
// counts:
//
//	crash <fault>: send failover <s>s, delivery failover <s>s
//	crash summary: acked <n>, stored <n>, lost <n>, duplicated <n>, reordered <n>, fifo violations <n>, gaps <n>; worst send failover <s>s (<fault>), worst delivery failover <s>s (<fault>)
func TestCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: about two minutes of processes being killed; it runs in the full suite")
	}
	dir := t.TempDir()
	cl := startNATSCluster(t, 3)
	if keep := os.Getenv("NATTER_CRASH_KEEP"); keep != "" {
		// Every process's log, for a post-mortem of a failed run.
		t.Cleanup(func() {
			if t.Failed() {
				_ = exec.Command("cp", "-r", dir, filepath.Join(keep, "natter")).Run()
				for _, nd := range cl.nodes {
					_ = exec.Command("cp", nd.log(), filepath.Join(keep, nd.name+".log")).Run()
				}
			}
		})
	}
	rig := newCrashRig(t, dir, cl)
	defer rig.stop()

	// Six users in two overlapping groups and one direct chat: several chats, so
	// several ingress partitions and both sequencers are busy.
	g1 := rig.createChat("u1", "group", "u2", "u3", "u4")
	g2 := rig.createChat("u3", "group", "u4", "u5", "u6")
	d1 := rig.createChat("u1", "direct", "u6")
	chatsOf := map[string][]string{
		"u1": {g1, d1}, "u2": {g1}, "u3": {g1, g2}, "u4": {g1, g2}, "u5": {g2}, "u6": {g2, d1},
	}
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		rig.addDevice(u, chatsOf[u], true)
	}
	// Receive-only second devices, on the other gateway.
	rig.addDevice("u3", chatsOf["u3"], false)
	rig.addDevice("u6", chatsOf["u6"], false)
	rig.startLoad()
	rig.progress("at first")

	gw, seq, pers := rig.gateways, rig.sequencers, rig.persister
	inLeader := func() int { return rig.leader(subjects.InStream) }
	logLeader := func() int { return rig.leader(subjects.LogStream) }
	rig.crash("gateway", []*proc{gw[0]}, nil)
	rig.crash("sequencer", []*proc{seq[0]}, nil)
	rig.crash("persister", []*proc{pers}, nil)
	rig.crash("NATS node leading NATTER_IN", nil, inLeader)
	rig.crash("NATS node leading NATTER_LOG", nil, logLeader)
	rig.crash("sequencer + NATTER_IN leader node", []*proc{seq[1]}, inLeader)
	rig.crash("gateway + NATTER_LOG leader node", []*proc{gw[1]}, logLeader)
	// An ack means sequenced now, so each ack takes longer than a
	// NATTER_IN store did and the phases above can end with fewer acks than check
	// asks of a run that means something: the load runs on until it has them.
	rig.loadUntil(minCrashAcks)
	rig.check()
}

// minCrashAcks is the fewest acknowledged sends a TestCrashes run checks.
const minCrashAcks = 301

// loadUntil lets the load run until acked sends reach n (60 s at most).
func (r *crashRig) loadUntil(n int) {
	if !waitFor(60*time.Second, func() bool { a, _ := r.counts(); return a >= n }) {
		a, _ := r.counts()
		r.logf("load reached %d acks, not %d", a, n)
	}
}

// crashRig is the processes of TestCrashes and the devices loading them.
type crashRig struct {
	t          *testing.T
	dir        string
	cl         *natsCluster
	secret     []byte
	dbPath     string
	js         jetstream.JetStream // the test's own view of the cluster
	procs      []*proc
	gateways   []*proc
	sequencers []*proc
	persister  *proc
	began      time.Time

	devices  []*cdevice
	stopLoad context.CancelFunc
	load     sync.WaitGroup
	faults   []crashFault
}

// crashFault is one fault injected and when.
type crashFault struct {
	name string
	at   time.Time
	nats string // the NATS node killed ("" if none)
	send time.Duration
	recv time.Duration
}

func newCrashRig(t *testing.T, dir string, cl *natsCluster) *crashRig {
	r := &crashRig{t: t, dir: dir, cl: cl, began: time.Now(),
		secret: []byte(strings.Repeat("c", 16) + "natter-crash-test"), dbPath: filepath.Join(dir, "natter.db")}
	secretFile := filepath.Join(dir, "jwt.secret")
	require.NoError(t, os.WriteFile(secretFile, r.secret, 0o600))
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	r.js, err = jetstream.New(nc)
	require.NoError(t, err)
	mk := func(name, roles string) *proc {
		p := newProc(t, dir, name, roles == app.RoleGateway, "serve", "--roles", roles,
			"--nats.url", cl.URLs(), "--nats.replicas", "3", "--nats.partitions", "4",
			"--data-dir", filepath.Join(dir, name), "--store.sqlite-path", r.dbPath,
			"--auth.dev=false", "--auth.secret-file", secretFile, "--log.level", "info",
			"--sequencer.pinned-ttl", "2s", "--persister.ack-wait", "2s", "--gateway.consent-direct-adds")
		r.procs = append(r.procs, p)
		return p
	}
	r.sequencers = []*proc{mk("sequencer-1", app.RoleSequencer), mk("sequencer-2", app.RoleSequencer)}
	r.gateways = []*proc{mk("gateway-1", app.RoleGateway), mk("gateway-2", app.RoleGateway)}
	r.persister = mk("persister-1", app.RolePersister)
	// The first process creates the R3 streams; the others then start together.
	r.sequencers[0].start()
	var wg sync.WaitGroup
	for _, p := range r.procs[1:] {
		wg.Go(p.start)
	}
	wg.Wait()
	t.Cleanup(func() { stopAll(t, r.procs) })
	return r
}

func (r *crashRig) logf(format string, args ...any) {
	r.t.Logf("%6.1fs "+format, append([]any{time.Since(r.began).Seconds()}, args...)...)
}

func (r *crashRig) token(user string) string {
	tok, err := auth.Sign(r.secret, user, time.Hour, false)
	require.NoError(r.t, err)
	return tok
}

func (r *crashRig) createChat(owner, kind string, members ...string) string {
	out := restPost(r.t, r.gateways[0].gatewayAddr(), "/api/v1/chats", r.token(owner),
		map[string]any{"type": kind, "name": "crash", "members": members})
	var chat struct {
		ID string `json:"id"`
	}
	require.NoError(r.t, json.Unmarshal(out, &chat))
	return chat.ID
}

// liveGateways returns the addresses of the gateways that run.
func (r *crashRig) liveGateways() []string {
	var out []string
	for _, g := range r.gateways {
		if a := g.gatewayAddr(); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (r *crashRig) addDevice(user string, chats []string, send bool) {
	d := &cdevice{rig: r, user: user, chats: chats, send: send, pref: len(r.devices),
		seen: map[string]map[uint64]string{}, seenAt: map[string]time.Time{}, sent: map[string]bool{},
		refused: map[string]string{}}
	for _, c := range chats {
		d.seen[c] = map[uint64]string{}
	}
	r.devices = append(r.devices, d)
}

func (r *crashRig) startLoad() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stopLoad = cancel
	for _, d := range r.devices {
		r.load.Go(func() { d.run(ctx) })
	}
}

func (r *crashRig) stop() {
	if r.stopLoad != nil {
		r.stopLoad()
		r.load.Wait()
	}
}

// counts returns the messages acked to every sender, and delivered to every device.
func (r *crashRig) counts() (acked, delivered int) {
	for _, d := range r.devices {
		d.mu.Lock()
		acked += len(d.acked)
		for _, s := range d.seen {
			delivered += len(s)
		}
		d.mu.Unlock()
	}
	return acked, delivered
}

// progress waits until every sender has been acked, and every device has received
// messages in each of its chats, a few times more since the call.
func (r *crashRig) progress(what string) {
	r.t.Helper()
	start := map[*cdevice]map[string]int{}
	for _, d := range r.devices {
		start[d] = d.progress()
	}
	ok := func() bool {
		for _, d := range r.devices {
			for k, n := range d.progress() {
				if (k != "" || d.send) && n < start[d][k]+3 {
					return false
				}
			}
		}
		return true
	}
	if !waitFor(60*time.Second, ok) {
		for _, d := range r.devices {
			r.t.Logf("%s (send %v): acked and received per chat %v → %v, err %v", d.user, d.send, start[d], d.progress(), d.failure())
		}
		r.t.Fatalf("traffic does not flow %s", what)
	}
	for _, d := range r.devices {
		require.NoError(r.t, d.failure())
	}
	a, n := r.counts()
	r.logf("traffic flows %s (acked %d, delivered %d)", what, a, n)
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// leader returns the index of the NATS node leading stream.
func (r *crashRig) leader(stream string) int {
	var i int
	require.True(r.t, waitFor(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		i, err = r.cl.streamLeader(ctx, r.js, stream)
		return err == nil
	}), "stream %s has a leader", stream)
	return i
}

// crash SIGKILLs procs and (if node is set) the NATS node it names, together,
// waits for traffic to flow, restarts them all, and waits
// until the cluster is whole again.
func (r *crashRig) crash(name string, procs []*proc, node func() int) {
	r.t.Helper()
	f := crashFault{name: name}
	victim := -1
	if node != nil {
		victim = node()
		f.nats = r.cl.nodes[victim].name
		var led []string
		for _, s := range []string{subjects.InStream, subjects.LogStream} {
			if r.leader(s) == victim {
				led = append(led, s)
			}
		}
		f.nats += " leading " + strings.Join(led, "+")
	}
	f.at = time.Now()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.kill)
	}
	if victim >= 0 {
		wg.Go(func() { r.cl.kill(victim) })
	}
	wg.Wait()
	r.logf("SIGKILL %s (%s)", name, strings.Join(append(procNames(procs), f.nats), ", "))
	r.progress("with " + name + " killed")
	// The failover times are measured in check, once everything is delivered: the
	// first delivery of a message sent after the kill may come after this point.
	r.faults = append(r.faults, f)
	if victim >= 0 {
		r.cl.restart(victim)
	}
	for _, p := range procs {
		wg.Go(p.start)
	}
	wg.Wait()
	if victim >= 0 {
		// The next fault may take another node: every replica must be back first,
		// or it would cost the streams their quorum.
		require.True(r.t, waitFor(60*time.Second, r.whole), "every stream and consumer replica current after %s restarted", r.cl.nodes[victim].name)
	}
	r.progress("after " + name + " restarted")
}

func procNames(ps []*proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return out
}

// whole reports whether both streams and all their consumers have every replica
// online and current.
func (r *crashRig) whole() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range []string{subjects.InStream, subjects.LogStream} {
		if !streamCurrent(ctx, r.js, name, 3) {
			return false
		}
		s, err := r.js.Stream(ctx, name)
		if err != nil {
			return false
		}
		lister := s.ListConsumers(ctx)
		for ci := range lister.Info() {
			if ci.Cluster == nil || ci.Cluster.Leader == "" || len(ci.Cluster.Replicas) != 2 {
				return false
			}
			for _, rep := range ci.Cluster.Replicas {
				if !rep.Current || rep.Offline {
					return false
				}
			}
		}
		if lister.Err() != nil {
			return false
		}
	}
	return true
}

// failover measures, for a fault at at: how long until every sender was acked
// again, and until every device received, in each of its chats, a message that
// was first sent after at.
func (r *crashRig) failover(at time.Time) (send, recv time.Duration) {
	sentAfter := map[string]string{} // message ID -> chat, of acked messages first sent after at
	for _, d := range r.devices {
		d.mu.Lock()
		for _, a := range d.acked {
			if a.sent.After(at) {
				sentAfter[a.id] = a.chat
			}
		}
		d.mu.Unlock()
	}
	for _, d := range r.devices {
		d.mu.Lock()
		if d.send {
			first := time.Duration(-1)
			for _, a := range d.acked {
				if a.at.After(at) {
					first = a.at.Sub(at)
					break
				}
			}
			send = max(send, first)
		}
		first := map[string]time.Duration{}
		for id, seenAt := range d.seenAt {
			chat, ok := sentAfter[id]
			if !ok {
				continue
			}
			if f, ok := first[chat]; !ok || seenAt.Sub(at) < f {
				first[chat] = seenAt.Sub(at)
			}
		}
		for _, f := range first {
			recv = max(recv, f)
		}
		d.mu.Unlock()
	}
	return send, recv
}

// check stops the load and checks every guarantee against what was acked.
func (r *crashRig) check() {
	t := r.t
	r.stop()
	// The persister catches up and every device resumes until it has every chat
	// up to what history holds.
	members := map[string][]*cdevice{}
	for _, d := range r.devices {
		for _, c := range d.chats {
			members[c] = append(members[c], d)
		}
	}
	truth := map[string][]protocol.Message{}
	require.True(t, waitFor(60*time.Second, func() bool {
		if r.persister.metricSum("natter_consumer_pending", `consumer="PERSISTER"`) != 0 ||
			r.persister.metricSum("natter_consumer_ack_pending", `consumer="PERSISTER"`) != 0 {
			return false
		}
		for c, ds := range members {
			ms, err := r.history(ds[0].user, c)
			if err != nil {
				return false
			}
			truth[c] = ms
			for _, d := range ds {
				if !d.resume(c, uint64(len(ms))) {
					return false
				}
			}
		}
		return true
	}), "the persister catches up and every device has every chat")
	st, err := store.OpenSQLite(ctxT(t, 10*time.Second), r.dbPath)
	require.NoError(t, err)
	defer st.Close()

	var acked, stored, lost, duplicated, reordered, fifo, gaps int
	var lostAcks []ackRec
	for c, ms := range truth {
		stored += len(ms)
		seqOf := map[string]uint64{}
		for i, m := range ms {
			if m.Seq != uint64(i+1) {
				gaps++
			}
			if _, dup := seqOf[m.MessageID]; dup {
				duplicated++
			}
			seqOf[m.MessageID] = m.Seq
		}
		// The store holds what history shows (nothing only in the log tail).
		inStore, err := readAll(st, c)
		require.NoError(t, err)
		require.Len(t, inStore, len(ms), "chat %s: the store holds all of history", c)
		for i := range ms {
			require.Equal(t, ms[i].MessageID, inStore[i].MessageID, "chat %s seq %d in the store", c, ms[i].Seq)
		}
		for _, d := range members[c] {
			d.mu.Lock()
			for _, m := range ms {
				if got, ok := d.seen[c][m.Seq]; !ok {
					lost++
				} else if got != m.MessageID {
					reordered++
				}
			}
			if len(d.seen[c]) > len(ms) {
				duplicated += len(d.seen[c]) - len(ms)
			}
			d.mu.Unlock()
		}
		// Each sender's acked messages are in history, in the order it sent them.
		for _, d := range r.devices {
			d.mu.Lock()
			var last uint64
			for _, a := range d.acked {
				if a.chat != c {
					continue
				}
				acked++
				s, ok := seqOf[a.id]
				switch {
				case !ok:
					lost++
					lostAcks = append(lostAcks, a)
				case s <= last:
					fifo++
				default:
					last = s
				}
			}
			d.mu.Unlock()
		}
	}
	for i, a := range lostAcks {
		if i == 5 {
			t.Logf("... and %d more lost", len(lostAcks)-i)
			break
		}
		r.explainLost(a)
	}
	var worstSend, worstRecv crashFault
	for i := range r.faults {
		f := &r.faults[i]
		f.send, f.recv = r.failover(f.at)
		t.Logf("crash %s: send failover %.2fs, delivery failover %.2fs", f.name, f.send.Seconds(), f.recv.Seconds())
		if f.send > worstSend.send {
			worstSend = *f
		}
		if f.recv > worstRecv.recv {
			worstRecv = *f
		}
	}
	t.Logf("crash summary: acked %d, stored %d, lost %d, duplicated %d, reordered %d, fifo violations %d, gaps %d; "+
		"worst send failover %.2fs (%s), worst delivery failover %.2fs (%s)",
		acked, stored, lost, duplicated, reordered, fifo, gaps,
		worstSend.send.Seconds(), worstSend.name, worstRecv.recv.Seconds(), worstRecv.name)
	require.GreaterOrEqual(t, acked, minCrashAcks, "enough load to mean something")
	require.Zero(t, lost, "lost")
	require.Zero(t, duplicated, "duplicated")
	require.Zero(t, reordered, "reordered")
	require.Zero(t, fifo, "per-sender order")
	require.Zero(t, gaps, "gaps")
}

// history reads all of chat's history through the REST API of a live gateway.
func (r *crashRig) history(user, chat string) ([]protocol.Message, error) {
	gws := r.liveGateways()
	if len(gws) == 0 {
		return nil, errors.New("no gateway")
	}
	var out []protocol.Message
	for after := uint64(0); ; {
		body := restGet(r.t, gws[0], fmt.Sprintf("/api/v1/chats/%s/messages?after=%d&limit=%d", chat, after, store.MaxPage), r.token(user))
		var page struct {
			Messages []protocol.Message `json:"messages"`
			HasMore  bool               `json:"hasMore"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Messages...)
		if !page.HasMore || len(page.Messages) == 0 {
			sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
			return out, nil
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// cdevice is one user's device: a sender sends to its chats in turn, one message
// in flight, resending it with the same ID until acked, across reconnects to
// whichever gateway is up; every device records what it receives and resumes with
// sync after a reconnect.
type cdevice struct {
	rig   *crashRig
	user  string
	chats []string
	send  bool
	pref  int

	mu      sync.Mutex // guards the fields below
	conn    *client.Conn
	seen    map[string]map[uint64]string // chat -> seq -> message ID
	seenAt  map[string]time.Time         // message ID -> first received
	sent    map[string]bool
	refused map[string]string // message ID -> error frame received after its ack
	acked   []ackRec
	err     error
}

type ackRec struct {
	chat, id string
	sent     time.Time // first attempt
	at       time.Time // acked
}

// progress returns how many of its sends were acked (key "") and how many
// messages it received in each chat.
func (d *cdevice) progress() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{"": len(d.acked)}
	for c, s := range d.seen {
		out[c] = len(s)
	}
	return out
}

func (d *cdevice) failure() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// contiguous is the highest seq of chat up to which every seq was received.
// Called with d.mu held.
func (d *cdevice) contiguous(chat string) uint64 {
	var s uint64
	for d.seen[chat][s+1] != "" {
		s++
	}
	return s
}

func (d *cdevice) cursors() []protocol.ChatCursor {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []protocol.ChatCursor
	for _, c := range d.chats {
		out = append(out, protocol.ChatCursor{ChatID: c, Seq: d.contiguous(c)})
	}
	return out
}

// connect dials a live gateway, rotating from pref, and resumes with sync.
func (d *cdevice) connect(ctx context.Context, attempt int) *client.Conn {
	gws := d.rig.liveGateways()
	if len(gws) == 0 {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := client.Dial(dctx, "ws://"+gws[(d.pref+attempt)%len(gws)]+"/ws", d.rig.token(d.user), nil)
	if err != nil {
		return nil
	}
	go d.read(conn)
	sctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := conn.Sync(sctx, d.cursors()); err != nil {
		conn.CloseNow()
		return nil
	}
	d.mu.Lock()
	d.conn = conn
	d.mu.Unlock()
	return conn
}

func (d *cdevice) read(conn *client.Conn) {
	for f := range conn.Frames() {
		if f.Type == protocol.FrameError && f.MessageID != "" {
			// A refusal after the ack: the sequencer rejected the message.
			d.mu.Lock()
			d.refused[f.MessageID] = string(f.Code) + ": " + f.Message
			d.mu.Unlock()
			continue
		}
		if f.Type != protocol.FrameMessage {
			continue
		}
		d.mu.Lock()
		if s := d.seen[f.ChatID]; s != nil {
			if prev, ok := s[f.Seq]; ok && prev != f.MessageID {
				d.err = fmt.Errorf("%s: chat %s seq %d is %s and %s", d.user, f.ChatID, f.Seq, prev, f.MessageID)
			}
			s[f.Seq] = f.MessageID
			if _, ok := d.seenAt[f.MessageID]; !ok {
				d.seenAt[f.MessageID] = time.Now()
			}
		}
		d.mu.Unlock()
	}
}

// run keeps the device connected and, for a sender, sends until ctx ends.
func (d *cdevice) run(ctx context.Context) {
	var conn *client.Conn
	attempt := 0
	up := func() bool {
		for ctx.Err() == nil && (conn == nil || connDone(conn)) {
			if conn = d.connect(ctx, attempt); conn == nil {
				attempt++
				procSleep(ctx, 50*time.Millisecond)
			}
		}
		return ctx.Err() == nil
	}
	defer func() {
		if conn != nil {
			conn.CloseNow()
		}
	}()
	if !d.send {
		for up() {
			procSleep(ctx, 50*time.Millisecond)
		}
		return
	}
	for i := 1; ctx.Err() == nil; i++ {
		chat := d.chats[i%len(d.chats)]
		id := fmt.Sprintf("%s-%05d", d.user, i)
		var sent time.Time
		for up() {
			if sent.IsZero() {
				sent = time.Now()
			}
			d.mu.Lock()
			d.sent[id] = true
			d.mu.Unlock()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := conn.Send(sctx, chat, id, "from "+d.user)
			cancel()
			if err == nil {
				d.mu.Lock()
				d.acked = append(d.acked, ackRec{chat: chat, id: id, sent: sent, at: time.Now()})
				d.mu.Unlock()
				break
			}
			var pe *protocol.Error
			if errors.As(err, &pe) && !pe.Code.Retryable() {
				d.mu.Lock()
				d.err = fmt.Errorf("%s: send %s: %w", d.user, id, err)
				d.mu.Unlock()
				return
			}
			if ctx.Err() != nil {
				return
			}
			if pe == nil { // the connection failed, not the send: dial again
				conn.CloseNow()
			}
			procSleep(ctx, 20*time.Millisecond)
		}
		procSleep(ctx, 15*time.Millisecond)
	}
}

// resume makes the device catch up on chat until it has seqs 1..n; it reports
// whether it has.
func (d *cdevice) resume(chat string, n uint64) bool {
	d.mu.Lock()
	have := d.contiguous(chat)
	conn := d.conn
	d.mu.Unlock()
	if have >= n {
		return true
	}
	if conn == nil || connDone(conn) {
		if conn = d.connect(context.Background(), 0); conn == nil {
			return false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Sync(ctx, []protocol.ChatCursor{{ChatID: chat, Seq: have}})
	return false
}

// explainLost logs where an acked message that history lacks can be found: in
// NATTER_IN, in the chat's log, on which devices, and which fault it was near.
func (r *crashRig) explainLost(a ackRec) {
	where := []string{}
	var inSeq uint64
	var inSubject string
	var logNear []string
	for _, name := range []string{subjects.InStream, subjects.LogStream} {
		// A context per stream: a scan that hangs must not leave the next none.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := r.js.Stream(ctx, name)
		if err != nil {
			where = append(where, name+": "+err.Error())
			continue
		}
		cfg := jetstream.OrderedConsumerConfig{}
		if name == subjects.LogStream {
			cfg.FilterSubjects = []string{"natter.log." + a.chat}
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
		if err != nil {
			where = append(where, name+": "+err.Error())
			continue
		}
		if info.State.Msgs == 0 {
			// An ordered consumer on an empty stream waits for the first message.
			where = append(where, fmt.Sprintf("%s absent (empty; last seq %d)", name, info.State.LastSeq))
			continue
		}
		c, err := s.OrderedConsumer(ctx, cfg)
		if err != nil {
			where = append(where, name+": "+err.Error())
			continue
		}
		it, err := c.Messages(jetstream.PullMaxMessages(1000))
		if err != nil {
			where = append(where, name+": "+err.Error())
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		scanned, found := 0, ""
		for found == "" {
			m, err := it.Next()
			if err != nil {
				found = fmt.Sprintf("not found (scan ended: %v)", err)
				break
			}
			scanned++
			md, _ := m.Metadata()
			if name == subjects.LogStream && inSeq > 0 {
				if in, _ := strconv.ParseUint(m.Headers().Get(protocol.HeaderInSeq), 10, 64); in+40 > inSeq && in < inSeq+40 {
					logNear = append(logNear, fmt.Sprintf("%s@in%d", m.Headers().Get(protocol.HeaderSeq), in))
				}
			}
			// NATTER_IN stores <prefix>.in.p.<n>.<chat>.<origin>; NATTER_LOG <prefix>.log.<chat>.
			if strings.Contains(string(m.Data()), a.id) && strings.Contains(m.Subject()+".", "."+a.chat+".") {
				found = fmt.Sprintf("present at stream seq %d (%s, headers %v)", md.Sequence.Stream, m.Subject(), m.Headers())
				if name == subjects.InStream {
					inSeq, inSubject = md.Sequence.Stream, m.Subject()
				}
			} else if md == nil || md.NumPending == 0 {
				found = "absent"
			}
		}
		stop()
		it.Stop()
		found += fmt.Sprintf(" [scanned %d; stream first seq %d, last %d, %d messages]", scanned, info.State.FirstSeq, info.State.LastSeq, info.State.Msgs)
		where = append(where, name+" "+found)
	}
	if len(logNear) > 0 {
		where = append(where, fmt.Sprintf("the chat's log near that ingress seq (seq@in-seq, log order): %v", logNear))
	}
	if inSubject != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The partition's consumer: is the message below its ack floor?
		parts := strings.Split(inSubject, ".") // <prefix>.in.p.<n>.<chat>.<origin>
		if len(parts) >= 5 {
			if p, err := strconv.Atoi(parts[3]); err == nil {
				if c, err := r.js.Consumer(ctx, subjects.InStream, subjects.SequencerConsumer(p)); err == nil {
					if ci, err := c.Info(ctx); err == nil {
						where = append(where, fmt.Sprintf("consumer SEQ_%d: ack floor %d, delivered %d, pending %d, ack pending %d, redelivered %d",
							p, ci.AckFloor.Stream, ci.Delivered.Stream, ci.NumPending, ci.NumAckPending, ci.NumRedelivered))
					}
				}
			}
		}
	}
	var seenBy []string
	for _, d := range r.devices {
		d.mu.Lock()
		if _, ok := d.seenAt[a.id]; ok {
			seenBy = append(seenBy, d.user)
		}
		if e, ok := d.refused[a.id]; ok {
			where = append(where, "refused to "+d.user+": "+e)
		}
		d.mu.Unlock()
	}
	near := "before any fault"
	for _, f := range r.faults {
		if a.at.After(f.at) {
			near = fmt.Sprintf("%s (acked %.2fs after it)", f.name, a.at.Sub(f.at).Seconds())
		}
	}
	r.t.Logf("LOST %s in chat %s, acked at %.2fs, after %s; %s; received by %v",
		a.id, a.chat, a.at.Sub(r.began).Seconds(), near, strings.Join(where, "; "), seenBy)
}
