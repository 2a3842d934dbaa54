package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fleet is natter split into role processes (in-process Apps) sharing one NATS
// server or cluster and one data directory (dev secret, SQLite file).
type fleet struct {
	t       *testing.T
	natsURL func() string
	dataDir string
	repl    int

	mu         sync.Mutex // guards the slices
	gateways   []*testutil.Natter
	sequencers []*testutil.Natter
	persisters []*testutil.Natter
}

func (f *fleet) config(roles ...string) *app.Config {
	c := testutil.Config(f.t)
	c.DataDir = f.dataDir
	c.Roles = roles
	c.NATS.URL = f.natsURL()
	c.NATS.Replicas = f.repl
	c.Sequencer.PinnedTTL = 2 * time.Second
	c.Persister.MaxBackoff = 200 * time.Millisecond
	c.Persister.AckWait = 2 * time.Second
	return c
}

func (f *fleet) start(roles ...string) *testutil.Natter {
	n := testutil.StartNatter(f.t, f.config(roles...))
	f.mu.Lock()
	defer f.mu.Unlock()
	switch roles[0] {
	case app.RoleGateway:
		f.gateways = append(f.gateways, n)
	case app.RoleSequencer:
		f.sequencers = append(f.sequencers, n)
	case app.RolePersister:
		f.persisters = append(f.persisters, n)
	}
	return n
}

// kill crashes n and removes it from its list.
func (f *fleet) kill(n *testutil.Natter) {
	f.mu.Lock()
	for _, l := range []*[]*testutil.Natter{&f.gateways, &f.sequencers, &f.persisters} {
		for i, x := range *l {
			if x == n {
				*l = append((*l)[:i], (*l)[i+1:]...)
				break
			}
		}
	}
	f.mu.Unlock()
	n.Kill()
}

// gatewayURL returns the WebSocket URL of a live gateway, rotating.
func (f *fleet) gatewayURL(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.gateways) == 0 {
		return ""
	}
	return f.gateways[i%len(f.gateways)].WSURL()
}

// busiestSequencer is the instance that sequenced most since the last call.
func (f *fleet) busiestSequencer(prev map[*testutil.Natter]uint64) *testutil.Natter {
	f.mu.Lock()
	defer f.mu.Unlock()
	var best *testutil.Natter
	var most uint64
	for _, s := range f.sequencers {
		n, _, _ := s.Seq.Stats()
		if d := n - prev[s]; best == nil || d > most {
			best, most = s, d
		}
		prev[s] = n
	}
	return best
}

// sent is one acked send.
type sent struct {
	chat, id string
	ackAt    time.Time
}

// fclient is a resilient test client: it reconnects to any live gateway, resumes
// with sync, resends its unacked message with the same ID, and fills gaps from
// history. It records everything it sees for the checker.
type fclient struct {
	user  string
	chats []string
	fl    *fleet
	tok   string

	mu         sync.Mutex // guards the fields below
	seen       map[string]map[uint64]string
	contiguous map[string]uint64
	conflicts  int
	seenAt     map[string]time.Time // messageId -> first delivery to this client
	acked      []sent
	attempts   int
	reconnects int
}

func newFClient(fl *fleet, user, tok string, chats []string) *fclient {
	c := &fclient{user: user, chats: chats, fl: fl, tok: tok, seen: map[string]map[uint64]string{},
		contiguous: map[string]uint64{}, seenAt: map[string]time.Time{}}
	for _, ch := range chats {
		c.seen[ch] = map[uint64]string{}
	}
	return c
}

// record notes a delivered message and returns the chat's contiguous seq if a gap
// is now visible (0 if none).
func (c *fclient) record(m protocol.Message) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.seen[m.ChatID]
	if s == nil {
		return 0
	}
	if prev, ok := s[m.Seq]; ok {
		if prev != m.MessageID {
			c.conflicts++
		}
		return 0
	}
	s[m.Seq] = m.MessageID
	if _, ok := c.seenAt[m.MessageID]; !ok {
		c.seenAt[m.MessageID] = time.Now()
	}
	for s[c.contiguous[m.ChatID]+1] != "" {
		c.contiguous[m.ChatID]++
	}
	if m.Seq > c.contiguous[m.ChatID]+1 {
		return c.contiguous[m.ChatID]
	}
	return 0
}

