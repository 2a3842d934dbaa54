package natsutil

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publishing across a stream leader change.
//
// When the node leading a stream dies, the stream has no leader until the
// surviving replicas elect one: nats-server's Raft waits out an election timeout of
// 4 to 9 seconds (fixed in the server, not configurable) after the leader's last
// heartbeat. A publish sent meanwhile is either answered "no responders" at once
// or, if it reached the dead leader's connection just before the end, never
// answered at all. Waiting out one long timeout per publish would add up to that
// timeout to the election; instead every attempt waits at most
// PublishAttemptTimeout and is sent again, so a publish is stored within about one
// attempt of the new leader's election.
//
// A retried publish is safe only if storing it twice is impossible: every message
// Natter publishes to a stream carries Nats-Msg-Id (deduplicated by the stream; an
// attempt stored before its ack was lost comes back as a duplicate ack) or an
// expected-last-sequence fence (a second copy is refused).

// PublishAttemptTimeout bounds one attempt of Publish. Tests shorten it.
var PublishAttemptTimeout = time.Second

// publishRetryPause is the pause before an attempt that found no stream leader
// (no responders) is sent again.
var publishRetryPause = 100 * time.Millisecond

// Publish stores msg in its stream and returns the acknowledgement. It sends the
// message again, with the same headers, whenever an attempt found no stream
// leader or got no answer within PublishAttemptTimeout, until ctx ends; then it
// returns the last attempt's error. Other errors (a JetStream API error, such as a
// failed fence or a refused message) are returned at once. msg must carry
// Nats-Msg-Id or an expected-last-sequence header (see above).
func Publish(ctx context.Context, js jetstream.Publisher, msg *nats.Msg) (*jetstream.PubAck, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, PublishAttemptTimeout)
		ack, err := js.PublishMsg(actx, msg)
		cancel()
		if err == nil || ctx.Err() != nil || !RetryablePublish(err) {
			return ack, err
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(publishRetryPause):
			}
		}
	}
}

// RetryablePublish reports whether a publish that failed with err may succeed if
// sent again unchanged: no answer in time, no stream leader, or the connection
// between servers.
func RetryablePublish(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}
