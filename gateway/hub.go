package gateway

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	pmetrics "github.com/natter-chat/natter/pkg/metrics"
	"go.uber.org/zap"
)

// hub holds the connected users of this gateway and their one NATS subscription each,
// shared by all of a user's devices. Subscriptions deliver into a few shared channels
// (one dispatcher goroutine each) rather than nats.go's goroutine per subscription, so
// a connection costs no goroutine beyond the one reading it.
type hub struct {
	nc      *nats.Conn
	prefix  string // user subject prefix, "natter.user."
	log     *zap.Logger
	metrics *pmetrics.Metrics // set by Gateway.observe before run; nil: none

	// onFirst and onLast run (outside mu) after a user's first connection arrives
	// and after the last one leaves; onOther receives messages on subjects other
	// than user subjects (large chats' log subjects). Set before run; nil: none.
	onFirst, onLast func(uid string)
	onOther         func(m *nats.Msg)
	onUser          func(uid string, data []byte) // after each user delivery

	mu    sync.RWMutex // guards users
	users map[string]*userEntry

	shards []chan *nats.Msg
	done   chan struct{} // closed by stop: dispatchers exit

	// ctx is the base of the connections' contexts (not the upgrade request's: a
	// request context keeps the request alive); stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	flusher *flusher // coalesces the flushes of add
}

// userEntry is one user's subscription and connections. Fields guarded by hub.mu.
type userEntry struct {
	sub   *nats.Subscription
	conns []*conn
}

// subscribeFlushTimeout bounds the wait for the server to confirm a new user's
// subscriptions.
var subscribeFlushTimeout = 5 * time.Second

// dispatchBuffer is the capacity of each shard channel; when full, nats.go drops
// messages for the subscription (live delivery may drop; clients fill gaps).
var dispatchBuffer = 16384

func newHub(nc *nats.Conn, prefix string, shards int, log *zap.Logger) *hub {
	h := &hub{nc: nc, prefix: prefix, log: log, users: map[string]*userEntry{}, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.flusher = newFlusher(func(d time.Duration) error { return h.nc.FlushTimeout(d) }, subscribeFlushTimeout)
	for i := 0; i < shards; i++ {
		h.shards = append(h.shards, make(chan *nats.Msg, dispatchBuffer))
	}
	return h
}

// run dispatches until stop.
func (h *hub) run(wg *sync.WaitGroup) {
	for _, ch := range h.shards {
		wg.Add(1)
		go func(ch chan *nats.Msg) {
			defer wg.Done()
			for {
				select {
				case m := <-ch:
					h.deliver(m)
				case <-h.done:
					return
				}
			}
		}(ch)
	}
}

func (h *hub) Shard(uid string) chan *nats.Msg {
	var x uint32 = 2166136261
	for i := 0; i < len(uid); i++ {
		x = (x ^ uint32(uid[i])) * 16777619
	}
	return h.shards[x%uint32(len(h.shards))]
}

// add registers c under its user, subscribing on the user's first connection.
// It returns once the server has the user's subscriptions (onFirst's too), so that
// the client, told it is connected after this, misses nothing sequenced later.
func (h *hub) add(c *conn) error {
	h.mu.Lock()
	e := h.users[c.user]
	first := e == nil
	if first {
		sub, err := h.nc.ChanSubscribe(h.prefix+c.user, h.Shard(c.user))
		if err != nil {
			h.mu.Unlock()
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
		e = &userEntry{sub: sub}
		h.users[c.user] = e
	}
	e.conns = append(e.conns, c)
	h.mu.Unlock()
	if first {
		if h.onFirst != nil {
			h.onFirst(c.user) // large chats' subscriptions: covered by the flush below
		}
		// The server must have the subscriptions before the client is told it is
		// connected: a sync that follows reads history after this point, and
		// anything sequenced later has to arrive live. One flush covers every
		// subscription made before it started: concurrent first connections share
		// one (flush.go).
		if err := h.flusher.wait(); err != nil {
			h.remove(c)
			return err
		}
	}
	return nil
}

// Connected reports whether uid has a connection here.
func (h *hub) Connected(uid string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.users[uid] != nil
}

// UserIDs returns the IDs of the connected users.
func (h *hub) UserIDs() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(h.users))
	for u := range h.users {
		out = append(out, u)
	}
	return out
}

// DeviceCounts calls fn with a function returning how many connections a user has
// here, holding h.mu (read) meanwhile: no connection is added or removed while fn
// runs. fn must not call add or remove.
func (h *hub) DeviceCounts(fn func(devices func(uid string) int)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	fn(func(uid string) int {
		if e := h.users[uid]; e != nil {
			return len(e.conns)
		}
		return 0
	})
}

// deliverChunk is how many users DeliverToUsers serves per hold of h.mu, so that
// a 10,000-member delivery does not hold up add and remove for its whole length.
var deliverChunk = 256

// DeliverToUsers enqueues data to every connection of each of uids.
func (h *hub) DeliverToUsers(uids []string, data []byte) {
	for len(uids) > 0 {
		n := min(len(uids), deliverChunk)
		h.mu.RLock()
		for _, uid := range uids[:n] {
			if e := h.users[uid]; e != nil {
				for _, c := range e.conns {
					c.enqueue(data)
				}
			}
		}
		h.mu.RUnlock()
		uids = uids[n:]
	}
}

// remove unregisters c, unsubscribing after the user's last connection.
func (h *hub) remove(c *conn) {
	h.mu.Lock()
	e := h.users[c.user]
	if e == nil {
		h.mu.Unlock()
		return
	}
	for i, x := range e.conns {
		if x == c {
			e.conns = append(e.conns[:i], e.conns[i+1:]...)
			break
		}
	}
	last := len(e.conns) == 0
	if last {
		_ = e.sub.Unsubscribe()
		delete(h.users, c.user)
	}
	h.mu.Unlock()
	if last && h.onLast != nil {
		h.onLast(c.user)
	}
}

func (h *hub) deliver(m *nats.Msg) {
	h.metrics.Delivered(m.Data)
	uid, ok := strings.CutPrefix(m.Subject, h.prefix)
	if !ok {
		if h.onOther != nil {
			h.onOther(m)
		}
		return
	}
	h.mu.RLock()
	e := h.users[uid]
	if e == nil {
		h.mu.RUnlock()
		return
	}
	for _, c := range e.conns {
		c.enqueue(m.Data)
	}
	h.mu.RUnlock()
	if h.onUser != nil {
		h.onUser(uid, m.Data)
	}
}

// each calls fn for every connection; fn must not call add or remove.
func (h *hub) each(fn func(*conn)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, e := range h.users {
		for _, c := range e.conns {
			fn(c)
		}
	}
}

// count returns the number of connections and users.
func (h *hub) count() (conns, users int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, e := range h.users {
		conns += len(e.conns)
	}
	return conns, len(h.users)
}

// stop unsubscribes every user, ends the connections' base context and closes
// the connections still open (Run has closed them with a close frame before), and
// stops the dispatchers.
func (h *hub) stop() {
	h.mu.Lock()
	var open []*conn
	for _, e := range h.users {
		_ = e.sub.Unsubscribe()
		open = append(open, e.conns...)
	}
	h.users = map[string]*userEntry{}
	h.mu.Unlock()
	h.cancel()
	for _, c := range open {
		c.closeWith(websocket.StatusAbnormalClosure, "", "")
	}
	close(h.done)
}