func (c *fclient) cursors() []protocol.ChatCursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.ChatCursor
	for _, ch := range c.chats {
		out = append(out, protocol.ChatCursor{ChatID: ch, Seq: c.contiguous[ch]})
	}
	return out
}

// read consumes conn's frames until it closes; it fills gaps with history.
func (c *fclient) read(conn *client.Conn) {
	filling := map[string]bool{}
	var fmu sync.Mutex
	for f := range conn.Frames() {
		if f.Type != protocol.FrameMessage {
			continue
		}
		m := protocol.Message{ChatID: f.ChatID, Seq: f.Seq, MessageID: f.MessageID}
		if after := c.record(m); after > 0 {
			fmu.Lock()
			busy := filling[m.ChatID]
			filling[m.ChatID] = true
			fmu.Unlock()
			if !busy {
				go func(chat string, after uint64) {
					defer func() { fmu.Lock(); filling[chat] = false; fmu.Unlock() }()
					c.fill(conn, chat, after)
				}(m.ChatID, after)
			}
		}
	}
}

// fill fetches chat's history after seq until caught up.
func (c *fclient) fill(conn *client.Conn, chat string, after uint64) {
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := conn.HistoryAfter(ctx, chat, after, 500)
		cancel()
		if err != nil || len(res.Messages) == 0 {
			return
		}
		for _, m := range res.Messages {
			c.record(m)
		}
		after = res.Messages[len(res.Messages)-1].Seq
		if !res.HasMore {
			return
		}
	}
}

// connect dials a live gateway and resumes; it retries until ctx ends.
func (c *fclient) connect(ctx context.Context, attempt int) *client.Conn {
	for ctx.Err() == nil {
		url := c.fl.gatewayURL(attempt)
		attempt++
		if url == "" {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := client.Dial(dctx, url, c.tok, nil)
		cancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go c.read(conn)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = conn.Sync(sctx, c.cursors())
		cancel()
		if err != nil {
			conn.CloseNow()
			continue
		}
		return conn
	}
	return nil
}

// run sends until ctx ends: one message in flight, resent with the same ID until
// acked.
func (c *fclient) run(ctx context.Context, interval time.Duration, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	conn := c.connect(ctx, int(seed))
	var pending *sent
	n := 0
	for ctx.Err() == nil && conn != nil {
		if pending == nil {
			n++
			pending = &sent{chat: c.chats[rng.IntN(len(c.chats))], id: fmt.Sprintf("%s-%05d", c.user, n)}
		}
		c.mu.Lock()
		c.attempts++
		c.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := conn.Send(sctx, pending.chat, pending.id, "payload "+pending.id)
		cancel()
		if err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) && pe.Code != protocol.CodeUnavailable && pe.Code != protocol.CodeInternal {
				panic(fmt.Sprintf("%s: refused send: %v", c.user, err))
			}
			if ctx.Err() != nil {
				break
			}
			conn.CloseNow()
			c.mu.Lock()
			c.reconnects++
			c.mu.Unlock()
			conn = c.connect(ctx, rng.IntN(100))
			continue
		}
		pending.ackAt = time.Now()
		c.mu.Lock()
		c.acked = append(c.acked, *pending)
		c.mu.Unlock()
		pending = nil
		time.Sleep(interval)
	}
	if conn != nil {
		conn.CloseNow()
	}
}

// finish reconnects and fills from history until the client has every chat up to
// want (the stored last seq), or ctx ends.
func (c *fclient) finish(ctx context.Context, want map[string]uint64) {
	done := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ch := range c.chats {
			if c.contiguous[ch] < want[ch] {
				return false
			}
		}
		return true
	}
	for attempt := 0; ctx.Err() == nil && !done(); attempt++ {
		conn := c.connect(ctx, attempt)
		if conn == nil {
			return
		}
		for _, cur := range c.cursors() {
			c.fill(conn, cur.ChatID, cur.Seq)
		}
		conn.CloseNow()
	}
}

