package store

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"
)

// RecipientStore on Cassandra: read states, devices and chat lists are partitioned
// by user, so a batch is one single-partition read per user, recipientReadsParallel
// at a time (token-aware routing sends each to a replica of its partition), rather
// than a multi-partition IN that one coordinator would fan out and gather.

// recipientReadsParallel is how many of a batch's reads are in flight at once.
const recipientReadsParallel = 32

// perUser runs read for each of userIDs, recipientReadsParallel at a time, and
// collects the values for which keep is true.
func perUser[T any](ctx context.Context, userIDs []string, read func(ctx context.Context, uid string) (T, error), keep func(T) bool) (map[string]T, error) {
	out := make(map[string]T, len(userIDs))
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(recipientReadsParallel)
	for _, uid := range userIDs {
		eg.Go(func() error {
			v, err := read(ectx, uid)
			if err != nil {
				return err
			}
			if keep(v) {
				mu.Lock()
				out[uid] = v
				mu.Unlock()
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadStates implements RecipientStore.
func (s *CassandraStore) ReadStates(ctx context.Context, chatID string, userIDs []string) (map[string]ReadState, error) {
	return perUser(ctx, userIDs, func(ctx context.Context, uid string) (ReadState, error) {
		return s.GetReadState(ctx, chatID, uid)
	}, func(rs ReadState) bool { return rs.Delivered != 0 || rs.Read != 0 })
}

// UnreadTotals implements RecipientStore.
func (s *CassandraStore) UnreadTotals(ctx context.Context, userIDs []string, exceptChatID string) (map[string]uint64, error) {
	return perUser(ctx, userIDs, func(ctx context.Context, uid string) (uint64, error) {
		return s.UnreadTotal(ctx, uid, exceptChatID)
	}, func(n uint64) bool { return n != 0 })
}

// UsersDevices implements RecipientStore.
func (s *CassandraStore) UsersDevices(ctx context.Context, userIDs []string) (map[string][]Device, error) {
	return perUser(ctx, userIDs, s.Devices, func(ds []Device) bool { return len(ds) > 0 })
}

// Recipient implements RecipientStore with the four single reads, run at once.
func (s *CassandraStore) Recipient(ctx context.Context, chatID, userID string) (Recipient, error) {
	r := Recipient{Mute: Mute{ChatID: chatID, UserID: userID}, Read: ReadState{ChatID: chatID, UserID: userID}}
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		c, err := s.GetChat(ectx, chatID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		r.Chat = c
		return err
	})
	eg.Go(func() error {
		_, err := s.GetMember(ectx, chatID, userID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		r.Member = err == nil
		return err
	})
	eg.Go(func() error {
		var err error
		r.Mute, err = s.GetMute(ectx, chatID, userID)
		return err
	})
	eg.Go(func() error {
		var err error
		r.Read, err = s.GetReadState(ectx, chatID, userID)
		return err
	})
	if err := eg.Wait(); err != nil {
		return Recipient{}, err
	}
	return r, nil
}
