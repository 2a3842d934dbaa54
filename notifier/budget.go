package notifier

import (
	"sync"
	"sync/atomic"
	"time"
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
	rate  float64 // tokens per second; 0: unlimited
	burst float64

	mu      sync.Mutex // guards buckets, sweep and every bucket's fields
	buckets map[string]*bucket
	sweep   int

	suppressed atomic.Int64 // windows not opened: the sender's bucket was empty
}

// bucket is one sender's tokens as of last. A hand-written bucket rather than
// rate.Limiter: a token taken for a window that turns out to be open already must
// go back exactly, and rate.Reservation.CancelAt gives back nothing once a later
// reservation (a refusal included) has been made on the same limiter.
type bucket struct {
	tokens float64
	last   time.Time
}

func newSenderBudget(perSecond float64, burst int) *senderBudget {
	return &senderBudget{rate: perSecond, burst: float64(burst), buckets: map[string]*bucket{}, sweep: 1024}
}

// refill brings k up to now. b.mu is held.
func (b *senderBudget) refill(k *bucket, now time.Time) {
	if now.After(k.last) {
		k.tokens = min(b.burst, k.tokens+now.Sub(k.last).Seconds()*b.rate)
		k.last = now
	}
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
	defer b.mu.Unlock()
	k := b.buckets[sender]
	if k == nil {
		if len(b.buckets) >= b.sweep {
			for s, v := range b.buckets {
				if b.refill(v, now); v.tokens >= b.burst {
					delete(b.buckets, s) // full: the same as a fresh one
				}
			}
			b.sweep = max(1024, 2*len(b.buckets))
		}
		k = &bucket{tokens: b.burst, last: now}
		b.buckets[sender] = k
	}
	b.refill(k, now)
	if k.tokens < 1 {
		b.suppressed.Add(1)
		return false, nil
	}
	k.tokens--
	return true, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		k.tokens = min(b.burst, k.tokens+1)
	}
}
