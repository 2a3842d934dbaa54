package natsutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
)

// Storages of NATTER_IN (Config.IngressStorage).
const (
	IngressMemory = "memory"
	IngressFile   = "file"
)

// DefaultIngressMaxBytes is the default cap of NATTER_IN: about 300,000 sends of
// typical size, minutes of a busy node's traffic while its sequencers are away.
const DefaultIngressMaxBytes = 128 << 20

// InStreamConfig is NATTER_IN: client frames per chat, deduplicated by Nats-Msg-Id,
// partitioned by a server-side subject transform. Limits retention: an ack does not
// remove a message (with sync=always on a file stream that cost a synced removal
// per ack); the sequencer purges what its consumers acked in bulk, about once a
// second (sequencer/purge.go).
//
// In memory by default (Config.IngressStorage): a send is acknowledged only once
// it is sequenced into NATTER_LOG, which is durable, so the ingress copy guards
// nothing acknowledged, and a memory stream costs no fsync, no file per atomic
// batch (nats-server stages a batch in a file store only for R1 file streams) and
// no consumer state files. What a crash (or, on a single server, a NATS restart)
// loses is the sends not yet sequenced, which were not acknowledged either: their
// clients resend them with the same messageId, and the sequencer's exactly-once
// check is by message ID (sequencer/ids.go), never by ingress seq, which restarts
// at 1 with the stream.
//
// It is capped at Config.IngressMaxBytes with DiscardNew: when the sequencers fall
// behind, new sends are refused (backpressure) and nothing stored is dropped.
func InStreamConfig(c *Config) jetstream.StreamConfig {
	s := c.Subjects()
	storage := jetstream.MemoryStorage
	if c.IngressStorage == IngressFile {
		storage = jetstream.FileStorage
	}
	return jetstream.StreamConfig{
		Name:        subjects.InStream,
		Description: "Natter ingress: client and backend frames per chat, before sequencing",
		Subjects:    []string{s.InAll(), s.SvcAll()},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: s.InTransformSrc(), Destination: s.InTransformDest(),
		},
		Retention:  jetstream.LimitsPolicy,
		Storage:    storage,
		Replicas:   c.Replicas,
		Duplicates: c.DedupWindow,
		Discard:    jetstream.DiscardNew,
		MaxBytes:   c.IngressMaxBytes,
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
		AllowDirect:        c.Replicas <= 1,
	}
}

// EnsureStreams creates NATTER_IN, NATTER_LOG, the large-chats bucket and the media
// buckets (media.go), or updates them to the current configuration. Safe to call
// from every role at every start. A NATTER_IN created with WorkQueue retention (as it
// was before batched appends and bulk purges) keeps it, and one created on file
// keeps its storage (IngressStorageNote says how to switch): JetStream changes
// neither in place, and the sequencer works with each. Recreating it here is not
// safe: it may hold sends not sequenced yet, and gateways publish into it meanwhile.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c *Config) error {
	if err := ensureCore(ctx, js, c); err != nil {
		return err
	}
	return ensureMedia(ctx, js, c) // media.go
}

// ensureCore creates or updates NATTER_IN, NATTER_LOG and the large-chats bucket.
func ensureCore(ctx context.Context, js jetstream.JetStream, c *Config) error {
	if err := EnsureIngress(ctx, js, c); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, LogStreamConfig(c)); err != nil {
		return fmt.Errorf("stream %s: %w", subjects.LogStream, reservationErr(err, "nats.log-max-bytes", c.LogMaxBytes))
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, LargeChatsConfig(c)); err != nil {
		return fmt.Errorf("kv %s: %w", LargeChatsBucket, err)
	}
	return nil
}