type faultOpts struct {
	cluster  bool
	duration time.Duration
}

func runFaultTest(t *testing.T, o faultOpts) {
	fl := &fleet{t: t, dataDir: t.TempDir(), repl: 1}
	var nc *testutil.Cluster
	if o.cluster {
		nc = testutil.NATSCluster(t, 3)
		fl.natsURL = nc.URLs
		fl.repl = 3
	} else {
		ns := testutil.NATSServer(t)
		fl.natsURL = ns.ClientURL
	}
	for i := 0; i < 2; i++ {
		fl.start(app.RoleGateway)
		fl.start(app.RolePersister)
	}
	for i := 0; i < 3; i++ {
		fl.start(app.RoleSequencer)
	}
	admin := fl.gateways[0]

	// 24 users: 12 direct pairs, and 4 groups of 6.
	const users = 24
	chatsOf := map[string][]string{}
	members := map[string][]string{}
	for i := 0; i < users; i += 2 {
		a, b := fmt.Sprintf("u%02d", i), fmt.Sprintf("u%02d", i+1)
		ch := admin.CreateChat(t, a, "direct", "", b)
		chatsOf[a], chatsOf[b] = append(chatsOf[a], ch), append(chatsOf[b], ch)
		members[ch] = []string{a, b}
	}
	for g := 0; g < 4; g++ {
		var ms []string
		for k := 0; k < 6; k++ {
			ms = append(ms, fmt.Sprintf("u%02d", g*6+k))
		}
		ch := admin.CreateChat(t, ms[0], "group", fmt.Sprintf("g%d", g), ms[1:]...)
		for _, u := range ms {
			chatsOf[u] = append(chatsOf[u], ch)
		}
		members[ch] = ms
	}
	var clients []*fclient
	for i := 0; i < users; i++ {
		u := fmt.Sprintf("u%02d", i)
		clients = append(clients, newFClient(fl, u, admin.Token(t, u), chatsOf[u]))
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *fclient) {
			defer wg.Done()
			c.run(ctx, 30*time.Millisecond, uint64(i+1))
		}(i, c)
	}

	// Faults.
	var faults atomic.Int32
	var seqKillAt time.Time
	start := time.Now()
	at := func(d time.Duration) bool {
		select {
		case <-time.After(time.Until(start.Add(d))):
			return true
		case <-ctx.Done():
			return false
		}
	}
	prev := map[*testutil.Natter]uint64{}
	fl.busiestSequencer(prev)
	step := o.duration / 8
	if o.cluster {
		if at(2 * step) {
			victim := 1
			for i, ns := range nc.Servers {
				if ns.JetStreamIsLeader() {
					victim = i // the meta leader: the hardest node to lose
				}
			}
			t.Logf("killing NATS node %d", victim)
			nc.Kill(victim)
			faults.Add(1)
			if at(4 * step) {
				nc.Restart(t, victim)
			}
		}
	} else {
		if at(step) {
			victim := fl.busiestSequencer(prev)
			seqKillAt = time.Now()
			fl.kill(victim)
			faults.Add(1)
		}
		if at(2 * step) {
			fl.start(app.RoleSequencer)
		}
		if at(3 * step) {
			fl.kill(fl.gateways[0])
			faults.Add(1)
		}
		if at(4*step + step/2) {
			fl.start(app.RoleGateway)
		}
		if at(5 * step) {
			fl.kill(fl.persisters[0])
			faults.Add(1)
		}
		if at(6 * step) {
			fl.start(app.RolePersister)
		}
	}
	wg.Wait()
	t.Logf("load done after %s", time.Since(start).Round(time.Millisecond))

	// Everyone catches up: the log drains into the store, and clients sync.
	st := fl.persisters[0].Store
	acked := map[string][]sent{}
	var nAcked, nAttempts, reconnects int
	for _, c := range clients {
		for _, s := range c.acked {
			acked[s.chat] = append(acked[s.chat], s)
		}
		nAcked += len(c.acked)
		nAttempts += c.attempts
		reconnects += c.reconnects
	}
	truth := map[string]map[uint64]string{}
	if !assert.Eventually(t, func() bool {
		for ch := range members {
			ms, err := readAll(st, ch)
			if err != nil {
				return false
			}
			byID := map[string]bool{}
			for _, m := range ms {
				byID[m.MessageID] = true
			}
			for _, s := range acked[ch] {
				if !byID[s.id] {
					return false
				}
			}
			// Quiesced: the store holds everything the log holds (the last,
			// unacked sends may have been sequenced too).
			if last := logLastSeq(t, fl.persisters[0], ch); len(ms) == 0 || ms[len(ms)-1].Seq != last {
				return false
			}
			tm := map[uint64]string{}
			for _, m := range ms {
				tm[m.Seq] = m.MessageID
			}
			truth[ch] = tm
		}
		return true
	}, 60*time.Second, 200*time.Millisecond) {
		dumpPipeline(t, fl, st, members, acked)
		t.FailNow()
	}
	t.Logf("store complete after %s", time.Since(start).Round(time.Millisecond))
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	var fwg sync.WaitGroup
	want := map[string]uint64{}
	for ch, tm := range truth {
		want[ch] = uint64(len(tm))
	}
	for _, c := range clients {
		fwg.Add(1)
		go func(c *fclient) { defer fwg.Done(); c.finish(fctx, want) }(c)
	}
	fwg.Wait()
	t.Logf("clients synced after %s", time.Since(start).Round(time.Millisecond))

	// Check the guarantees.
	var lost, duplicated, reordered, gaps, beyond int
	for ch, tm := range truth {
		n := uint64(len(tm))
		ids := map[string]uint64{}
		for seq := uint64(1); seq <= n; seq++ {
			id, ok := tm[seq]
			if !ok {
				gaps++
				continue
			}
			if _, dup := ids[id]; dup {
				duplicated++ // one message under two seqs
			}
			ids[id] = seq
		}
		for _, s := range acked[ch] {
			if _, ok := ids[s.id]; !ok {
				lost++
			}
		}
		// Sender FIFO: each sender's acked messages have rising seqs in send order.
		last := map[string]uint64{}
		for _, c := range clients {
			for _, s := range c.acked {
				if s.chat != ch {
					continue
				}
				if seq := ids[s.id]; seq <= last[c.user] {
					reordered++
				} else {
					last[c.user] = seq
				}
			}
		}
		// Every member saw every seq, with the same message at each.
		for _, u := range members[ch] {
			var c *fclient
			for _, x := range clients {
				if x.user == u {
					c = x
				}
			}
			c.mu.Lock()
			for seq, id := range tm {
				got, ok := c.seen[ch][seq]
				switch {
				case !ok:
					lost++
				case got != id:
					reordered++
				}
			}
			if uint64(len(c.seen[ch])) > n {
				beyond += len(c.seen[ch]) - int(n)
			}
			c.mu.Unlock()
		}
	}
	var conflicts int
	for _, c := range clients {
		conflicts += c.conflicts
	}
	// Failover: the longest wait from ack to the sender's own delivery after the
	// sequencer kill.
	var stall time.Duration
	if !seqKillAt.IsZero() {
		for _, c := range clients {
			c.mu.Lock()
			for _, s := range c.acked {
				if s.ackAt.After(seqKillAt.Add(-time.Second)) && s.ackAt.Before(seqKillAt.Add(10*time.Second)) {
					if d := c.seenAt[s.id].Sub(s.ackAt); d > stall {
						stall = d
					}
				}
			}
			c.mu.Unlock()
		}
	}
	var total int
	for _, tm := range truth {
		total += len(tm)
	}
	var sequenced, catchups, fenced uint64
	for _, s := range fl.sequencers {
		a, b, c := s.Seq.Stats()
		sequenced, catchups, fenced = sequenced+a, catchups+b, fenced+c
	}
	t.Logf("fault test (cluster=%v, %s): send attempts %d, acked %d, stored %d, faults injected %d, client reconnects %d, "+
		"lost %d, duplicated %d, reordered %d, gaps %d, seq conflicts %d, unknown seqs %d; live sequencers' catch-ups %d, fenced appends %d; "+
		"sequencer failover (max ack→deliver after kill) %s",
		o.cluster, o.duration, nAttempts, nAcked, total, faults.Load(), reconnects,
		lost, duplicated, reordered, gaps, conflicts, beyond, catchups, fenced, stall.Round(time.Millisecond))
	require.Positive(t, faults.Load())
	require.Greater(t, nAcked, 1000, "enough load to mean something")
	require.Zero(t, lost, "lost")
	require.Zero(t, duplicated, "duplicated")
	require.Zero(t, reordered, "reordered")
	require.Zero(t, gaps, "gaps in the stored sequence")
	require.Zero(t, conflicts, "two messages seen under one seq")
	require.Zero(t, beyond, "seqs seen by clients that the store does not have")
}

