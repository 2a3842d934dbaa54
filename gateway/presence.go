package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Presence at the edge (docs/presence.md). The gateway
//   - reports its users' device counts and a heartbeat to the presence role on
//     subjects.Heartbeat() (pkg/presencekv.Report), from one goroutine: connects and
//     disconnects only mark the user dirty, and the reporter sends the current counts
//     in batches, stamped with an increasing seq, so reordered or retried reports
//     never move a count backwards;
//   - serves presence_sub: one NATS subscription per watched user per gateway, shared
//     by every connection watching them, delivering into one shared channel with one
//     dispatcher goroutine (as the hub does), so watching costs no goroutine per
//     connection or subscription;
//   - serves GET/PUT /api/v1/users/{id}/presence.
// Only users who share a chat with the caller (or the caller themself, or a service)
// may be watched or read.

// PresenceConfig is the presence part of the gateway section (flags gateway.presence-*).
type PresenceConfig struct {
	// Heartbeat is how often the gateway renews its presence lease. It must be well
	// under the presence role's presence.expiry (a third or less), or the gateway's
	// users flap offline.
	Heartbeat time.Duration `yaml:"presence_heartbeat"`
	// MaxSubs caps how many users one connection may watch with presence_sub.
	MaxSubs int `yaml:"presence_max_subs"`
}

// RegisterFlags registers the gateway.presence-* flags.
func (c *PresenceConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Heartbeat, "gateway.presence-heartbeat", 10*time.Second, "how often the gateway renews its presence lease (well under presence.expiry)")
	fs.IntVar(&c.MaxSubs, "gateway.presence-max-subs", 1000, "users one connection may watch with presence_sub")
}

// Validate checks the presence settings.
func (c *PresenceConfig) Validate() error {
	var errs []error
	if c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, errors.New("gateway: gateway.presence-heartbeat must be >= 100ms"))
	}
	if c.MaxSubs < 1 {
		errs = append(errs, errors.New("gateway: gateway.presence-max-subs must be >= 1"))
	}
	return errors.Join(errs...)
}

// MaxPresenceSubUsers caps the userIds of one presence_sub frame.
const MaxPresenceSubUsers = 100

// presenceReportTimeout bounds one request to the presence role.
var presenceReportTimeout = 5 * time.Second

// maxChatScan caps how many of a user's chats the shared-chat check looks at.
const maxChatScan = 5000

// presenceGW is the gateway's presence state.
type presenceGW struct {
	g   *Gateway
	id  string // this gateway's ID in reports: new at every start
	log *zap.Logger

	mu    sync.Mutex          // guards dirty, seq, sweep
	dirty map[string]struct{} // users whose device count changed since the last report
	seq   uint64              // last report seq given out
	sweep uint64              // after a resync: its first seq, until the sweep is sent
	wake  chan struct{}       // capacity 1: the reporter has work

	wmu     sync.Mutex // guards watched and byConn
	watched map[string]*watchEntry
	byConn  map[*conn][]string
	updates chan *nats.Msg // every watch subscription delivers here

	kvMu sync.Mutex // guards kv
	kv   jetstream.KeyValue

	shared  *expirable.LRU[string, struct{}]            // "a\x00b": a and b share a chat
	chatsOf *expirable.LRU[string, map[string]struct{}] // a user's chat IDs
}

// watchEntry is one watched user: the subscription and the connections watching.
type watchEntry struct {
	sub   *nats.Subscription
	conns []*conn
}

func newPresenceGW(g *Gateway) *presenceGW {
	return &presenceGW{g: g, id: ids.New(), log: g.log, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1),
		watched: map[string]*watchEntry{}, byConn: map[*conn][]string{}, updates: make(chan *nats.Msg, dispatchBuffer),
		shared:  expirable.NewLRU[string, struct{}](100_000, nil, time.Minute),
		chatsOf: expirable.NewLRU[string, map[string]struct{}](10_000, nil, 10*time.Second)}
}

