package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Delivered int // sent to the webhook and removed from NATTER_DLQ
	Failed    int // failed again (every attempt); still in NATTER_DLQ
	Skipped   int // not a notification (malformed); left in NATTER_DLQ
}

// Replay sends every notification in NATTER_DLQ (as of the call) to cfg's webhook
// again, with cfg's attempts and backoff. Each one delivered is removed from the
// stream; each that fails again stays for a later replay. With no NATTER_DLQ it
// returns a zero result. It needs cfg.WebhookURL and its secret.
func Replay(ctx context.Context, cfg Config, js jetstream.JetStream, s subjects.Subjects, logger *zap.Logger) (ReplayResult, error) {
	var res ReplayResult
	if cfg.WebhookURL == "" {
		return res, errors.New("notifier: replay needs notifier.webhook-url")
	}
	secret, err := ReadSecret(cfg.WebhookSecretFile)
	if err != nil {
		return res, err
	}
	hook := newWebhook(&cfg, secret)
	stream, err := js.Stream(ctx, subjects.DLQStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("notifier: replay: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("notifier: replay: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return res, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.DLQAll()}})
	if err != nil {
		return res, fmt.Errorf("notifier: replay: %w", err)
	}
	log := logger.With(zap.String("role", "notifier"))
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("notifier: replay: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return res, fmt.Errorf("notifier: replay: %w", err)
		}
		seq := md.Sequence.Stream
		var note Notification
		if json.Unmarshal(m.Data(), &note) != nil || note.ID == "" {
			res.Skipped++
		} else if attempts, err := hook.deliver(ctx, note.ID, m.Data(), nil); err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			log.Warn("replay failed again; kept", zap.String("id", note.ID), zap.Int("attempts", attempts), zap.Error(err))
			res.Failed++
		} else {
			if err := stream.DeleteMsg(ctx, seq); err != nil {
				return res, fmt.Errorf("notifier: replay: delivered %s but could not remove it: %w", note.ID, err)
			}
			res.Delivered++
		}
		if seq >= last {
			return res, nil
		}
	}
}
