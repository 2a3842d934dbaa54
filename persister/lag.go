package persister

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
)

// Lag is how far the persisters are behind NATTER_LOG.
type Lag struct {
	// Messages sequenced and not yet stored: not yet delivered to a persister plus
	// delivered and not yet acked (parked chats' messages included).
	Messages uint64
	// Oldest is when the oldest message not yet stored was appended to the log
	// (the first after the ack floor); zero when Messages is 0.
	Oldest time.Time
}

// CurrentLag reads the PERSISTER consumer and the first message after its ack
// floor. It returns ErrNoConsumer (wrapped) if no persister has created the
// consumer yet. For a readiness check, compare time.Since(Oldest) with a bound.
func CurrentLag(ctx context.Context, js jetstream.JetStream) (Lag, error) {
	cons, err := js.Consumer(ctx, subjects.LogStream, subjects.PersisterConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return Lag{}, fmt.Errorf("persister lag: %w", ErrNoConsumer)
	}
	if err != nil {
		return Lag{}, fmt.Errorf("persister lag: %w", err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return Lag{}, fmt.Errorf("persister lag: %w", err)
	}
	lag := Lag{Messages: ci.NumPending + uint64(ci.NumAckPending)}
	if lag.Messages == 0 {
		return lag, nil
	}
	st, err := js.Stream(ctx, subjects.LogStream)
	if err != nil {
		return Lag{}, fmt.Errorf("persister lag: %w", err)
	}
	m, err := st.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(ci.Config.FilterSubject))
	switch {
	case err == nil:
		lag.Oldest = m.Time
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return Lag{}, fmt.Errorf("persister lag: oldest unstored message: %w", err)
	}
	return lag, nil
}

// ErrNoConsumer: no persister has run against this NATS yet.
var ErrNoConsumer = errors.New("no PERSISTER consumer on NATTER_LOG")