// run starts the reporter and the update dispatcher; both end with ctx (the reporter
// then tells the presence role this gateway is gone).
func (p *presenceGW) run(ctx context.Context, wg *sync.WaitGroup) {
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

// joined is called after c was added to the hub.
func (p *presenceGW) joined(c *conn) { p.markDirty(c.user) }

// left is called after c was removed from the hub: its device is gone and its
// presence subscriptions end.
func (p *presenceGW) left(c *conn) {
	p.markDirty(c.user)
	p.unwatchAll(c)
}

func (p *presenceGW) markDirty(uid string) {
	p.mu.Lock()
	p.dirty[uid] = struct{}{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// report sends heartbeats every PresenceConfig.Heartbeat and device counts as they
// change, until ctx ends.
func (p *presenceGW) report(ctx context.Context) {
	tick := time.NewTicker(p.g.cfg.Presence.Heartbeat)
	defer tick.Stop()
	up := p.heartbeat(ctx)
	for {
		if up {
			up = p.flush(ctx)
		}
		select {
		case <-ctx.Done():
			p.goodbye()
			return
		case <-tick.C:
			up = p.heartbeat(ctx)
		case <-p.wake:
			if !up {
				// The presence role did not answer yet (e.g. it is still starting):
				// try now rather than a heartbeat later, so a join shows at once.
				up = p.heartbeat(ctx)
			}
		}
	}
}

// request sends r to the presence role and returns its reply.
func (p *presenceGW) request(ctx context.Context, r *presencekv.Report) (presencekv.Reply, error) {
	var reply presencekv.Reply
	data, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(ctx, presenceReportTimeout)
	defer cancel()
	m, err := p.g.deps.NC.RequestWithContext(ctx, p.g.deps.Subjects.Heartbeat(), data)
	if err != nil {
		return reply, fmt.Errorf("presence %s report: %w", r.Kind, err)
	}
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return reply, fmt.Errorf("presence %s report: malformed reply: %w", r.Kind, err)
	}
	if reply.Error != "" {
		return reply, fmt.Errorf("presence %s report: %s", r.Kind, reply.Error)
	}
	return reply, nil
}

// heartbeat renews the lease; when the presence role had no lease for this gateway
// it reports every user again. It returns whether the presence role answered.
func (p *presenceGW) heartbeat(ctx context.Context) bool {
	reply, err := p.request(ctx, &presencekv.Report{Kind: presencekv.KindHeartbeat, Gateway: p.id,
		IntervalMs: p.g.cfg.Presence.Heartbeat.Milliseconds()})
	if err != nil {
		if ctx.Err() == nil {
			p.log.Debug("presence heartbeat not answered", zap.Error(err))
		}
		return false
	}
	if reply.Resync {
		p.mu.Lock()
		p.sweep = p.seq + 1
		p.mu.Unlock()
		for _, uid := range p.g.hub.userIDs() {
			p.markDirty(uid)
		}
	}
	return true
}

// flush reports the dirty users' device counts, then a pending sweep. It returns
// false if a report failed (the users stay dirty and are retried).
func (p *presenceGW) flush(ctx context.Context) bool {
	for ctx.Err() == nil {
		users := p.takeDirty()
		if len(users) == 0 {
			break
		}
		if _, err := p.request(ctx, &presencekv.Report{Kind: presencekv.KindDevices, Gateway: p.id, Users: users}); err != nil {
			p.log.Debug("presence report failed; retrying", zap.Int("users", len(users)), zap.Error(err))
			for uid := range users {
				p.markDirty(uid)
			}
			return false
		}
	}
	p.mu.Lock()
	before := p.sweep
	p.mu.Unlock()
	if before == 0 || ctx.Err() != nil {
		return true
	}
	if _, err := p.request(ctx, &presencekv.Report{Kind: presencekv.KindSweep, Gateway: p.id, Before: before}); err != nil {
		return false
	}
	p.mu.Lock()
	if p.sweep == before {
		p.sweep = 0
	}
	p.mu.Unlock()
	return true
}

// takeDirty removes up to MaxReportUsers dirty users and returns their current device
// counts here, each with a new seq: counts and seqs are taken together under the hub
// lock, so a later seq always carries a later count.
func (p *presenceGW) takeDirty() map[string]presencekv.Devices {
	h := p.g.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dirty) == 0 {
		return nil
	}
	out := make(map[string]presencekv.Devices, min(len(p.dirty), presencekv.MaxReportUsers))
	for uid := range p.dirty {
		if len(out) == presencekv.MaxReportUsers {
			break
		}
		delete(p.dirty, uid)
		n := 0
		if e := h.users[uid]; e != nil {
			n = len(e.conns)
		}
		p.seq++
		out[uid] = presencekv.Devices{N: n, Seq: p.seq}
	}
	return out
}

// goodbye tells the presence role this gateway is stopping, unless its NATS
// connection is gone (then the lease expires).
func (p *presenceGW) goodbye() {
	if p.g.deps.NC.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := p.request(ctx, &presencekv.Report{Kind: presencekv.KindGone, Gateway: p.id}); err != nil {
		p.log.Debug("presence goodbye not answered: the lease will expire", zap.Error(err))
	}
}

// dispatch forwards presence updates to the connections watching, until ctx ends.
func (p *presenceGW) dispatch(ctx context.Context) {
	prefix := p.g.deps.Subjects.PresencePrefix()
	defer p.unwatchEverything()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-p.updates:
			p.deliver(strings.TrimPrefix(m.Subject, prefix), m.Data)
		}
	}
}

