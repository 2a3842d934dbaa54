package transport

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

// Hub holds the connected users of this gateway and their one NATS subscription each,
// shared by all of a user's devices. Subscriptions deliver into a few shared channels
// (one dispatcher goroutine each) rather than nats.go's goroutine per subscription, so
// a connection costs no goroutine beyond the one reading it.
type Hub struct {
	nc     *nats.Conn
	prefix string // user subject prefix, "natter.user."
	log    *zap.Logger
	// Metrics counts deliveries; set before Run; nil: none.
	Metrics *pmetrics.Metrics

	// OnFirst and OnLast run (outside mu) after a user's first connection arrives
	// and after the last one leaves; OnOther receives messages on subjects other
	// than user subjects (large chats' log subjects). Set before Run; nil: none.
	OnFirst, OnLast func(uid string)
	OnOther         func(m *nats.Msg)
	OnUser          func(uid string, data []byte) // after each user delivery

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
	conns []*Conn
}

// subscribeFlushTimeout bounds the wait for the server to confirm a new user's
// subscriptions.
var subscribeFlushTimeout = 5 * time.Second

// dispatchBuffer is the capacity of each shard channel; when full, nats.go drops
// messages for the subscription (live delivery may drop; clients fill gaps).
var dispatchBuffer = 16384

// NewHub returns a hub delivering user subjects prefix+uid of nc through shards
// dispatchers (started by Run).
func NewHub(nc *nats.Conn, prefix string, shards int, log *zap.Logger) *Hub {
	h := &Hub{nc: nc, prefix: prefix, log: log, users: map[string]*userEntry{}, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.flusher = newFlusher(func(d time.Duration) error { return h.nc.FlushTimeout(d) }, subscribeFlushTimeout)
	for i := 0; i < shards; i++ {
		h.shards = append(h.shards, make(chan *nats.Msg, dispatchBuffer))
	}
	return h
}

// Run dispatches until stop.
func (h *Hub) Run(wg *sync.WaitGroup) {
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

func (h *Hub) Shard(uid string) chan *nats.Msg {
	var x uint32 = 2166136261
	for i := 0; i < len(uid); i++ {
		x = (x ^ uint32(uid[i])) * 16777619
	}
	return h.shards[x%uint32(len(h.shards))]
}

// Add registers c under its user, subscribing on the user's first connection.
// It returns once the server has the user's subscriptions (onFirst's too), so that
// the client, told it is connected after this, misses nothing sequenced later.
func (h *Hub) Add(c *Conn) error {
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
		if h.OnFirst != nil {
			h.OnFirst(c.user) // large chats' subscriptions: covered by the flush below
		}
		// The server must have the subscriptions before the client is told it is
		// connected: a sync that follows reads history after this point, and
		// anything sequenced later has to arrive live. One flush covers every
		// subscription made before it started: concurrent first connections share
		// one (flush.go).
		if err := h.flusher.wait(); err != nil {
			h.Remove(c)
			return err
		}
	}
	return nil
}

// Ctx is the base of the connections' contexts; Stop cancels it.
func (h *Hub) Ctx() context.Context { return h.ctx }

// SSEConn returns user's SSE connection connID, or nil.
func (h *Hub) SSEConn(user, connID string) *Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if e := h.users[user]; e != nil {
		for _, c := range e.conns {
			if c.id == connID && c.sse != nil {
				return c
			}
		}
	}
	return nil
}

// Connected reports whether uid has a connection here.
func (h *Hub) Connected(uid string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.users[uid] != nil
}

// UserIDs returns the IDs of the connected users.
func (h *Hub) UserIDs() []string {
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
func (h *Hub) DeviceCounts(fn func(devices func(uid string) int)) {
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
func (h *Hub) DeliverToUsers(uids []string, data []byte) {
	for len(uids) > 0 {
		n := min(len(uids), deliverChunk)
		h.mu.RLock()
		for _, uid := range uids[:n] {
			if e := h.users[uid]; e != nil {
				for _, c := range e.conns {
					c.Enqueue(data)
				}
			}
		}
		h.mu.RUnlock()
		uids = uids[n:]
	}
}

// Remove unregisters c, unsubscribing after the user's last connection.
func (h *Hub) Remove(c *Conn) {
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
	if last && h.OnLast != nil {
		h.OnLast(c.user)
	}
}

func (h *Hub) deliver(m *nats.Msg) {
	h.Metrics.Delivered(m.Data)
	uid, ok := strings.CutPrefix(m.Subject, h.prefix)
	if !ok {
		if h.OnOther != nil {
			h.OnOther(m)
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
		c.Enqueue(m.Data)
	}
	h.mu.RUnlock()
	if h.OnUser != nil {
		h.OnUser(uid, m.Data)
	}
}

// Each calls fn for every connection; fn must not call add or remove.
func (h *Hub) Each(fn func(*Conn)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, e := range h.users {
		for _, c := range e.conns {
			fn(c)
		}
	}
}

// Count returns the number of connections and users.
func (h *Hub) Count() (conns, users int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, e := range h.users {
		conns += len(e.conns)
	}
	return conns, len(h.users)
}

// Stop unsubscribes every user, ends the connections' base context and closes
// the connections still open (Run has closed them with a close frame before), and
// stops the dispatchers.
func (h *Hub) Stop() {
	h.mu.Lock()
	var open []*Conn
	for _, e := range h.users {
		_ = e.sub.Unsubscribe()
		open = append(open, e.conns...)
	}
	h.users = map[string]*userEntry{}
	h.mu.Unlock()
	h.cancel()
	for _, c := range open {
		c.CloseWith(websocket.StatusAbnormalClosure, "", "")
	}
	close(h.done)
}
