package livestate

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/ids"
	"go.uber.org/zap"
)

// Presence at the edge (docs/presence.md). The gateway
//   - reports its users' device counts and a heartbeat to the presence role on
//     subjects.Heartbeat() (pkg/presencekv.Report), from one goroutine: connects and
//     disconnects only mark the user dirty, and the reporter sends the current counts
//     in batches, stamped with an increasing seq, so reordered or retried reports
//     never move a count backwards (report.go);
//   - serves presence_sub: one NATS subscription per watched user per gateway, shared
//     by every connection watching them, delivering into one shared channel with one
//     dispatcher goroutine (as the hub does), so watching costs no goroutine per
//     connection or subscription (watch.go, subscribe.go);
//   - serves GET/PUT /api/v1/users/{id}/presence (rest.go).
// Only users who share a chat with the caller (or the caller themself, or a service)
// may be watched or read (authz.go).

// updateBuffer is the capacity of the channel every watch subscription delivers
// into; when it is full, nats.go drops updates (presence may drop).
var updateBuffer = 16384

// Presence is the gateway's presence state.
type Presence struct {
	cfg PresenceConfig
	d   PresenceDeps
	id  string // this gateway's ID in reports: new at every start
	log *zap.Logger

	mu    sync.Mutex          // guards dirty, seq, sweep
	dirty map[string]struct{} // users whose device count changed since the last report
	seq   uint64              // last report seq given out
	sweep uint64              // after a resync: its first seq, until the sweep is sent
	wake  chan struct{}       // capacity 1: the reporter has work

	wmu     sync.Mutex // guards watched and byConn
	watched map[string]*watchEntry
	byConn  map[Conn][]string
	updates chan *nats.Msg // every watch subscription delivers here

	kvMu sync.Mutex // guards kv
	kv   jetstream.KeyValue

	shared  *expirable.LRU[string, struct{}]            // "a\x00b": a and b share a chat
	chatsOf *expirable.LRU[string, map[string]struct{}] // a user's chat IDs
}

// watchEntry is one watched user: the subscription and the connections watching.
type watchEntry struct {
	sub   *nats.Subscription
	conns []Conn
}

// NewPresence returns the presence state of one gateway; Run starts it.
func NewPresence(cfg PresenceConfig, d PresenceDeps, log *zap.Logger) *Presence {
	return &Presence{cfg: cfg, d: d, id: ids.New(), log: log, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1),
		watched: map[string]*watchEntry{}, byConn: map[Conn][]string{}, updates: make(chan *nats.Msg, updateBuffer),
		shared:  expirable.NewLRU[string, struct{}](100_000, nil, time.Minute),
		chatsOf: expirable.NewLRU[string, map[string]struct{}](10_000, nil, 10*time.Second)}
}

// Run starts the reporter and the update dispatcher, tracked by wg; both end with
// ctx (the reporter then tells the presence role this gateway is gone).
func (p *Presence) Run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.report(ctx)
	}()
	go func() {
		defer wg.Done()
		p.dispatch(ctx)
	}()
}

// Joined is called after c was added to the local connections.
func (p *Presence) Joined(c Conn) { p.markDirty(c.UserID()) }

// Left is called after c was removed from the local connections: its device is
// gone and its presence subscriptions end.
func (p *Presence) Left(c Conn) {
	p.markDirty(c.UserID())
	p.unwatchAll(c)
}

func (p *Presence) markDirty(uid string) {
	p.mu.Lock()
	p.dirty[uid] = struct{}{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}