func (p *presenceGW) deliver(uid string, data []byte) {
	// A user uid blocks does not see uid's presence (blocks.go). The list is
	// cached; when it cannot be read the update is dropped (presence may drop,
	// a block may not leak).
	ctx, cancel := context.WithTimeout(context.Background(), blockReadTimeout)
	blocked, err := p.g.blocks.Of(ctx, uid)
	cancel()
	if err != nil {
		p.log.Debug("presence update dropped: block list unavailable", zap.String("user_id", uid), zap.Error(err))
		return
	}
	var closed []*conn
	p.wmu.Lock()
	if e := p.watched[uid]; e != nil {
		for _, c := range e.conns {
			if c.isClosed() {
				closed = append(closed, c)
				continue
			}
			if _, no := blocked[c.user]; no {
				continue
			}
			c.enqueue(data)
		}
	}
	p.wmu.Unlock()
	for _, c := range closed { // a connection whose close path did not call left
		p.unwatchAll(c)
	}
}

// watch subscribes c to uids' presence updates. It returns a *protocol.Error when c
// would watch more than MaxSubs users or NATS refuses the subscription.
func (p *presenceGW) watch(c *conn, uids []string) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	have := p.byConn[c]
	var add []string
	for _, uid := range uids {
		if !contains(have, uid) && !contains(add, uid) {
			add = append(add, uid)
		}
	}
	if len(have)+len(add) > p.g.cfg.Presence.MaxSubs {
		return protocol.Errorf(protocol.CodeTooLarge, "a connection may watch at most %d users", p.g.cfg.Presence.MaxSubs)
	}
	if c.isClosed() {
		return protocol.Errorf(protocol.CodeBadRequest, "connection closed")
	}
	for _, uid := range add {
		e := p.watched[uid]
		if e == nil {
			sub, err := p.g.deps.NC.ChanSubscribe(p.g.deps.Subjects.Presence(uid), p.updates)
			if err != nil {
				p.log.Warn("presence subscribe failed", zap.String("user_id", uid), zap.Error(err))
				p.byConn[c] = have
				return protocol.Errorf(protocol.CodeUnavailable, "presence subscription failed; retry")
			}
			_ = sub.SetPendingLimits(-1, -1)
			e = &watchEntry{sub: sub}
			p.watched[uid] = e
		}
		e.conns = append(e.conns, c)
		have = append(have, uid)
	}
	if len(have) > 0 {
		p.byConn[c] = have
	}
	return nil
}

// unwatch ends c's watch of uids.
func (p *presenceGW) unwatch(c *conn, uids []string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	have := p.byConn[c]
	for _, uid := range uids {
		if i := index(have, uid); i >= 0 {
			have = append(have[:i], have[i+1:]...)
			p.dropLocked(c, uid)
		}
	}
	if len(have) == 0 {
		delete(p.byConn, c)
	} else {
		p.byConn[c] = have
	}
}

// unwatchAll ends every watch of c.
func (p *presenceGW) unwatchAll(c *conn) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for _, uid := range p.byConn[c] {
		p.dropLocked(c, uid)
	}
	delete(p.byConn, c)
}

// dropLocked removes c from uid's watchers, unsubscribing after the last. wmu held.
func (p *presenceGW) dropLocked(c *conn, uid string) {
	e := p.watched[uid]
	if e == nil {
		return
	}
	if i := index(e.conns, c); i >= 0 {
		e.conns = append(e.conns[:i], e.conns[i+1:]...)
	}
	if len(e.conns) == 0 {
		_ = e.sub.Unsubscribe()
		delete(p.watched, uid)
	}
}

// dropBlocked ends blocked's watches of blocker on this gateway (a block was just
// made here); deliver filters the rest.
func (p *presenceGW) dropBlocked(blocker, blocked string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	e := p.watched[blocker]
	if e == nil {
		return
	}
	for _, c := range append([]*conn(nil), e.conns...) {
		if c.user != blocked {
			continue
		}
		p.dropLocked(c, blocker)
		if have := p.byConn[c]; len(have) > 0 {
			if i := index(have, blocker); i >= 0 {
				have = append(have[:i], have[i+1:]...)
			}
			if len(have) == 0 {
				delete(p.byConn, c)
			} else {
				p.byConn[c] = have
			}
		}
	}
}

