package bench

import (
	"context"
	"time"
)

// pacer is an open-loop schedule: the i-th event is due at start + i/rate, whatever
// happened to the earlier ones. A sender that falls behind sends the overdue events
// at once and their latency is measured from when they were due, so a stall shows up
// in the percentiles instead of silently lowering the offered load (no coordinated
// omission).
type pacer struct {
	start time.Time
	rate  float64 // events per second, > 0
	n     int64
}

func newPacer(start time.Time, rate float64) *pacer { return &pacer{start: start, rate: rate} }

// next returns when the next event is due and advances the schedule. Times are
// computed from the start, never accumulated, so rounding does not drift.
func (p *pacer) next() time.Time {
	t := p.start.Add(time.Duration(float64(p.n) * float64(time.Second) / p.rate))
	p.n++
	return t
}

// sleepUntil waits until t or until ctx ends; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// splitRate divides a total rate over senders in proportion to their weights (for
// example how many chats each one sends to). A zero total stays zero (unpaced).
func splitRate(total float64, weights []int) []float64 {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	out := make([]float64, len(weights))
	if sum == 0 || total <= 0 {
		return out
	}
	for i, w := range weights {
		out[i] = total * float64(w) / float64(sum)
	}
	return out
}
