package notifier

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Pacing of large-chat passes (docs/presence.md, "Large chats"; the figures are in
// docs/performance.md, "Large groups").
//
// A large chat's pass (large.go) costs about 33 µs of CPU per notification (store
// reads of the batch's read states, unread totals and devices, the JSON, the
// publish): ≈ 3 s for the 95,000 offline members of a 100,000-member chat. Unpaced,
// on a server that also delivers messages (the all-in-one, or a notifier sharing a
// machine with gateways) that burst took the p99 of send→deliver to 5,000
// connected members from ≈ 250 ms to 0.5–1 s. Push to an offline user is not
// latency-critical; real-time delivery is. So a pass is paced, and the passes of
// one chat never pile up:
//
//   - Rate: the notifications of large-chat passes take a token each from one
//     bucket per notifier instance (notifier.large-chat-rate per second, shared by
//     every pass of the instance; a burst of rate/10, at least 1 and at most
//     recipientParallel, taken a burst at a time), before they are built and
//     sent. A batch's store reads run only once the previous
//     batch's notifications went, so they follow the same rate. The time spent
//     waiting is counted (natter_notifier_large_chat_paced_seconds_total): the
//     limit shows in a metric, never as silence. 0: unlimited. N instances
//     allow N times the rate (they share the window consumer).
//   - One pass per chat: a window of a chat that closes while this instance runs
//     a pass over that chat is folded into the running pass (counted in
//     natter_notifier_large_chat_windows_folded_total) instead of starting a
//     second pass over the same members. The running pass reloads the chat's
//     tail (newest message, unread counts, mutes) before its next batch, walks on
//     to the end of the member list with it and then wraps round to the members
//     it had walked before the reload: every member is considered once more with
//     the newest messages, and gets at most one notification per lap (coalesced
//     per user and chat, the ID naming the newest seq). A window folded in
//     while the lap's last batch runs makes the pass walk a whole lap more
//     (finish and begin hold one lock, so no window falls between a pass that
//     ends and one that starts). The folded window's
//     marker is acked at once; the running pass's own marker stays unacked until
//     the pass ends, and if this instance dies first its redelivery runs a whole
//     pass with the newest tail, which covers the folded window too.
//   - At most max(1, notifier.workers/2) passes at once per instance: a window of
//     another large chat that finds them all running goes back to the consumer
//     (nak with a delay, retried), so the other workers keep serving small chats
//     and the large chats' notifications share the one rate anyway.
//
// Progress: natter_notifier_large_chat_passes (running now), ..._oldest_pass_seconds
// (age of the oldest running pass: how far behind push is), ..._notified_total
// and ..._members_walked_total; each pass logs its members, notifications and
// duration when it ends.

// errPassesBusy means every large-chat pass slot of this instance is taken: the
// window goes back to the consumer and is retried.
var errPassesBusy = errors.New("notifier: every large-chat pass slot is busy")

// passBusyDelay is how long a window that found every pass slot busy waits before
// it is delivered again.
var passBusyDelay = 2 * time.Second

// passes is the large-chat passes of this instance.
type passes struct {
	limiter *rate.Limiter // nil: unlimited
	slots   chan struct{} // one token per running pass

	mu      sync.Mutex // guards running
	running map[string]*pass

	// now and sleep are the clock (tests replace them).
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	notified atomic.Int64 // notifications sent by passes
	walked   atomic.Int64 // members walked by passes
	folded   atomic.Int64 // windows folded into a running pass of their chat
	pacedNs  atomic.Int64 // time notifications waited for the rate, ns
}

// pass is one running pass over a chat's members.
type pass struct {
	started time.Time
	newer   atomic.Bool // a window of the chat closed since the pass loaded its tail
}

func newPasses(perSecond float64, slots int) *passes {
	p := &passes{slots: make(chan struct{}, max(1, slots)), running: map[string]*pass{}, now: time.Now, sleep: sleepCtx}
	if perSecond > 0 {
		p.limiter = rate.NewLimiter(rate.Limit(perSecond), max(1, min(recipientParallel, int(perSecond/10))))
	}
	return p
}

// begin starts a pass over chat. With one running already it marks that one to
// reload its tail and returns folded true (the caller is done); with every slot
// taken it returns errPassesBusy. Otherwise the caller runs the pass and calls end.
func (p *passes) begin(chat string) (ps *pass, folded bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps := p.running[chat]; ps != nil {
		ps.newer.Store(true)
		p.folded.Add(1)
		return nil, true, nil
	}
	select {
	case p.slots <- struct{}{}:
	default:
		return nil, false, errPassesBusy
	}
	ps = &pass{started: p.now()}
	p.running[chat] = ps
	return ps, false, nil
}

// end ends chat's pass (ps): after an error, or from finish.
func (p *passes) end(chat string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(chat)
}

func (p *passes) endLocked(chat string) {
	delete(p.running, chat)
	<-p.slots
}

// finish ends chat's pass ps once it has walked its lap, unless a window was
// folded into it since it last loaded the tail: then it returns false and the
// pass goes on (reloads, walks the whole lap again). Under p.mu, as begin, so a
// window is either folded into a pass that will see it or starts one of its own.
func (p *passes) finish(chat string, ps *pass) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps.newer.Load() {
		return false
	}
	p.endLocked(chat)
	return true
}

// wait takes k notifications' tokens (k at most chunk()), waiting for them as
// long as the rate says. A pass takes them a chunk at a time: a timer per
// notification cost ≈ 2.7 µs of CPU each (a third of the pass's own).
func (p *passes) wait(ctx context.Context, k int) error {
	if p.limiter == nil {
		return nil
	}
	now := p.now()
	r := p.limiter.ReserveN(now, k)
	if !r.OK() {
		return fmt.Errorf("notifier: %d notifications exceed the rate's burst %d", k, p.limiter.Burst())
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return nil
	}
	p.pacedNs.Add(int64(d) * int64(k))
	if err := p.sleep(ctx, d); err != nil {
		r.CancelAt(p.now())
		return err
	}
	return nil
}

// chunk is how many notifications' tokens a pass takes at once: the burst.
func (p *passes) chunk() int {
	if p.limiter == nil {
		return math.MaxInt
	}
	return p.limiter.Burst()
}

// sleepCtx sleeps for d or until ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stats are the gauges: passes running and the age of the oldest, in seconds.
func (p *passes) stats() (running int, oldest float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, ps := range p.running {
		oldest = max(oldest, now.Sub(ps.started).Seconds())
	}
	return len(p.running), oldest
}

// LargeChatPacing returns the large-chat passes' progress counters (pacing.go):
// notifications sent, members walked, windows folded into a running pass, and the
// time notifications waited for notifier.large-chat-rate, summed.
func (n *Notifier) LargeChatPacing() (notified, walked, folded int64, paced time.Duration) {
	p := n.passes
	return p.notified.Load(), p.walked.Load(), p.folded.Load(), time.Duration(p.pacedNs.Load())
}

// throttle returns f called at most once per every (the first call calls it);
// safe for concurrent use.
func throttle(f func(), every time.Duration) func() {
	var next atomic.Int64 // unix ns before which calls are dropped
	return func() {
		now := time.Now().UnixNano()
		if n := next.Load(); now >= n && next.CompareAndSwap(n, now+int64(every)) {
			f()
		}
	}
}
