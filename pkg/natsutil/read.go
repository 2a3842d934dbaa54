package natsutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readChunk is the most messages asked for in one pull.
const readChunk = 1000

// ReadBatch returns up to n messages of st matching filter, in stream order,
// (every subject if empty), starting at the first at or after stream seq startSeq (or, if startSeq is 0, the
// first stored at or after startTime). It reads through a short-lived consumer
// (memory, R1, no acks), deleted afterwards, in one pull per 1,000 messages: the
// stream leader answers, so the result is as current as Stream.GetMsg, unlike
// direct gets, which a lagging replica may answer. Fewer than n messages come back
// when the stream has no more.
func ReadBatch(ctx context.Context, st jetstream.Stream, filter string, startSeq uint64, startTime time.Time, n int) ([]jetstream.Msg, error) {
	if n <= 0 {
		return nil, nil
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy,
		MemoryStorage: true, Replicas: 1,
		// Removed by the server if this process dies before deleting it.
		InactiveThreshold: 30 * time.Second,
	}
	if startSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, startSeq
	} else {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &startTime
	}
	c, err := st.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("read %s: consumer: %w", filter, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.DeleteConsumer(dctx, c.CachedInfo().Name) // else gone after InactiveThreshold
	}()
	var out []jetstream.Msg
	for len(out) < n {
		batch, err := c.FetchNoWait(min(n-len(out), readChunk))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", filter, err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, m)
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("read %s: %w", filter, err)
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}
