package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/coalesce"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"github.com/natter-chat/natter/pkg/presencekv"
	"go.uber.org/zap"
)

// Timing of the presence view; package variables so tests can shorten them.
var (
	// presenceSyncTimeout bounds one freshness barrier (presenceView.sync); past it
	// the caller falls back to a KV Get per recipient.
	presenceSyncTimeout = 2 * time.Second
	// presenceRewatchBackoff is the pause before a failed or ended watch is retried.
	presenceRewatchBackoff = 250 * time.Millisecond
)

// errViewNotReady is returned by presenceView.sync while the view has not loaded.
var errViewNotReady = errors.New("presence view not loaded")

// presenceView is an in-memory copy of which users have a connected device, kept by a
// watch of the whole presence bucket, so deciding whom to notify costs no request per
// recipient (it used to be a KV Get each: 10,000 per message in a 10,000-member chat).
//
// Freshness: a user who went offline just before a message was sent must be notified,
// so a view that shows a recipient online is trusted only after sync, a barrier
// that waits until the watch has applied every write the bucket held when the barrier
// started. The barrier is a probe: one request, made for all the callers that arrived
// before it started, for the first message of the bucket's stream after the last one
// the watch applied; none means the watch is current, one means waiting until the
// watch has applied it and probing again. A probe costs what a KV Get does (and is as
// fresh: with replicas, a direct get may be answered by a follower), and one usually
// serves every message handled meanwhile, where each recipient used to cost a Get.
// Past presenceSyncTimeout callers fall back to Gets. A view showing a user offline
// needs no barrier: the worst case is a window opened for a user who just connected,
// and the window's close checks presence again before anything is sent.
//
// Until the watch has loaded its initial values (at start and after every restart of
// the watch) ready is false and callers fall back to per-user Gets.
type presenceView struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream // the bucket's stream, probed by the barrier
	log    *zap.Logger

	mu      sync.RWMutex        // guards the fields below
	online  map[string]struct{} // users with devices > 0; meaningful only while ready
	ready   bool                // the current watch has loaded its initial values
	applied uint64              // highest bucket revision the current watch has applied
	changed chan struct{}       // closed (and replaced) when applied or ready changes

	rounds *coalesce.Rounds[probeResult] // shares probes among concurrent syncs
}

// probeResult is what a probe found: the stream sequence the view must reach, and
// whether it has (current).
type probeResult struct {
	seq     uint64
	current bool
}

// newPresenceView returns a view that is not ready until run has loaded it. ctx
// bounds the barrier requests (the Notifier's Run context).
func newPresenceView(ctx context.Context, kv jetstream.KeyValue, stream jetstream.Stream, log *zap.Logger) *presenceView {
	v := &presenceView{kv: kv, stream: stream, log: log, changed: make(chan struct{})}
	v.rounds = coalesce.New(func() (probeResult, error) {
		pctx, cancel := context.WithTimeout(ctx, presenceSyncTimeout)
		defer cancel()
		seq, current, err := v.probe(pctx)
		return probeResult{seq, current}, err
	})
	return v
}

// probe asks for the first message of the bucket's stream after the last one the
// watch applied. It returns that message's sequence, or the applied one and current
// true when there is none.
func (v *presenceView) probe(ctx context.Context) (seq uint64, current bool, err error) {
	v.mu.RLock()
	ready, applied := v.ready, v.applied
	v.mu.RUnlock()
	if !ready {
		return 0, false, errViewNotReady
	}
	m, err := v.stream.GetMsg(ctx, applied+1, jetstream.WithGetMsgSubject(">"))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return applied, true, nil
	case err != nil:
		return 0, false, err
	}
	return m.Sequence, false, nil
}

