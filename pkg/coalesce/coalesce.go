// Package coalesce shares one call of an expensive check among many concurrent
// callers without ever answering a caller with a result fetched before it asked.
package coalesce

import (
	"context"
	"sync"
)

// Rounds runs fn for many concurrent callers, one call per round. A caller joins
// the next round that has not started yet, so the result it gets comes from a call
// of fn that began after it called Do: while one round is in flight, everyone who
// arrives shares the following one. A storm of callers costs one call per round
// instead of one each, and a lone caller waits no longer than for its own call.
//
// There is no goroutine while nobody waits: the first caller starts one, which runs
// rounds until no caller is left and exits. The zero value is not usable: use New.
type Rounds[T any] struct {
	fn func() (T, error)

	mu      sync.Mutex // guards the fields below
	next    *round[T]  // the round callers join; nil: none waiting
	running bool       // a goroutine is running rounds
}

// round is one call of fn: done is closed once v and err are set.
type round[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// New returns Rounds that call fn. fn bounds its own duration (its own timeout):
// a caller that stops waiting does not stop the round it joined.
func New[T any](fn func() (T, error)) *Rounds[T] {
	return &Rounds[T]{fn: fn}
}

// Do returns the result of a call of fn that started after Do was called, or
// ctx's error if ctx ends first.
func (r *Rounds[T]) Do(ctx context.Context) (T, error) {
	r.mu.Lock()
	if r.next == nil {
		r.next = &round[T]{done: make(chan struct{})}
	}
	rd := r.next
	if !r.running {
		r.running = true
		go r.loop()
	}
	r.mu.Unlock()
	select {
	case <-rd.done:
		return rd.v, rd.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Waiting reports whether callers wait for a round that has not started.
func (r *Rounds[T]) Waiting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next != nil
}

// Running reports whether the goroutine running rounds exists.
func (r *Rounds[T]) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// loop runs rounds while callers wait for one; it ends when none does.
func (r *Rounds[T]) loop() {
	for {
		r.mu.Lock()
		rd := r.next
		r.next = nil
		if rd == nil {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		rd.v, rd.err = r.fn()
		close(rd.done)
	}
}