func (p *presenceGW) unwatchEverything() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for _, e := range p.watched {
		_ = e.sub.Unsubscribe()
	}
	p.watched = map[string]*watchEntry{}
	p.byConn = map[*conn][]string{}
}

func index[T comparable](s []T, v T) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func contains[T comparable](s []T, v T) bool { return index(s, v) >= 0 }

// bucket returns the presence KV bucket; nil, nil while there is none (no presence
// role has run yet, so nobody is known to be online), or a CodeUnavailable error
// when NATS does not answer.
func (p *presenceGW) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	p.kvMu.Lock()
	defer p.kvMu.Unlock()
	if p.kv != nil {
		return p.kv, nil
	}
	kv, err := p.g.deps.JS.KeyValue(ctx, presencekv.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		p.log.Warn("presence bucket unavailable", zap.Error(err))
		return nil, protocol.Errorf(protocol.CodeUnavailable, "presence is not available; retry")
	}
	p.kv = kv
	return kv, nil
}

// user returns uid's presence entry, nil if the user was never seen.
func (p *presenceGW) user(ctx context.Context, uid string) (*presencekv.User, error) {
	kv, err := p.bucket(ctx)
	if err != nil || kv == nil {
		return nil, err
	}
	e, err := kv.Get(ctx, presencekv.UserKey(uid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		p.log.Warn("presence read failed", zap.String("user_id", uid), zap.Error(err))
		return nil, protocol.Errorf(protocol.CodeUnavailable, "presence is not available; retry")
	}
	var u presencekv.User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return nil, fmt.Errorf("presence entry of %s: %w", uid, err)
	}
	return &u, nil
}

// mayWatch returns nil if caller may see target's presence: themself, a service, or
// someone sharing a chat with target whom target does not block; else a
// CodeForbidden error (the same for a block, which it does not reveal).
func (p *presenceGW) mayWatch(ctx context.Context, caller string, service bool, target string) error {
	if caller == target || service {
		return nil
	}
	ok, err := p.shares(ctx, caller, target)
	if err != nil {
		p.log.Warn("shared-chat check failed", zap.String("user_id", caller), zap.Error(err))
		return protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry")
	}
	if ok {
		blocked, err := p.g.blocks.Blocks(ctx, target, caller)
		if err != nil {
			return blockUnavailable(err)
		}
		ok = !blocked
	}
	if !ok {
		return protocol.Errorf(protocol.CodeForbidden, "no chat shared with %s: presence is visible only to chat partners", target)
	}
	return nil
}

// shares reports whether a and b are members of one chat. Positive answers are cached
// for a minute (like memberships at the edge); negative ones are not, so a new chat
// counts at once.
func (p *presenceGW) shares(ctx context.Context, a, b string) (bool, error) {
	key := a + "\x00" + b
	if _, ok := p.shared.Get(key); ok {
		return true, nil
	}
	yes := func() (bool, error) {
		p.shared.Add(key, struct{}{})
		p.shared.Add(b+"\x00"+a, struct{}{})
		return true, nil
	}
	// Fast path: their direct chat.
	dm := ids.Direct(a, b)
	if _, err := p.g.members.check(ctx, dm, a); err == nil {
		if _, err := p.g.members.check(ctx, dm, b); err == nil {
			return yes()
		}
	}
	mine, err := p.chatSet(ctx, a)
	if err != nil {
		return false, err
	}
	const page = 500
	for off := 0; off < maxChatScan; off += page {
		cs, err := p.g.deps.Store.UserChats(ctx, b, page, off)
		if err != nil {
			return false, fmt.Errorf("chats of %s: %w", b, err)
		}
		for _, c := range cs {
			if _, ok := mine[c.ID]; ok {
				return yes()
			}
		}
		if len(cs) < page {
			break
		}
	}
	return false, nil
}

// chatSet returns the IDs of uid's chats (at most maxChatScan), cached briefly.
func (p *presenceGW) chatSet(ctx context.Context, uid string) (map[string]struct{}, error) {
	if s, ok := p.chatsOf.Get(uid); ok {
		return s, nil
	}
	s := map[string]struct{}{}
	const page = 500
	for off := 0; off < maxChatScan; off += page {
		cs, err := p.g.deps.Store.UserChats(ctx, uid, page, off)
		if err != nil {
			return nil, fmt.Errorf("chats of %s: %w", uid, err)
		}
		for _, c := range cs {
			s[c.ID] = struct{}{}
		}
		if len(cs) < page {
			break
		}
	}
	p.chatsOf.Add(uid, s)
	return s, nil
}

