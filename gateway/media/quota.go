package media

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Media storage limits (docs/operations.md, "Media storage"):
//
//   - gateway.limits.upload-rate/-burst: uploads per second per user, per gateway
//     (a token bucket, as the other gateway.limits.* are); over it, 429 rate_limited.
//   - gateway.media-user-quota: the bytes a user's stored uploads may take. Usage is
//     kept in the KV bucket natsutil.MediaUsageBucket under "u.<user>", shared by
//     every gateway, and changed only by compare-and-set, so concurrent uploads on
//     any gateways never take a user past the quota. Over it, 507 quota_exceeded.
//   - gateway.media-unshared-ttl: an upload that no message shared within this is
//     deleted (and its bytes given back to the uploader's quota). Every upload is
//     recorded as pending under "p.<media id>" until its first share; each gateway
//     sweeps the pending keys older than the TTL. Sharing an upload older than the
//     TTL is refused with not_found, and the sweep waits a grace period past it, so
//     an upload is never deleted while a share of it is being recorded.
//   - nats.media-max-bytes: the media bucket's size (JetStream MaxBytes, discard
//     new). When full, uploads get 507 storage_full.
//
// Uploads stored before these limits existed have no pending key and never expire.
// Two gateways sweeping the same upload at once may both give its bytes back:
// usage never goes below 0, and errs only in the user's favour.

// usageKey and pendingKey name a user's usage and an unshared upload in
// natsutil.MediaUsageBucket.
func usageKey(user string) string      { return "u." + user }
func pendingKey(mediaID string) string { return "p." + mediaID }

// errOverQuota is returned by chargeUsage when the upload would take its uploader
// past the quota.
var errOverQuota = errors.New("media: over the user's quota")

// quotaExceeded is the client error for an upload over the uploader's quota.
func quotaExceeded(quota int64) *protocol.Error {
	return protocol.Errorf(protocol.CodeQuotaExceeded,
		"your uploads would take more than your %d-byte quota: uploads not shared within the unshared TTL expire and free space", quota)
}

// mediaUsage returns the bytes user's uploads take, and the entry's revision (0:
// no entry yet).
func mediaUsage(ctx context.Context, kv jetstream.KeyValue, user string) (int64, uint64, error) {
	e, err := kv.Get(ctx, usageKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("media usage of %s: %w", user, err)
	}
	n, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("media usage of %s: %q: %w", user, e.Value(), err)
	}
	return n, e.Revision(), nil
}