// dumpPipeline logs where acked messages that never reached the store are stuck.
func dumpPipeline(t *testing.T, fl *fleet, st store.Store, members map[string][]string, acked map[string][]sent) {
	ctx := context.Background()
	js := fl.sequencers[0].JS
	for ch := range members {
		ms, _ := readAll(st, ch)
		have := map[string]bool{}
		for _, m := range ms {
			have[m.MessageID] = true
		}
		for _, s := range acked[ch] {
			if !have[s.id] {
				t.Logf("missing from store: chat %s message %s acked at %s", ch, s.id, s.ackAt.Format(time.RFC3339Nano))
			}
		}
	}
	for _, name := range []string{subjects.InStream, subjects.LogStream} {
		if s, err := js.Stream(ctx, name); err == nil {
			info, _ := s.Info(ctx)
			if info != nil {
				t.Logf("stream %s: %+v", name, info.State)
			}
			lister := s.ListConsumers(ctx)
			for ci := range lister.Info() {
				t.Logf("  consumer %s: pending %d, ack pending %d, redelivered %d, ack floor %d, delivered %d, waiting %d, pinned %+v",
					ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.AckFloor.Stream, ci.Delivered.Stream, ci.NumWaiting, ci.PriorityGroups)
			}
		} else {
			t.Logf("stream %s: %v", name, err)
		}
	}
}