// onPresenceSub handles presence_sub: {"userIds":[...]} starts watching those users
// (all or none: one refused user refuses the frame) and answers with a
// presence_update per user carrying the frame's id; with "remove":true it stops
// watching them and answers nothing.
func (g *Gateway) onPresenceSub(ctx context.Context, c *conn, f *protocol.Frame) error {
	if len(f.UserIDs) == 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "userIds is required")
	}
	if len(f.UserIDs) > MaxPresenceSubUsers {
		return protocol.Errorf(protocol.CodeTooLarge, "presence_sub names %d users, the limit is %d", len(f.UserIDs), MaxPresenceSubUsers)
	}
	var uids []string
	for _, uid := range f.UserIDs {
		if err := validID("user", uid); err != nil {
			return err
		}
		if !contains(uids, uid) {
			uids = append(uids, uid)
		}
	}
	if f.Remove {
		g.presence.unwatch(c, uids)
		return nil
	}
	for _, uid := range uids {
		if err := g.presence.mayWatch(ctx, c.user, c.service, uid); err != nil {
			return err
		}
	}
	if err := g.presence.watch(c, uids); err != nil {
		return err
	}
	// Subscribed before reading: a change in between is delivered, never lost.
	for _, uid := range uids {
		u, err := g.presence.user(ctx, uid)
		if err != nil {
			return err
		}
		c.send(presencekv.ViewOf(uid, u).Frame(f.ID))
	}
	return nil
}

// presenceBody is the body of GET/PUT /api/v1/users/{id}/presence.
type presenceBody struct {
	presencekv.View
	// Set is, for your own presence only, the status you chose: online, away or
	// invisible.
	Set string `json:"set,omitempty"`
}

// selfView is what a user sees of their own presence: what others see, plus their
// chosen status and their real device count.
func selfView(uid string, u *presencekv.User) presenceBody {
	b := presenceBody{View: presencekv.ViewOf(uid, u), Set: presencekv.StatusOnline}
	if u != nil {
		if u.Set != "" {
			b.Set = u.Set
		}
		b.Devices = u.Devices()
	}
	return b
}

// getPresence serves GET /api/v1/users/{id}/presence: the user's presence as the
// caller may see it (yourself, a chat partner, or any user for a service).
func (g *Gateway) getPresence(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	uid := r.PathValue("id")
	if err := validID("user", uid); err != nil {
		g.fail(w, err)
		return
	}
	if err := g.presence.mayWatch(r.Context(), id.UserID, id.Service, uid); err != nil {
		g.fail(w, err)
		return
	}
	u, err := g.presence.user(r.Context(), uid)
	if err != nil {
		g.fail(w, err)
		return
	}
	if uid == id.UserID {
		writeJSON(w, http.StatusOK, selfView(uid, u))
		return
	}
	writeJSON(w, http.StatusOK, presenceBody{View: presencekv.ViewOf(uid, u)})
}

// putPresenceRequest is the body of PUT /api/v1/users/{id}/presence.
type putPresenceRequest struct {
	// Status: online, away or invisible (others see invisible users as offline).
	Status string `json:"status"`
}

// putPresence serves PUT /api/v1/users/{id}/presence: set your own chosen status
// (a service may set anyone's). It answers with your presence after the change.
func (g *Gateway) putPresence(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	uid := r.PathValue("id")
	if err := validID("user", uid); err != nil {
		g.fail(w, err)
		return
	}
	if uid != id.UserID && !id.Service {
		g.fail(w, protocol.Errorf(protocol.CodeForbidden, "you may set only your own presence"))
		return
	}
	var req putPresenceRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	switch req.Status {
	case presencekv.StatusOnline, presencekv.StatusAway, presencekv.StatusInvisible:
	default:
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, `status must be "online", "away" or "invisible"`))
		return
	}
	reply, err := g.presence.request(r.Context(), &presencekv.Report{Kind: presencekv.KindSet, User: uid, Status: req.Status})
	if err != nil || reply.User == nil {
		g.log.Warn("presence set failed", zap.String("user_id", uid), zap.Error(err))
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "presence is not available; retry"))
		return
	}
	writeJSON(w, http.StatusOK, selfView(uid, reply.User))
}
