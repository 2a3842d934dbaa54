package media

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EraseUploads deletes every upload of user from the media bucket, with its share
// records and pending mark, and the user's usage entry; it returns how many it
// deleted. The bucket is listed whole (object metadata names the uploader): an
// erasure costs a read of the bucket's metadata.
func (s *Service) EraseUploads(ctx context.Context, user string) (int, error) {
	obs, shares, err := s.handles(ctx)
	if err != nil {
		return 0, err
	}
	usage, err := s.usage(ctx)
	if err != nil {
		return 0, err
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		infos, err = nil, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list media: %w", err)
	}
	n := 0
	for _, info := range infos {
		if info.Deleted || info.Metadata["uploader"] != user {
			continue
		}
		if err := obs.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return n, fmt.Errorf("delete media %s: %w", info.Name, err)
		}
		n++
		if lister, err := shares.ListKeysFiltered(ctx, info.Name+".>"); err == nil {
			for key := range lister.Keys() {
				_ = shares.Purge(ctx, key)
			}
			_ = lister.Stop()
		}
		_ = usage.Purge(ctx, pendingKey(info.Name))
	}
	if err := usage.Purge(ctx, usageKey(user)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return n, fmt.Errorf("media usage of %s: %w", user, err)
	}
	return n, nil
}
