package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/presencekv"
	"go.uber.org/zap"
)

// maxDevices bounds a reported device count (a hostile or broken reporter).
const maxDevices = 1 << 20

// handleReport handles one gateway report and answers it.
func (p *Presence) handleReport(ctx context.Context, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var reply presencekv.Reply
	var r presencekv.Report
	err := json.Unmarshal(m.Data, &r)
	if err != nil {
		err = fmt.Errorf("%w: malformed JSON", ErrBadReport)
	} else {
		err = p.report(ctx, &r, &reply)
	}
	if err != nil {
		reply.Error = err.Error()
		if !errors.Is(err, ErrBadReport) && ctx.Err() == nil {
			p.log.Warn("report failed", zap.String("kind", r.Kind), zap.String("gateway", r.Gateway), zap.Error(err))
		}
	}
	if m.Reply != "" {
		data, _ := json.Marshal(reply)
		_ = m.Respond(data)
	}
}

// report applies r, filling reply. It returns ErrBadReport for invalid input.
func (p *Presence) report(ctx context.Context, r *presencekv.Report, reply *presencekv.Reply) error {
	if r.Kind != presencekv.KindSet && !ids.Valid(r.Gateway) {
		return fmt.Errorf("%w: invalid gateway id", ErrBadReport)
	}
	switch r.Kind {
	case presencekv.KindHeartbeat:
		resync, err := p.renewLease(ctx, r.Gateway, time.Duration(r.IntervalMs)*time.Millisecond)
		reply.Resync = resync
		return err
	case presencekv.KindDevices:
		if len(r.Users) > presencekv.MaxReportUsers {
			return fmt.Errorf("%w: %d users, the limit is %d", ErrBadReport, len(r.Users), presencekv.MaxReportUsers)
		}
		for uid, d := range r.Users {
			if !ids.Valid(uid) || d.N < 0 || d.N > maxDevices || d.Seq == 0 {
				return fmt.Errorf("%w: invalid user entry %.64q", ErrBadReport, uid)
			}
		}
		return p.reportDevices(ctx, r.Gateway, r.Users)
	case presencekv.KindSweep:
		return p.forgetGateway(ctx, r.Gateway, func(e jetstream.KeyValueEntry, v presencekv.ConnValue) bool {
			return v.Seq < r.Before
		}, false, 0)
	case presencekv.KindGone:
		if err := p.kv.Delete(ctx, presencekv.LeaseKey(r.Gateway)); err != nil {
			return fmt.Errorf("delete lease of %s: %w", r.Gateway, err)
		}
		return nil
	case presencekv.KindSet:
		if !ids.Valid(r.User) {
			return fmt.Errorf("%w: invalid user id", ErrBadReport)
		}
		set, ok := map[string]string{presencekv.StatusOnline: "", presencekv.StatusAway: presencekv.StatusAway,
			presencekv.StatusInvisible: presencekv.StatusInvisible}[r.Status]
		if !ok {
			return fmt.Errorf("%w: status must be online, away or invisible", ErrBadReport)
		}
		u, err := p.updateUser(ctx, r.User, func(u *presencekv.User, now int64) time.Duration {
			u.Set = set
			return p.settle(u, now, false, 0)
		})
		if err != nil {
			return err
		}
		reply.User = &u
		return nil
	}
	return fmt.Errorf("%w: unknown kind %.32q", ErrBadReport, r.Kind)
}

// leaseValue is the value of a gateway's lease.
type leaseValue struct {
	At         int64 `json:"at"`
	IntervalMs int64 `json:"intervalMs"`
}

// renewLease rewrites gw's lease with the expiry TTL. It returns resync true when
// there was no lease (a new gateway, or one whose lease expired): the gateway must
// then report all its users again.
func (p *Presence) renewLease(ctx context.Context, gw string, interval time.Duration) (resync bool, err error) {
	key := presencekv.LeaseKey(gw)
	_, err = p.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		resync = true
		if interval*2 > p.cfg.Expiry {
			p.log.Warn("gateway heartbeats are too slow for presence.expiry: its users may flap offline",
				zap.String("gateway", gw), zap.Duration("heartbeat", interval), zap.Duration("expiry", p.cfg.Expiry))
		}
	case err != nil:
		return false, fmt.Errorf("read lease of %s: %w", gw, err)
	}
	data, _ := json.Marshal(leaseValue{At: time.Now().UnixMilli(), IntervalMs: interval.Milliseconds()})
	if _, err := p.deps.JS.PublishMsg(ctx, &nats.Msg{Subject: presencekv.Subject(key), Data: data},
		jetstream.WithMsgTTL(wholeSeconds(p.cfg.Expiry))); err != nil {
		return false, fmt.Errorf("renew lease of %s: %w", gw, err)
	}
	return resync, nil
}

// reportParallel bounds the users of one report handled at once.
const reportParallel = 16

