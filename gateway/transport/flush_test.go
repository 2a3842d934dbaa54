package transport

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// gatedFlush is a flush function that blocks until released, one release per call.
type gatedFlush struct {
	calls   atomic.Int32
	started chan struct{}
	release chan error
}

func newGatedFlush() *gatedFlush {
	return &gatedFlush{started: make(chan struct{}, 100), release: make(chan error)}
}

func (g *gatedFlush) flush(time.Duration) error {
	g.calls.Add(1)
	g.started <- struct{}{}
	return <-g.release
}

func TestFlusherCoalescesWaiters(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gf := newGatedFlush()
	f := newFlusher(gf.flush, time.Second)

	first := make(chan error, 1)
	go func() { first <- f.wait() }()
	<-gf.started // flush 1 is in flight

	// Callers arriving now may have subscribed after flush 1's PING: they must wait
	// for a flush that starts after them, and all of them share it.
	const n = 10
	var wg sync.WaitGroup
	var done atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, f.wait())
			done.Add(1)
		}()
	}
	require.Eventually(t, f.rounds.Waiting, time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // let all n join the batch

	gf.release <- nil // flush 1 completes
	require.NoError(t, <-first)
	<-gf.started // flush 2 started for the n late callers
	require.Zero(t, done.Load(), "a caller returned with a flush that started before it")

	gf.release <- nil
	wg.Wait()
	require.EqualValues(t, n, done.Load())
	require.EqualValues(t, 2, gf.calls.Load(), "11 callers, 2 flushes")

	// The goroutine exits once nobody waits (goleak checks), and a later caller
	// starts a new one.
	go func() { gf.release <- nil }()
	require.NoError(t, f.wait())
	require.EqualValues(t, 3, gf.calls.Load())
	require.Eventually(t, func() bool { return !f.rounds.Running() }, time.Second, time.Millisecond)
}

func TestFlusherReturnsTheFlushError(t *testing.T) {
	errFlush := errors.New("nats: timeout")
	gf := newGatedFlush()
	f := newFlusher(gf.flush, time.Second)
	res := make(chan error, 2)
	go func() { res <- f.wait() }()
	<-gf.started
	gf.release <- errFlush
	require.ErrorIs(t, <-res, errFlush)

	go func() { res <- f.wait() }()
	<-gf.started
	gf.release <- nil
	require.NoError(t, <-res, "an error is not carried to the next flush")
}
