package notifier

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a clock that moves only when a wait sleeps.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

// TestPassesRate: on a clock that moves only by the waits, k notifications at rate
// r, taken in chunks of up to the burst, take (k - burst)/r of it and no less: the
// rate bounds them however fast they are asked for. The burst is rate/10, at
// least 1 and at most recipientParallel; rate 0 never waits.
func TestPassesRate(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{100, 10}, {2000, recipientParallel}, {5, 1}} {
		p := newPasses(tc.rate, 1)
		c := &fakeClock{t: time.Unix(1_000_000, 0)}
		p.now, p.sleep = c.now, c.sleep
		start := c.t
		require.Equal(t, tc.burst, p.chunk())
		const k = 1000
		for i := 0; i < k; {
			n := min(p.chunk(), k-i, 1+i%3) // chunks of any size up to the burst
			require.NoError(t, p.wait(context.Background(), n))
			i += n
		}
		want := time.Duration(float64(k-tc.burst) / tc.rate * float64(time.Second))
		got := c.t.Sub(start)
		require.InDelta(t, want.Seconds(), got.Seconds(), 1e-6, "rate %v: %d notifications", tc.rate, k)
		require.GreaterOrEqual(t, time.Duration(p.pacedNs.Load()), got,
			"paced time is each notification's wait, summed: at least the clock's whole advance")
	}
	unlimited := newPasses(0, 1)
	unlimited.sleep = func(context.Context, time.Duration) error { return errors.New("slept") }
	for range 10_000 {
		require.NoError(t, unlimited.wait(context.Background(), 100))
	}
	require.Zero(t, unlimited.pacedNs.Load())
	require.Error(t, newPasses(100, 1).wait(context.Background(), 11), "more than the burst at once is refused, never waited for")
}

// TestPassesOnePerChat: a second window of a chat with a running pass is folded
// into it (and marks it to reload); passes of other chats take the slots until
// none is left; an ended pass frees its slot and its chat.
func TestPassesOnePerChat(t *testing.T) {
	p := newPasses(0, 2)
	a, folded, err := p.begin("a")
	require.NoError(t, err)
	require.False(t, folded)
	require.False(t, a.newer.Load())

	again, folded, err := p.begin("a")
	require.NoError(t, err)
	require.True(t, folded)
	require.Nil(t, again)
	require.True(t, a.newer.Load(), "the running pass reloads its tail")
	require.EqualValues(t, 1, p.folded.Load())

	_, folded, err = p.begin("b")
	require.NoError(t, err)
	require.False(t, folded)
	_, _, err = p.begin("c")
	require.ErrorIs(t, err, errPassesBusy, "two slots, both taken")
	_, folded, err = p.begin("b")
	require.NoError(t, err)
	require.True(t, folded, "a busy instance still folds a chat it is passing over")
	running, _ := p.stats()
	require.Equal(t, 2, running)

	require.False(t, p.finish("a", a), "a window was folded in since the last reload: the pass goes on")
	require.True(t, a.newer.Swap(false)) // the pass reloads
	require.True(t, p.finish("a", a), "nothing folded since: the pass ends")
	c, folded, err := p.begin("c")
	require.NoError(t, err)
	require.False(t, folded)
	require.NotNil(t, c)
	p.end("b")
	p.end("c")
	running, oldest := p.stats()
	require.Zero(t, running)
	require.Zero(t, oldest)
}

// TestThrottle: calls in quick succession call f once, from any goroutine.
func TestThrottle(t *testing.T) {
	var calls atomic.Int64
	f := throttle(func() { calls.Add(1) }, time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				f()
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, calls.Load())
}
