// Package kvwatch follows JetStream KV buckets for the gateway's concept packages
// (the deny list, the large chats): the current values first, then every change.
package kvwatch

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"go.uber.org/zap"
)

// KeyValues opens KV buckets (jetstream.KeyValueManager's KeyValue).
type KeyValues interface {
	KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error)
}

// Follow watches every key of the KV bucket named bucket and hands each entry
// to apply, in order, on a goroutine tracked by wg until ctx ends. On a cluster
// that is still forming the bucket may not answer yet, so opening it is retried
// for up to a minute rather than failing the gateway's start. It returns once the
// bucket's current values have been applied (or ctx ended), and an error only if
// the bucket could not be watched at all.
func Follow(ctx context.Context, wg *sync.WaitGroup, kvs KeyValues, log *zap.Logger, bucket string, apply func(jetstream.KeyValueEntry)) error {
	var w jetstream.KeyWatcher
	err := lifecycle.Retry(ctx, lifecycle.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, MaxElapsed: 60 * time.Second},
		func() error {
			kv, err := kvs.KeyValue(ctx, bucket)
			if err == nil {
				w, err = kv.WatchAll(ctx)
			}
			return err
		}, func(err error, _ int, _ time.Duration) {
			log.Warn("watching a bucket failed; retrying", zap.String("bucket", bucket), zap.Error(err))
		})
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Stop()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the current values are all delivered
					if initial {
						initial = false
						close(ready)
					}
					continue
				}
				apply(e)
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
	}
	return nil
}
