package gateway

import (
	"sync"
	"time"
)

// flusher coalesces NATS flushes. A flush is a round trip (PING, PONG) that proves
// the server has processed everything sent before it, such as a new subscription.
// Callers that need that wait for the next flush to start after their call: while
// one flush is in flight, every caller that arrives joins the next one, so a storm
// of connections costs one round trip per batch instead of one each, and a lone
// caller waits no longer than before.
//
// There is no goroutine while nobody waits: the first caller starts one, which flushes
// until no caller is left and exits.
type flusher struct {
	flush   func(timeout time.Duration) error // nats.Conn.FlushTimeout
	timeout time.Duration

	mu      sync.Mutex   // guards the fields below
	next    *flushWaiter // callers waiting for a flush not yet started; nil: none
	running bool         // the flushing goroutine is running
}

// flushWaiter is one batch of callers: done is closed when their flush completed,
// with err set before.
type flushWaiter struct {
	done chan struct{}
	err  error
}

func newFlusher(flush func(time.Duration) error, timeout time.Duration) *flusher {
	return &flusher{flush: flush, timeout: timeout}
}

// wait returns once a flush that started after the call has completed: nil if the
// server answered within the timeout, else the flush's error (nats.ErrTimeout,
// nats.ErrConnectionClosed...).
func (f *flusher) wait() error {
	f.mu.Lock()
	w := f.next
	if w == nil {
		w = &flushWaiter{done: make(chan struct{})}
		f.next = w
	}
	if !f.running {
		f.running = true
		go f.run()
	}
	f.mu.Unlock()
	<-w.done
	return w.err
}

// run flushes for each batch of waiters in turn and exits when none is left.
func (f *flusher) run() {
	for {
		f.mu.Lock()
		w := f.next
		f.next = nil
		if w == nil {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		w.err = f.flush(f.timeout)
		close(w.done)
	}
}
