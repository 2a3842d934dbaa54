package livestate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/presencekv"
	"go.uber.org/zap"
)

// reportTimeout bounds one request to the presence role.
var reportTimeout = 5 * time.Second

// report sends heartbeats every PresenceConfig.Heartbeat and device counts as they
// change, until ctx ends.
func (p *Presence) report(ctx context.Context) {
	tick := time.NewTicker(p.cfg.Heartbeat)
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
func (p *Presence) request(ctx context.Context, r *presencekv.Report) (presencekv.Reply, error) {
	var reply presencekv.Reply
	data, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	m, err := p.d.NC.RequestWithContext(ctx, p.d.Subjects.Heartbeat(), data)
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
func (p *Presence) heartbeat(ctx context.Context) bool {
	reply, err := p.request(ctx, &presencekv.Report{Kind: presencekv.KindHeartbeat, Gateway: p.id,
		IntervalMs: p.cfg.Heartbeat.Milliseconds()})
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
		for _, uid := range p.d.Local.UserIDs() {
			p.markDirty(uid)
		}
	}
	return true
}

// flush reports the dirty users' device counts, then a pending sweep. It returns
// false if a report failed (the users stay dirty and are retried).
func (p *Presence) flush(ctx context.Context) bool {
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
// counts here, each with a new seq: counts and seqs are taken together while no
// connection arrives or leaves (Local.DeviceCounts), so a later seq always carries a
// later count.
func (p *Presence) takeDirty() map[string]presencekv.Devices {
	var out map[string]presencekv.Devices
	p.d.Local.DeviceCounts(func(devices func(uid string) int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.dirty) == 0 {
			return
		}
		out = make(map[string]presencekv.Devices, min(len(p.dirty), presencekv.MaxReportUsers))
		for uid := range p.dirty {
			if len(out) == presencekv.MaxReportUsers {
				break
			}
			delete(p.dirty, uid)
			p.seq++
			out[uid] = presencekv.Devices{N: devices(uid), Seq: p.seq}
		}
	})
	return out
}

// goodbye tells the presence role this gateway is stopping, unless its NATS
// connection is gone (then the lease expires).
func (p *Presence) goodbye() {
	if p.d.NC.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := p.request(ctx, &presencekv.Report{Kind: presencekv.KindGone, Gateway: p.id}); err != nil {
		p.log.Debug("presence goodbye not answered: the lease will expire", zap.Error(err))
	}
}
