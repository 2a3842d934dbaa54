package gateway

import (
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// hub holds the connected users of this gateway and their one NATS subscription each,
// shared by all of a user's devices. Subscriptions deliver into a few shared channels
// (one dispatcher goroutine each) rather than nats.go's goroutine per subscription, so
// a connection costs no goroutine beyond the one reading it.
type hub struct {
	nc     *nats.Conn
	prefix string // user subject prefix, "natter.user."
	log    *zap.Logger

	mu    sync.RWMutex // guards users
	users map[string]*userEntry

	shards []chan *nats.Msg
	done   chan struct{} // closed by stop: dispatchers exit
}

// userEntry is one user's subscription and connections. Fields guarded by hub.mu.
type userEntry struct {
	sub   *nats.Subscription
	conns []*conn
}

// dispatchBuffer is the capacity of each shard channel; when full, nats.go drops
// messages for the subscription (live delivery may drop; clients fill gaps).
var dispatchBuffer = 16384

func newHub(nc *nats.Conn, prefix string, shards int, log *zap.Logger) *hub {
	h := &hub{nc: nc, prefix: prefix, log: log, users: map[string]*userEntry{}, done: make(chan struct{})}
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

func (h *hub) shard(uid string) chan *nats.Msg {
	var x uint32 = 2166136261
	for i := 0; i < len(uid); i++ {
		x = (x ^ uint32(uid[i])) * 16777619
	}
	return h.shards[x%uint32(len(h.shards))]
}

// add registers c under its user, subscribing on the user's first connection.
func (h *hub) add(c *conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.users[c.user]
	if e == nil {
		sub, err := h.nc.ChanSubscribe(h.prefix+c.user, h.shard(c.user))
		if err != nil {
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
		e = &userEntry{sub: sub}
		h.users[c.user] = e
	}
	e.conns = append(e.conns, c)
	return nil
}

// remove unregisters c, unsubscribing after the user's last connection.
func (h *hub) remove(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.users[c.user]
	if e == nil {
		return
	}
	for i, x := range e.conns {
		if x == c {
			e.conns = append(e.conns[:i], e.conns[i+1:]...)
			break
		}
	}
	if len(e.conns) == 0 {
		_ = e.sub.Unsubscribe()
		delete(h.users, c.user)
	}
}

func (h *hub) deliver(m *nats.Msg) {
	uid := strings.TrimPrefix(m.Subject, h.prefix)
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

func (h *hub) stop() {
	h.mu.Lock()
	for _, e := range h.users {
		_ = e.sub.Unsubscribe()
	}
	h.users = map[string]*userEntry{}
	h.mu.Unlock()
	close(h.done)
}
