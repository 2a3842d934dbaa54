package natsutil

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
)

// InStreamConfig is NATTER_IN: client frames per chat, deduplicated by Nats-Msg-Id,
// partitioned by a server-side subject transform, kept until a sequencer acks them.
func InStreamConfig(c *Config) jetstream.StreamConfig {
	s := c.Subjects()
	return jetstream.StreamConfig{
		Name:        subjects.InStream,
		Description: "Natter ingress: client and backend frames per chat, before sequencing",
		Subjects:    []string{s.InAll()},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: s.InTransformSrc(), Destination: s.InTransformDest(),
		},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		Duplicates: c.DedupWindow,
		Discard:    jetstream.DiscardOld,
		MaxBytes:   -1,
	}
}

// LogStreamConfig is NATTER_LOG: sequenced messages, one subject per chat.
func LogStreamConfig(c *Config) jetstream.StreamConfig {
	s := c.Subjects()
	return jetstream.StreamConfig{
		Name:        subjects.LogStream,
		Description: "Natter log: sequenced messages per chat (hot tail of history)",
		Subjects:    []string{s.LogAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DedupWindow,
		MaxAge:      c.LogMaxAge,
		MaxBytes:    c.LogMaxBytes,
		Discard:     jetstream.DiscardOld,
	}
}

// EnsureStreams creates NATTER_IN and NATTER_LOG, or updates them to the current
// configuration. Safe to call from every role at every start.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c *Config) error {
	for _, sc := range []jetstream.StreamConfig{InStreamConfig(c), LogStreamConfig(c)} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}