// chargeUsage adds delta bytes (negative: gives them back) to user's usage by
// compare-and-set, retrying when another gateway changed it meanwhile. With quota
// > 0 and delta > 0 it returns errOverQuota, changing nothing, when the total
// would pass quota. Usage never goes below 0.
func chargeUsage(ctx context.Context, kv jetstream.KeyValue, user string, delta, quota int64) error {
	for range 32 {
		used, rev, err := mediaUsage(ctx, kv, user)
		if err != nil {
			return err
		}
		next := max(0, used+delta)
		if delta > 0 && quota > 0 && next > quota {
			return errOverQuota
		}
		val := []byte(strconv.FormatInt(next, 10))
		if rev == 0 {
			_, err = kv.Create(ctx, usageKey(user), val)
		} else {
			_, err = kv.Update(ctx, usageKey(user), val, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("media usage of %s: %w", user, err)
		}
	}
	return fmt.Errorf("media usage of %s: too many concurrent changes", user)
}

// uploadLimiter is the per-user upload rate of one gateway. Buckets of users who
// have refilled are swept once the table grows, as limiter's per-IP ones are.
type uploadLimiter struct {
	rate  float64
	burst int

	mu    sync.Mutex // guards users, sweep
	users map[string]*rate.Limiter
	sweep int
}

func newUploadLimiter(r float64, burst int) *uploadLimiter {
	return &uploadLimiter{rate: r, burst: burst, users: map[string]*rate.Limiter{}, sweep: 1024}
}

// allow takes one upload from user's bucket; it returns a rate_limited error when
// it is empty. A zero rate allows everything.
func (u *uploadLimiter) allow(user string) error {
	if u.rate <= 0 {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.users[user]
	if b == nil {
		if len(u.users) >= u.sweep {
			now := time.Now()
			for k, b := range u.users {
				if b.TokensAt(now) >= float64(b.Burst()) {
					delete(u.users, k)
				}
			}
			u.sweep = max(1024, 2*len(u.users))
		}
		b = rate.NewLimiter(rate.Limit(u.rate), u.burst)
		u.users[user] = b
	}
	if !b.Allow() {
		return httpx.RateLimited("too many uploads: slow down")
	}
	return nil
}

// isStorageFull reports whether err is JetStream refusing a write because the
// bucket is at its MaxBytes (discard new).
func isStorageFull(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum bytes exceeded")
}

// sweepGrace is how long past gateway.media-unshared-ttl an unshared upload is
// kept before the sweep deletes it: shares are refused from the TTL on, so a share
// being recorded as the TTL passes finishes before the sweep looks.
func sweepGrace(ttl time.Duration) time.Duration { return min(ttl/4, time.Minute) }

// sweepEvery is how often a gateway sweeps unshared uploads.
func sweepEvery(ttl time.Duration) time.Duration { return max(time.Second, min(ttl/4, 10*time.Minute)) }

// SweepUnshared runs until ctx ends, deleting every gateway.media-unshared-ttl /
// sweepEvery the uploads no message shared in time. Several gateways may sweep at
// once: a delete that another did first is skipped, and so is its usage change.
func (s *Service) SweepUnshared(ctx context.Context) {
	ttl := s.cfg.UnsharedTTL
	if ttl <= 0 {
		return
	}
	t := time.NewTicker(sweepEvery(ttl))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.sweepOnce(ctx, time.Now().Add(-ttl-sweepGrace(ttl))); err != nil && ctx.Err() == nil {
			s.log.Warn("media sweep failed", zap.Error(err))
		} else if n > 0 {
			s.log.Info("expired unshared media", zap.Int("count", n))
		}
	}
}

// sweepOnce deletes the unshared uploads made before cutoff and returns how many.
func (s *Service) sweepOnce(ctx context.Context, cutoff time.Time) (int, error) {
	obs, shares, err := s.handles(ctx)
	if err != nil {
		return 0, err
	}
	usage, err := s.usage(ctx)
	if err != nil {
		return 0, err
	}
	lister, err := usage.ListKeysFiltered(ctx, "p.>")
	if err != nil {
		return 0, fmt.Errorf("list unshared media: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	n := 0
	for _, k := range keys {
		e, err := usage.Get(ctx, k)
		if err != nil || e.Created().After(cutoff) {
			continue // gone meanwhile, or not yet expired
		}
		mediaID := strings.TrimPrefix(k, "p.")
		if shared, err := hasShare(ctx, shares, mediaID); err != nil || shared {
			if shared {
				_ = usage.Delete(ctx, k) // shared as the pending key was written: keep it
			}
			continue
		}
		info, err := obs.GetInfo(ctx, mediaID)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			_ = usage.Delete(ctx, k)
			continue
		}
		if err != nil {
			return n, fmt.Errorf("media %s: %w", mediaID, err)
		}
		if err := obs.Delete(ctx, mediaID); err != nil {
			continue // another gateway deleted it first
		}
		if err := chargeUsage(ctx, usage, info.Metadata["uploader"], -int64(info.Size), 0); err != nil {
			s.log.Warn("media usage not given back", zap.String("user_id", info.Metadata["uploader"]), zap.Error(err))
		}
		_ = usage.Delete(ctx, k)
		n++
	}
	return n, nil
}

// hasShare reports whether any message shared mediaID.
func hasShare(ctx context.Context, shares jetstream.KeyValue, mediaID string) (bool, error) {
	lister, err := shares.ListKeysFiltered(ctx, mediaID+".>")
	if err != nil {
		return false, err
	}
	defer func() { _ = lister.Stop() }()
	for range lister.Keys() {
		return true, nil
	}
	return false, nil
}

// usage returns the media usage bucket's handle.
func (s *Service) usage(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usageKV == nil {
		kv, err := s.deps.Buckets.KeyValue(ctx, natsutil.MediaUsageBucket)
		if err != nil {
			return nil, fmt.Errorf("media usage bucket: %w", err)
		}
		s.usageKV = kv
	}
	return s.usageKV, nil
}
