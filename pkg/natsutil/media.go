package natsutil

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// MediaBucket is the JetStream Object Store bucket holding uploaded media
// (POST /api/v1/media), one object per media ID.
const MediaBucket = "natter_media"

// MediaSharesBucket is the KV bucket recording where media was shared: one key
// "<media id>.<chat id>.<message id>" per image or file message that referenced it,
// written by the gateway before it publishes the message. The value is the uploader.
const MediaSharesBucket = "natter_media_shares"

// MediaUsageBucket is the KV bucket of media storage accounting, written by the
// gateways: "u.<user id>" holds the bytes the user's uploads take (decimal), and
// "p.<media id>" (value: the uploader) marks an upload no message has shared yet.
const MediaUsageBucket = "natter_media_usage"

// MediaConfig is the object store config of MediaBucket. Object sizes are limited by
// the gateway (gateway.media-max-bytes); the bucket's size by nats.media-max-bytes
// (new uploads are refused when it is full).
func MediaConfig(c *Config) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{Bucket: MediaBucket, Description: "Natter media uploads",
		Storage: jetstream.FileStorage, Replicas: c.Replicas, MaxBytes: c.mediaMaxBytes()}
}

// DefaultMediaMaxBytes is the media bucket's size for nats.media-max-bytes 0 on an
// external server (the embedded one may take less: autoMediaMaxBytes).
const DefaultMediaMaxBytes = 10 << 30

// mediaMaxBytes is nats.media-max-bytes with 0 resolved.
func (c *Config) mediaMaxBytes() int64 {
	if c.MediaMaxBytes == 0 {
		return DefaultMediaMaxBytes
	}
	return c.MediaMaxBytes
}

// MediaUsageConfig is the KV config of MediaUsageBucket.
func MediaUsageConfig(c *Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: MediaUsageBucket, Description: "media bytes per user and unshared uploads",
		History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas}
}

// MediaSharesConfig is the KV config of MediaSharesBucket.
func MediaSharesConfig(c *Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: MediaSharesBucket, Description: "where each media upload was shared",
		History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas}
}

// ensureMedia creates the media buckets, or updates them to the current config.
func ensureMedia(ctx context.Context, js jetstream.JetStream, c *Config) error {
	if _, err := js.CreateOrUpdateObjectStore(ctx, MediaConfig(c)); err != nil {
		return fmt.Errorf("object store %s: %w", MediaBucket, reservationErr(err, "nats.media-max-bytes", c.mediaMaxBytes()))
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, MediaSharesConfig(c)); err != nil {
		return fmt.Errorf("kv %s: %w", MediaSharesBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, MediaUsageConfig(c)); err != nil {
		return fmt.Errorf("kv %s: %w", MediaUsageBucket, err)
	}
	return ensureDenied(ctx, js, c) // denied.go: the gateway's too
}
