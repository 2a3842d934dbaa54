package transport

import (
	"context"
	"time"

	"github.com/natter-chat/natter/pkg/coalesce"
)

// flusher coalesces NATS flushes. A flush is a round trip (PING, PONG) that proves
// the server has processed everything sent before it, such as a new subscription.
// Callers that need that wait for the next flush to start after their call
// (coalesce.Rounds): a storm of connections costs one round trip per batch instead
// of one each, and a lone caller waits no longer than before.
type flusher struct {
	rounds *coalesce.Rounds[struct{}]
}

func newFlusher(flush func(time.Duration) error, timeout time.Duration) *flusher {
	return &flusher{rounds: coalesce.New(func() (struct{}, error) { return struct{}{}, flush(timeout) })}
}

// wait returns once a flush that started after the call has completed: nil if the
// server answered within the timeout, else the flush's error (nats.ErrTimeout,
// nats.ErrConnectionClosed...).
func (f *flusher) wait() error {
	_, err := f.rounds.Do(context.Background())
	return err
}
