package lifecycle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff is a retry policy: waits that start at Initial and double up to Max, each
// one drawn at random from the upper half of its value ([d/2, d]) so that many
// callers failing at the same moment (a NATS leader change, a store restart) do not
// retry in step, while Max stays the longest wait.
type Backoff struct {
	// Initial is the first wait, before jitter. Zero: 100ms.
	Initial time.Duration
	// Max caps one wait. Zero: 10s; below Initial: Initial.
	Max time.Duration
	// MaxElapsed gives up once the next wait would end this long after the first
	// attempt started. Zero: no limit (until ctx ends).
	MaxElapsed time.Duration
	// MaxTries gives up after this many attempts. Zero: no limit.
	MaxTries uint
}

// Permanent marks err as one no retry can change: Retry returns it (unwrapped) at
// once.
func Permanent(err error) error { return backoff.Permanent(err) }

// Retry calls op until it returns nil, returns an error marked Permanent, p gives
// up, or ctx ends, waiting between attempts as p says. It never calls op after ctx
// has ended, and never waits past it. notify, if not nil, hears each failed attempt
// that will be retried: its error, its number (from 1) and the wait before the next.
//
// Retry returns nil on success; op's last error when it was permanent or p gave
// up; and when ctx ended, ctx's cause wrapping the error of the last failed attempt
// before it (so errors.Is finds both the cancellation and what kept failing).
func Retry(ctx context.Context, p Backoff, op func() error, notify func(err error, attempt int, wait time.Duration)) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 100*time.Millisecond, 10*time.Second
	if p.Initial > 0 {
		b.InitialInterval = p.Initial
	}
	if p.Max > 0 {
		b.MaxInterval = p.Max
	}
	b.MaxInterval = max(b.MaxInterval, b.InitialInterval)
	b.Multiplier, b.RandomizationFactor = 2, 0 // jitter: upperHalf
	var (
		attempt int
		waited  error // the last failed attempt that was followed by a wait
		last    error // the last failed attempt
	)
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := op()
		if err != nil {
			last = err
		}
		return struct{}{}, err
	}, backoff.WithBackOff(upperHalf{b}), backoff.WithMaxElapsedTime(p.MaxElapsed), backoff.WithMaxTries(p.MaxTries),
		backoff.WithNotify(func(err error, wait time.Duration) {
			waited = err
			if notify != nil {
				notify(err, attempt, wait)
			}
		}))
	if err == nil || ctx.Err() == nil {
		return err
	}
	// An attempt that failed because ctx ended says less than the one before it.
	if waited == nil {
		waited = last
	}
	if waited == nil {
		return context.Cause(ctx)
	}
	return fmt.Errorf("%w (last failed attempt: %w)", context.Cause(ctx), waited)
}

// upperHalf draws each wait of an exponential backoff uniformly from [d/2, d]
// ("equal jitter"): spread enough to break lockstep, never longer than the schedule.
type upperHalf struct{ *backoff.ExponentialBackOff }

// NextBackOff is the next wait, jittered.
func (u upperHalf) NextBackOff() time.Duration {
	d := u.ExponentialBackOff.NextBackOff()
	if d <= 1 { // includes backoff.Stop
		return d
	}
	return d/2 + rand.N(d/2+1)
}