// EnsureIngress creates NATTER_IN, or updates it to the current configuration
// keeping its retention and storage (see EnsureStreams). The sequencer calls it
// again when NATTER_IN vanished: a memory stream on a single server does not
// outlive the server's restart (nor a restart of its JetStream).
func EnsureIngress(ctx context.Context, js jetstream.JetStream, c *Config) error {
	s, err := js.Stream(ctx, subjects.InStream)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", subjects.InStream, err)
	}
	var info *jetstream.StreamInfo
	if err == nil {
		info = s.CachedInfo()
	}
	if err := resolvePartitions(c, info); err != nil {
		return err
	}
	in := InStreamConfig(c)
	if info != nil {
		old := info.Config
		if old.Retention == jetstream.WorkQueuePolicy {
			in.Retention = jetstream.WorkQueuePolicy
		}
		in.Storage = old.Storage
		if old.Storage == jetstream.MemoryStorage && in.MaxBytes <= 0 {
			in.MaxBytes = DefaultIngressMaxBytes // memory stays bounded
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, in); err != nil {
		return fmt.Errorf("stream %s: %w", in.Name, reservationErr(err, "nats.ingress-max-bytes", in.MaxBytes))
	}
	return nil
}

// IngressStorageNote returns, when NATTER_IN exists with another storage than
// c.IngressStorage asks for, one line for the operator saying what it kept and how
// to switch; "" otherwise (or when it cannot tell).
func IngressStorageNote(ctx context.Context, js jetstream.JetStream, c *Config) string {
	s, err := js.Stream(ctx, subjects.InStream)
	if err != nil {
		return ""
	}
	want := InStreamConfig(c).Storage
	have := s.CachedInfo().Config.Storage
	if have == want {
		return ""
	}
	return fmt.Sprintf("%s exists with %s storage and keeps it (nats.ingress-storage=%s asks for %s; JetStream cannot change storage in place): "+
		"to switch, stop the gateways and backend publishers, wait until natter_consumer_pending{stream=%q} is 0, "+
		"delete the stream (nats stream rm %s) and start a sequencer (docs/operations.md, \"Ingress storage\")",
		subjects.InStream, have, c.IngressStorage, want, subjects.InStream, subjects.InStream)
}

// ErrCodeMemoryReservation is JetStream's answer to a memory stream whose MaxBytes
// does not fit in what the server may keep in memory (its max_memory_store, by
// default 75% of the machine's memory, minus other memory streams' MaxBytes).
const ErrCodeMemoryReservation jetstream.ErrorCode = 10028

// ErrCodeStorageReservation is JetStream's answer to a stream whose MaxBytes does
// not fit in what the server may still store (its max_file_store, by default 75% of
// the store disk's free space when it started, minus other streams' MaxBytes). No
// retry changes it.
const ErrCodeStorageReservation jetstream.ErrorCode = 10047

// reservationErr adds to err, when it is JetStream refusing size bytes of a stream
// capped by flag, what to change.
func reservationErr(err error, flag string, size int64) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == ErrCodeMemoryReservation {
		return fmt.Errorf("%w: %s (%d bytes) is more than this NATS server may keep in memory (its max_memory_store; "+
			"embedded: 75%% of the machine's memory): lower %s or give JetStream more memory", err, flag, size, flag)
	}
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
			s, err := js.Stream(ctx, name)
			if err != nil {
				return fmt.Errorf("stream %s (created by the sequencer role): %w", name, err)
			}
			if name == subjects.InStream {
				if err := resolvePartitions(c, s.CachedInfo()); err != nil {
					return err
				}
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

// IngressFull reports whether err is NATTER_IN refusing a publish because it holds
// Config.IngressMaxBytes already (the sequencers are behind or away): nothing was
// stored, and the same message may be sent again later.
func IngressFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, maxBytesExceeded)
	}
	return err != nil && strings.Contains(err.Error(), maxBytesExceeded)
}

// errCodeStoreFailed is JetStream's "storing the message failed" (JSStreamStoreFailedF);
// maxBytesExceeded is its words when a DiscardNew stream is full.
const (
	errCodeStoreFailed jetstream.ErrorCode = 10077
	maxBytesExceeded                       = "maximum bytes exceeded"
)