// run watches the bucket until ctx ends, restarting the watch whenever it fails or
// its subscription ends (the view is not ready meanwhile).
func (v *presenceView) run(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := v.kv.WatchAll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				v.log.Warn("watching the presence bucket failed; retrying", zap.Error(err))
			}
		} else {
			v.consume(ctx, w)
			_ = w.Stop()
			if ctx.Err() == nil {
				v.log.Warn("presence watch ended; restarting")
			}
		}
		v.setNotReady()
		lifecycle.Sleep(ctx, presenceRewatchBackoff)
	}
}

// consume applies w's updates until its channel closes or ctx ends.
func (v *presenceView) consume(ctx context.Context, w jetstream.KeyWatcher) {
	initial := map[string]struct{}{}
	var initialRev uint64
	loading := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			switch {
			case e == nil && loading: // initial values loaded
				loading = false
				v.mu.Lock()
				v.online, v.applied, v.ready = initial, initialRev, true
				v.signalLocked()
				v.mu.Unlock()
			case e == nil:
			case loading:
				applyEntry(initial, e)
				initialRev = max(initialRev, e.Revision())
			default:
				v.mu.Lock()
				applyEntry(v.online, e)
				if e.Revision() > v.applied {
					v.applied = e.Revision()
					v.signalLocked()
				}
				v.mu.Unlock()
			}
		}
	}
}

// applyEntry records one bucket entry in online: only u.<user> keys matter.
func applyEntry(online map[string]struct{}, e jetstream.KeyValueEntry) {
	uid, ok := strings.CutPrefix(e.Key(), "u.")
	if !ok {
		return
	}
	var u presencekv.User
	if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &u) == nil && u.Devices() > 0 {
		online[uid] = struct{}{}
		return
	}
	delete(online, uid)
}

func (v *presenceView) setNotReady() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ready, v.online, v.applied = false, nil, 0
	v.signalLocked()
}

// signalLocked wakes the goroutines waiting in sync. v.mu is held.
func (v *presenceView) signalLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// anyOnline reports whether the view shows any of uids but except with a connected
// device; ok is false while the view is not loaded.
func (v *presenceView) anyOnline(uids []string, except string) (any, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if !v.ready {
		return false, false
	}
	for _, uid := range uids {
		if _, on := v.online[uid]; on && uid != except {
			return true, true
		}
	}
	return false, true
}

// offline returns those of uids but except the view shows with no connected device;
// ok is false while the view is not loaded.
func (v *presenceView) offline(uids []string, except string) (out []string, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if !v.ready {
		return nil, false
	}
	for _, uid := range uids {
		if _, on := v.online[uid]; !on && uid != except {
			out = append(out, uid)
		}
	}
	return out, true
}

// fresh reports whether uid has a connected device as a KV Get made now would: after
// a barrier (sync), from the view. ok is false when the view cannot say (not loaded,
// or the barrier failed or timed out): then the caller reads the bucket.
//
// A notification checks its user's presence when its window closes. Through the
// view, concurrent checks share one probe per round instead of a Get each; on a
// server busy with a backend's load a Get took 5–10 ms of a worker per notification
// (docs/performance.md, "The notifier behind its log").
func (v *presenceView) fresh(ctx context.Context, uid string) (online, ok bool) {
	if err := v.sync(ctx); err != nil {
		return false, false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if !v.ready {
		return false, false
	}
	_, online = v.online[uid]
	return online, true
}

// sync returns once the view reflects every write the presence bucket held when
// sync was called, or an error (errViewNotReady, a failed or slow barrier: then the
// caller cannot trust the view and falls back to Gets). It waits at most
// presenceSyncTimeout.
func (v *presenceView) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, presenceSyncTimeout)
	defer cancel()
	for {
		p, err := v.rounds.Do(ctx)
		if err != nil {
			return err
		}
		if err := v.await(ctx, p.seq); err != nil || p.current {
			return err
		}
	}
}

// await returns once the watch has applied revision target.
func (v *presenceView) await(ctx context.Context, target uint64) error {
	for {
		v.mu.RLock()
		ready, applied, changed := v.ready, v.applied, v.changed
		v.mu.RUnlock()
		switch {
		case !ready:
			return errViewNotReady
		case applied >= target:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
