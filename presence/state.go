package presence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// applyGateway folds gw's device count n, taken from revision rev of its entry, into
// uid's state; an older revision than the one applied is ignored.
func (p *Presence) applyGateway(ctx context.Context, uid, gw string, n int, rev uint64, immediate bool, lastHeard int64) error {
	_, err := p.updateUser(ctx, uid, func(u *presencekv.User, now int64) time.Duration {
		if cur, ok := u.Gateways[gw]; ok && cur.Rev >= rev {
			return 0
		}
		if u.Gateways == nil {
			u.Gateways = map[string]presencekv.GatewayDevices{}
		}
		u.Gateways[gw] = presencekv.GatewayDevices{N: n, Rev: rev, At: now}
		for g, d := range u.Gateways {
			if d.N == 0 && now-d.At > tombstoneTTL.Milliseconds() {
				delete(u.Gateways, g)
			}
		}
		return p.settle(u, now, immediate, lastHeard)
	})
	return err
}

// settle derives what others see from u's devices and chosen status at now (ms). A
// user with no device left stays shown online for the grace period, unless immediate
// (their gateway died: then they are last seen at lastHeard, or when their grace
// period began if earlier); settle returns the grace to arm when that period
// starts, else 0.
func (p *Presence) settle(u *presencekv.User, now int64, immediate bool, lastHeard int64) time.Duration {
	n := u.Devices()
	if n > 0 {
		u.Pending = 0
		switch u.Set {
		case presencekv.StatusInvisible:
			if u.Visible() {
				u.LastSeen = now
			}
			u.Shown, u.ShownDevices = presencekv.StatusOffline, 0
		case presencekv.StatusAway:
			u.Shown, u.ShownDevices = presencekv.StatusAway, n
		default:
			u.Shown, u.ShownDevices = presencekv.StatusOnline, n
		}
		return 0
	}
	if !u.Visible() {
		u.Pending = 0
		return 0
	}
	if immediate || p.cfg.Grace <= 0 {
		if !immediate {
			lastHeard = now
		}
		if u.Pending != 0 && u.Pending < lastHeard {
			lastHeard = u.Pending
		}
		u.Shown, u.ShownDevices, u.LastSeen, u.Pending = presencekv.StatusOffline, 0, lastHeard, 0
		return 0
	}
	if u.Pending == 0 {
		u.Pending = now
		return p.cfg.Grace
	}
	return 0
}

// graceOver ends uid's grace period if it is due and no device came back; early
// (a timer from an earlier period) it re-arms for the rest.
func (p *Presence) graceOver(ctx context.Context, uid string) error {
	_, err := p.updateUser(ctx, uid, func(u *presencekv.User, now int64) time.Duration {
		if u.Pending == 0 || u.Devices() > 0 {
			return 0
		}
		if left := u.Pending + p.cfg.Grace.Milliseconds() - now; left > 250 {
			return time.Duration(left) * time.Millisecond
		}
		u.Shown, u.ShownDevices, u.LastSeen, u.Pending = presencekv.StatusOffline, 0, u.Pending, 0
		return 0
	})
	return err
}

// updateUser applies change to uid's entry with compare-and-set, retrying on
// conflict. Once written, it publishes the new view if what others see changed, and
// arms the grace timer for the duration change returned (if > 0). It returns the
// entry as written.
func (p *Presence) updateUser(ctx context.Context, uid string, change func(u *presencekv.User, now int64) time.Duration) (presencekv.User, error) {
	key := presencekv.UserKey(uid)
	for attempt := 0; attempt < maxCAS; attempt++ {
		var u presencekv.User
		var rev uint64
		var old []byte
		e, err := p.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return u, fmt.Errorf("read %s: %w", key, err)
		default:
			if err := json.Unmarshal(e.Value(), &u); err != nil {
				p.log.Error("corrupt presence entry replaced", zap.String("user_id", uid), zap.Error(err))
				u = presencekv.User{}
			}
			rev, old = e.Revision(), e.Value()
		}
		before := presencekv.ViewOf(uid, &u)
		arm := change(&u, time.Now().UnixMilli())
		data, _ := json.Marshal(u)
		if rev == 0 || !bytes.Equal(data, old) {
			_, err = p.put(ctx, key, data, rev, 0)
			if errors.Is(err, errConflict) {
				continue
			}
			if err != nil {
				return u, err
			}
			if after := presencekv.ViewOf(uid, &u); after != before {
				p.publish(after)
			}
		}
		if arm > 0 {
			p.armGrace(ctx, uid, arm)
		}
		return u, nil
	}
	return presencekv.User{}, fmt.Errorf("write %s: %w", key, errConflict)
}

// publish sends v to natter.presence.<uid>. Gateways forward the frame to watchers.
func (p *Presence) publish(v presencekv.View) {
	if err := p.deps.NC.Publish(p.deps.Subjects.Presence(v.UserID), protocol.EncodeFrame(v.Frame(""))); err != nil {
		p.log.Warn("presence publish failed", zap.String("user_id", v.UserID), zap.Error(err))
	}
}

// armGrace creates uid's grace timer: a key whose expiry marker ends the grace
// period (graceOver). A timer already running is left alone: when it fires early,
// graceOver re-arms for the rest.
func (p *Presence) armGrace(ctx context.Context, uid string, d time.Duration) {
	_, err := p.kv.Create(ctx, presencekv.GraceKey(uid), nil, jetstream.KeyTTL(wholeSeconds(d)))
	if err != nil && !isConflict(err) && !errors.Is(ctx.Err(), context.Canceled) {
		p.log.Warn("grace timer not armed: the user stays shown online until their next change",
			zap.String("user_id", uid), zap.Error(err))
	}
}

// handleExpiry handles one message of the shared consumer: a gateway lease or grace
// timer written, deleted or expired. Only removals matter.
func (p *Presence) handleExpiry(ctx context.Context, m jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	h := m.Headers()
	reason := h.Get("Nats-Marker-Reason")
	op := h.Get("KV-Operation")
	if reason == "" && op == "" {
		_ = m.Ack() // a write: nothing to do
		return
	}
	key := strings.TrimPrefix(m.Subject(), presencekv.Subject(""))
	var err error
	switch {
	case strings.HasPrefix(key, presencekv.LeaseKey("")):
		gw := key[len(presencekv.LeaseKey("")):]
		md, merr := m.Metadata()
		if merr != nil {
			_ = m.Term()
			return
		}
		// Entries written after the lease ended belong to the gateway's next life
		// (its heartbeats resumed and it reported again): keep them.
		before := md.Sequence.Stream
		expired := reason == "MaxAge"
		// The marker is written when the lease expires: one TTL after the gateway's
		// last heartbeat.
		lastHeard := md.Timestamp.UnixMilli() - wholeSeconds(p.cfg.Expiry).Milliseconds()
		err = p.forgetGateway(ctx, gw, func(e jetstream.KeyValueEntry, _ presencekv.ConnValue) bool {
			return e.Revision() < before
		}, expired, lastHeard)
		if err == nil {
			p.log.Info("gateway gone: its users were taken offline", zap.String("gateway", gw), zap.Bool("expired", expired))
		}
	case strings.HasPrefix(key, presencekv.GraceKey("")):
		err = p.graceOver(ctx, key[len(presencekv.GraceKey("")):])
	}
	if err != nil {
		// On shutdown the work is cut short on purpose: the marker is redelivered
		// to the next presence instance, nothing to warn about.
		if ctx.Err() == nil {
			p.log.Warn("expiry handling failed; will retry", zap.String("key", key), zap.Error(err))
		}
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}
