package livestate

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// blockReadTimeout bounds a block list read on the dispatcher, which delivers every
// watched user's updates: a slow store delays presence by at most this (and the
// update is dropped).
var blockReadTimeout = time.Second

// dispatch forwards presence updates to the connections watching, until ctx ends.
func (p *Presence) dispatch(ctx context.Context) {
	prefix := p.d.Subjects.PresencePrefix()
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

func (p *Presence) deliver(uid string, data []byte) {
	// A user uid blocks does not see uid's presence. The list is cached; when it
	// cannot be read the update is dropped (presence may drop, a block may not leak).
	ctx, cancel := context.WithTimeout(context.Background(), blockReadTimeout)
	blocked, err := p.d.Blocks.Of(ctx, uid)
	cancel()
	if err != nil {
		p.log.Debug("presence update dropped: block list unavailable", zap.String("user_id", uid), zap.Error(err))
		return
	}
	var closed []Conn
	p.wmu.Lock()
	if e := p.watched[uid]; e != nil {
		for _, c := range e.conns {
			if c.Closed() {
				closed = append(closed, c)
				continue
			}
			if _, no := blocked[c.UserID()]; no {
				continue
			}
			c.Enqueue(data)
		}
	}
	p.wmu.Unlock()
	for _, c := range closed { // a connection whose close path did not call Left
		p.unwatchAll(c)
	}
}

// watch subscribes c to uids' presence updates. It returns a *protocol.Error when c
// would watch more than MaxSubs users or NATS refuses the subscription.
func (p *Presence) watch(c Conn, uids []string) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	have := p.byConn[c]
	var add []string
	for _, uid := range uids {
		if !slices.Contains(have, uid) && !slices.Contains(add, uid) {
			add = append(add, uid)
		}
	}
	if len(have)+len(add) > p.cfg.MaxSubs {
		return protocol.Errorf(protocol.CodeTooLarge, "a connection may watch at most %d users", p.cfg.MaxSubs)
	}
	if c.Closed() {
		return protocol.Errorf(protocol.CodeBadRequest, "connection closed")
	}
	for _, uid := range add {
		e := p.watched[uid]
		if e == nil {
			sub, err := p.d.NC.ChanSubscribe(p.d.Subjects.Presence(uid), p.updates)
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
func (p *Presence) unwatch(c Conn, uids []string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	have := p.byConn[c]
	for _, uid := range uids {
		if i := slices.Index(have, uid); i >= 0 {
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
func (p *Presence) unwatchAll(c Conn) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for _, uid := range p.byConn[c] {
		p.dropLocked(c, uid)
	}
	delete(p.byConn, c)
}

// dropLocked removes c from uid's watchers, unsubscribing after the last. wmu held.
func (p *Presence) dropLocked(c Conn, uid string) {
	e := p.watched[uid]
	if e == nil {
		return
	}
	if i := slices.Index(e.conns, c); i >= 0 {
		e.conns = append(e.conns[:i], e.conns[i+1:]...)
	}
	if len(e.conns) == 0 {
		_ = e.sub.Unsubscribe()
		delete(p.watched, uid)
	}
}

// DropBlocked ends blocked's watches of blocker on this gateway (a block was just
// made here); delivery filters the rest.
func (p *Presence) DropBlocked(blocker, blocked string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	e := p.watched[blocker]
	if e == nil {
		return
	}
	for _, c := range append([]Conn(nil), e.conns...) {
		if c.UserID() != blocked {
			continue
		}
		p.dropLocked(c, blocker)
		if have := p.byConn[c]; len(have) > 0 {
			if i := slices.Index(have, blocker); i >= 0 {
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

func (p *Presence) unwatchEverything() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for _, e := range p.watched {
		_ = e.sub.Unsubscribe()
	}
	p.watched = map[string]*watchEntry{}
	p.byConn = map[Conn][]string{}
}
