package notifier

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// senderBudget bounds the push notifications one sender can cause: every
// coalescing window a sender's message opens (one notification each, to one
// recipient) takes a token from the sender's bucket (notifier.sender-push-rate and
// -burst). With the bucket empty the window is not opened: that recipient gets no
// push for this message, but the message itself is delivered and stored as
// always, and the next push they get counts it as unread. Without it one user
// could build a group of thousands and turn each post into thousands of pushes.
//
// Buckets are per notifier instance (instances share the log consumer, so a
// sender's messages spread over them: N instances allow up to N times the rate).
// It has no goroutine: a bucket is created on a sender's first window and the
// table is swept of full buckets once it has doubled since the last sweep.
type senderBudget struct {
	rate  rate.Limit // 0: unlimited
	burst int

	mu      sync.Mutex // guards buckets and sweep
	buckets map[string]*rate.Limiter
	sweep   int

	suppressed atomic.Int64 // windows not opened: the sender's bucket was empty
}

func newSenderBudget(perSecond float64, burst int) *senderBudget {
	return &senderBudget{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}, sweep: 1024}
}

// take takes one token from sender's bucket; false (counted as suppressed) when it
// is empty. undo gives the token back, for a window that turned out to be open
// already (another worker, handling another message of the chat, opened it first).
func (b *senderBudget) take(sender string) (ok bool, undo func()) {
	if b.rate <= 0 {
		return true, func() {}
	}
	now := time.Now()
	b.mu.Lock()
	l := b.buckets[sender]
	if l == nil {
		if len(b.buckets) >= b.sweep {
			for k, v := range b.buckets {
				if v.TokensAt(now) >= float64(v.Burst()) {
					delete(b.buckets, k)
				}
			}
			b.sweep = max(1024, 2*len(b.buckets))
		}
		l = rate.NewLimiter(b.rate, b.burst)
		b.buckets[sender] = l
	}
	b.mu.Unlock()
	r := l.ReserveN(now, 1)
	if r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		b.suppressed.Add(1)
		return false, nil
	}
	// Cancelled as of the instant it was made: a later cancel of an immediate
	// reservation is ignored by the rate package.
	return true, func() { r.CancelAt(now) }
}