// reportDevices applies a devices report, several users at once.
func (p *Presence) reportDevices(ctx context.Context, gw string, users map[string]presencekv.Devices) error {
	sem := make(chan struct{}, reportParallel)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for uid, d := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := p.setDevices(ctx, gw, uid, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// maxCAS bounds compare-and-set retries on one key.
const maxCAS = 32

// setDevices records d for uid on gw unless a later report is already stored, then
// folds it into the user's entry.
func (p *Presence) setDevices(ctx context.Context, gw, uid string, d presencekv.Devices) error {
	key := presencekv.ConnKey(gw, uid)
	for attempt := 0; attempt < maxCAS; attempt++ {
		var rev uint64
		e, err := p.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if d.N == 0 {
				return nil // nothing recorded here, so nothing to take back
			}
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			var cur presencekv.ConnValue
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Seq >= d.Seq {
				return nil // stale: a later report is stored
			}
			rev = e.Revision()
		}
		v := presencekv.ConnValue{N: d.N, Seq: d.Seq, At: time.Now().UnixMilli()}
		newRev, err := p.writeConn(ctx, key, v, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return err
		}
		return p.applyGateway(ctx, uid, gw, v.N, newRev, false, 0)
	}
	return fmt.Errorf("write %s: %w", key, errConflict)
}

// writeConn writes v at key if its revision is still rev (0: absent); n = 0 entries
// get the tombstone TTL.
func (p *Presence) writeConn(ctx context.Context, key string, v presencekv.ConnValue, rev uint64) (uint64, error) {
	var ttl time.Duration
	if v.N == 0 {
		ttl = tombstoneTTL
	}
	data, _ := json.Marshal(v)
	return p.put(ctx, key, data, rev, ttl)
}

// put writes data at key if the key's last revision is still rev (0: the key is
// absent or deleted), with a TTL when ttl > 0. It returns the new revision, or
// errConflict if the key moved on.
func (p *Presence) put(ctx context.Context, key string, data []byte, rev uint64, ttl time.Duration) (uint64, error) {
	var newRev uint64
	var err error
	switch {
	case rev == 0 && ttl > 0:
		newRev, err = p.kv.Create(ctx, key, data, jetstream.KeyTTL(wholeSeconds(ttl)))
	case rev == 0:
		newRev, err = p.kv.Create(ctx, key, data)
	case ttl > 0:
		var ack *jetstream.PubAck
		ack, err = p.deps.JS.PublishMsg(ctx, &nats.Msg{Subject: presencekv.Subject(key), Data: data},
			jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(wholeSeconds(ttl)))
		if err == nil {
			newRev = ack.Sequence
		}
	default:
		newRev, err = p.kv.Update(ctx, key, data, rev)
	}
	if isConflict(err) {
		return 0, errConflict
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return newRev, nil
}

// forgetGateway takes back the devices of gw's users whose entries match (as of now),
// as if the gateway had reported 0 for them. gone marks a gateway that went away; then
// immediate skips the grace period and lastHeard is their last seen time.
func (p *Presence) forgetGateway(ctx context.Context, gw string, match func(jetstream.KeyValueEntry, presencekv.ConnValue) bool,
	immediate bool, lastHeard int64) error {
	entries, err := p.connEntries(ctx, gw)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, reportParallel)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, e := range entries {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := p.forgetOne(ctx, gw, e, match, immediate, lastHeard); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Presence) forgetOne(ctx context.Context, gw string, e jetstream.KeyValueEntry, match func(jetstream.KeyValueEntry, presencekv.ConnValue) bool,
	immediate bool, lastHeard int64) error {
	uid := e.Key()[len(presencekv.ConnKey(gw, "")):]
	for attempt := 0; attempt < maxCAS; attempt++ {
		var v presencekv.ConnValue
		if json.Unmarshal(e.Value(), &v) != nil || v.N == 0 || !match(e, v) {
			return nil
		}
		v.N, v.At, v.Gone = 0, time.Now().UnixMilli(), immediate
		newRev, err := p.writeConn(ctx, e.Key(), v, e.Revision())
		if errors.Is(err, errConflict) {
			if e, err = p.kv.Get(ctx, e.Key()); err != nil {
				return nil // gone meanwhile
			}
			continue
		}
		if err != nil {
			return err
		}
		return p.applyGateway(ctx, uid, gw, 0, newRev, immediate, lastHeard)
	}
	return fmt.Errorf("forget %s: %w", e.Key(), errConflict)
}

// connEntries returns the current device entries of gw's users.
func (p *Presence) connEntries(ctx context.Context, gw string) ([]jetstream.KeyValueEntry, error) {
	w, err := p.kv.WatchFiltered(ctx, []string{presencekv.ConnFilter(gw)}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list users of gateway %s: %w", gw, err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("list users of gateway %s: %w", gw, ctx.Err())
		}
	}
}