// logLastSeq is the chat's last seq in NATTER_LOG (0 if none).
func logLastSeq(t *testing.T, n *testutil.Natter, chat string) uint64 {
	st, err := n.JS.Stream(context.Background(), subjects.LogStream)
	if err != nil {
		return 0
	}
	m, err := st.GetLastMsgForSubject(context.Background(), n.Config.NATS.Subjects().Log(chat))
	if err != nil {
		return 0
	}
	seq, _ := strconv.ParseUint(m.Header.Get(protocol.HeaderSeq), 10, 64)
	return seq
}

// readAll returns every stored message of chat, oldest first.
func readAll(st store.Store, chat string) ([]protocol.Message, error) {
	var out []protocol.Message
	var after uint64
	for {
		page, err := st.History(context.Background(), chat, store.HistoryQuery{Dir: store.Forward, After: after, Limit: store.MaxPage})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < store.MaxPage {
			return out, nil
		}
		after = page[len(page)-1].Seq
	}
}

func TestFaultsKillRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test takes 30 s; it runs in the full suite (go tool task test)")
	}
	runFaultTest(t, faultOpts{duration: 24 * time.Second})
}

func TestFaultsKillNATSNode(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test takes 30 s; it runs in the full suite (go tool task test)")
	}
	runFaultTest(t, faultOpts{cluster: true, duration: 24 * time.Second})
}
