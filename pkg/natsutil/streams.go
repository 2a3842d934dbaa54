package natsutil

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
)

// InStreamConfig is NATTER_IN: client frames per chat, deduplicated by Nats-Msg-Id,
// partitioned by a server-side subject transform. Limits retention without limits:
// nothing is dropped before it is sequenced, and an ack does not remove a message
// (with sync=always that cost a synced removal per ack); the sequencer purges what
// its consumers acked in bulk, about once a second (sequencer/purge.go).
func InStreamConfig(c *Config) jetstream.StreamConfig {
	s := c.Subjects()
	return jetstream.StreamConfig{
		Name:        subjects.InStream,
		Description: "Natter ingress: client and backend frames per chat, before sequencing",
		Subjects:    []string{s.InAll(), s.SvcAll()},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: s.InTransformSrc(), Destination: s.InTransformDest(),
		},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		Duplicates: c.DedupWindow,
		Discard:    jetstream.DiscardOld,
		MaxBytes:   -1,
		// Gateways group the sends of many connections into one atomic batch: with
		// sync always, JetStream then fsyncs once per batch instead of per message.
		AllowAtomicPublish: true,
	}
}

// LogStreamConfig is NATTER_LOG: sequenced messages, one subject per chat.
//
// It has no age limit and never discards old messages: an acknowledged message
// must not leave the log before the persister has stored it. The persisters remove
// what is stored and older than LogMaxAge themselves (persister/trim.go).
// LogMaxBytes, if set, is a hard cap: when the log is full, appends fail and the
// sequencer waits, leaving sends in NATTER_IN (backpressure, not loss).
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
		MaxBytes:    c.LogMaxBytes,
		Discard:     jetstream.DiscardNew,
		// The sequencer appends each partition's pending messages as one atomic batch
		// (one fsync per batch with sync always).
		AllowAtomicPublish: true,
	}
}

// EnsureStreams creates NATTER_IN, NATTER_LOG, the large-chats bucket and the media
// buckets (media.go), or updates them to the current configuration. Safe to call
// from every role at every start. A NATTER_IN created with WorkQueue retention (as it
// was before batched appends and bulk purges) keeps it: JetStream cannot change a stream's retention, and the sequencer
// works with either.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c *Config) error {
	if err := ensureCore(ctx, js, c); err != nil {
		return err
	}
	return ensureMedia(ctx, js, c) // media.go
}

// ensureCore creates or updates NATTER_IN, NATTER_LOG and the large-chats bucket.
func ensureCore(ctx context.Context, js jetstream.JetStream, c *Config) error {
	in := InStreamConfig(c)
	switch s, err := js.Stream(ctx, in.Name); {
	case err == nil:
		if s.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
			in.Retention = jetstream.WorkQueuePolicy
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("stream %s: %w", in.Name, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, in); err != nil {
		return fmt.Errorf("stream %s: %w", in.Name, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, LogStreamConfig(c)); err != nil {
		return fmt.Errorf("stream %s: %w", subjects.LogStream, reservationErr(err, "nats.log-max-bytes", c.LogMaxBytes))
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, LargeChatsConfig(c)); err != nil {
		return fmt.Errorf("kv %s: %w", LargeChatsBucket, err)
	}
	return nil
}

// ErrCodeStorageReservation is JetStream's answer to a stream whose MaxBytes does
// not fit in what the server may still store (its max_file_store, by default 75% of
// the store disk's free space when it started, minus other streams' MaxBytes). No
// retry changes it.
const ErrCodeStorageReservation jetstream.ErrorCode = 10047

// reservationErr adds to err, when it is JetStream refusing size bytes of a stream
// capped by flag, what to change.
func reservationErr(err error, flag string, size int64) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != ErrCodeStorageReservation {
		return err
	}
	return fmt.Errorf("%w: %s (%d bytes) is more than this NATS server may store (its max_file_store; "+
		"embedded: 75%% of the data-dir disk's free space at start): lower %s or give JetStream more space", err, flag, size, flag)
}

// Owned says which of the shared streams and buckets a process creates at start
// (EnsureOwned); it waits for the others to exist.
type Owned struct {
	// Core is NATTER_IN, NATTER_LOG and the large-chats bucket (the sequencer's).
	Core bool
	// Media is the media object store and shares bucket (the gateway's).
	Media bool
}

// EnsureOwned creates or updates what own names (EnsureStreams for core, the media
// buckets for media) and checks that NATTER_IN and NATTER_LOG exist otherwise. It
// returns an error naming the missing stream while the owner has not created it.
func EnsureOwned(ctx context.Context, js jetstream.JetStream, c *Config, own Owned) error {
	if own.Core && own.Media {
		return EnsureStreams(ctx, js, c)
	}
	if own.Core {
		if err := ensureCore(ctx, js, c); err != nil {
			return err
		}
	} else {
		for _, name := range []string{subjects.InStream, subjects.LogStream} {
			if _, err := js.Stream(ctx, name); err != nil {
				return fmt.Errorf("stream %s (created by the sequencer role): %w", name, err)
			}
		}
	}
	if own.Media {
		return ensureMedia(ctx, js, c)
	}
	return nil
}

// LargeChatsBucket is the KV bucket where the sequencer marks chats above the
// large-chat threshold (key: chat ID). Gateways watch it and subscribe to those
// chats' log subjects instead of receiving per-user fan-out.
const LargeChatsBucket = "natter_large_chats"

// LargeChatsConfig is the KV config of LargeChatsBucket.
func LargeChatsConfig(c *Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: LargeChatsBucket, Description: "chats delivered through their log subject",
		History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas}
}
