package natsutil

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// DeniedBucket is the KV bucket of erased accounts (key: user ID, value: JSON
// {"erasedAt","by"}): the durable deny list every gateway watches, refusing the
// tokens of those users and closing their connections (gateway/denylist.go). An
// entry is never removed by Natter.
const DeniedBucket = "natter_denied"

// DeniedConfig is the KV config of DeniedBucket.
func DeniedConfig(c *Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: DeniedBucket, Description: "erased accounts: their tokens are refused",
		History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas}
}

// ensureDenied creates DeniedBucket, or updates it to the current config. The
// gateway owns it, with the media buckets (Owned.Media).
func ensureDenied(ctx context.Context, js jetstream.JetStream, c *Config) error {
	if _, err := js.CreateOrUpdateKeyValue(ctx, DeniedConfig(c)); err != nil {
		return fmt.Errorf("kv %s: %w", DeniedBucket, err)
	}
	return nil
}
