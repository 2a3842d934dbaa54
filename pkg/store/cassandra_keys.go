package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
)

var _ KeyStore = (*CassandraStore)(nil)

// The key directory on Cassandra (tables device_keys and one_time_keys, migration
// 5). Every write to a device_keys row is a lightweight transaction conditioned on
// the state it was computed from, so concurrent publications, revocations and
// announcements of one device are applied one after the other, each seeing the
// last. A one-time key is claimed by a conditional delete (IF key = the key read):
// of any number of concurrent claimers exactly one sees it applied, and the others
// go on to the next key. Uploads of one-time keys are plain writes; the supply cap
// is checked before them, so two concurrent uploads may together pass it by one
// request's worth at most.

const (
	cqlKeyCols       = `device_id, identity_key, spk_id, spk_key, spk_sig, revoked, announced, updated_at`
	cqlKeysOfUser    = `SELECT ` + cqlKeyCols + ` FROM device_keys WHERE user_id = ?`
	cqlKeysOfDevice  = `SELECT ` + cqlKeyCols + ` FROM device_keys WHERE user_id = ? AND device_id = ?`
	cqlKeysInsertNew = `INSERT INTO device_keys (user_id, device_id, identity_key, spk_id, spk_key, spk_sig, revoked, announced, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, false, false, ?) IF NOT EXISTS`
	cqlKeysUpdate = `UPDATE device_keys SET identity_key = ?, spk_id = ?, spk_key = ?, spk_sig = ?, revoked = ?, announced = ?,
		updated_at = ? WHERE user_id = ? AND device_id = ? IF identity_key = ? AND revoked = ? AND announced = ?`
	cqlKeysAnnounced = `UPDATE device_keys SET announced = true WHERE user_id = ? AND device_id = ? IF identity_key = ? AND revoked = false`
	cqlKeysDropIfRev = `DELETE FROM device_keys WHERE user_id = ? AND device_id = ? IF revoked = true`
	cqlOTKs          = `SELECT key_id, key FROM one_time_keys WHERE user_id = ? AND device_id = ?`
	cqlOTKFirst      = `SELECT key_id, key FROM one_time_keys WHERE user_id = ? AND device_id = ? LIMIT 8`
	cqlOTKPut        = `INSERT INTO one_time_keys (user_id, device_id, key_id, key) VALUES (?, ?, ?, ?)`
	cqlOTKClaim      = `DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ? AND key_id = ? IF key = ?`
	cqlOTKDropAll    = `DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ?`
)

// casRetries bounds how often a device_keys write is recomputed after a concurrent
// change of the same row made its condition fail.
const casRetries = 8

func scanCassandraKeys(scan func(...any) bool, userID string) (DeviceKeys, bool) {
	k := DeviceKeys{UserID: userID}
	var spk int64
	if !scan(&k.DeviceID, &k.IdentityKey, &spk, &k.SignedPreKey.Key, &k.SignedPreKey.Signature, &k.Revoked, &k.Announced, &k.UpdatedAt) {
		return k, false
	}
	k.SignedPreKey.ID = uint32(spk)
	k.UpdatedAt = k.UpdatedAt.UTC()
	return k, true
}

// deviceKeysRow reads one device's row; found false if there is none.
func (s *CassandraStore) deviceKeysRow(ctx context.Context, userID, deviceID string) (DeviceKeys, bool, error) {
	iter := s.sess.Query(cqlKeysOfDevice, userID, deviceID).WithContext(ctx).Idempotent(true).
		SerialConsistency(gocql.LocalSerial).Iter()
	k, found := scanCassandraKeys(iter.Scan, userID)
	if err := iter.Close(); err != nil {
		return DeviceKeys{}, false, err
	}
	return k, found, nil
}

// otkIDs returns the IDs of a device's one-time keys.
func (s *CassandraStore) otkIDs(ctx context.Context, userID, deviceID string) (map[uint32]bool, error) {
	iter := s.sess.Query(cqlOTKs, userID, deviceID).WithContext(ctx).Idempotent(true).Iter()
	out := map[uint32]bool{}
	var id int64
	var key string
	for iter.Scan(&id, &key) {
		out[uint32(id)] = true
	}
	return out, iter.Close()
}

// supplyAfter is the size of a supply holding have once keys are added.
func supplyAfter(have map[uint32]bool, keys []PreKey) int {
	n := len(have)
	for _, k := range keys {
		if !have[k.ID] {
			n++
		}
	}
	return n
}

// putOTKs checks that adding keys to a supply holding have leaves at most
// MaxOneTimeKeys, then writes them; it returns the supply's size.
func (s *CassandraStore) putOTKs(ctx context.Context, userID, deviceID string, have map[uint32]bool, keys []PreKey) (int, error) {
	n := supplyAfter(have, keys)
	if n > MaxOneTimeKeys {
		return 0, fmt.Errorf("%w: the device would hold %d one-time keys, at most %d", ErrTooManyOneTimeKeys, n, MaxOneTimeKeys)
	}
	for _, k := range keys {
		if err := s.sess.Query(cqlOTKPut, userID, deviceID, int64(k.ID), k.Key).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// PutDeviceKeys implements KeyStore.
func (s *CassandraStore) PutDeviceKeys(ctx context.Context, k DeviceKeys, oneTime []PreKey) (DeviceKeys, int, error) {
	if err := ValidateDeviceKeys(k); err != nil {
		return DeviceKeys{}, 0, err
	}
	if err := ValidateOneTimeKeys(oneTime); err != nil {
		return DeviceKeys{}, 0, err
	}
	fail := func(err error) (DeviceKeys, int, error) {
		return DeviceKeys{}, 0, fmt.Errorf("cassandra: put keys %s/%s: %w", k.UserID, k.DeviceID, err)
	}
	if k.UpdatedAt.IsZero() {
		k.UpdatedAt = time.Now()
	}
	k.UpdatedAt = time.UnixMilli(k.UpdatedAt.UnixMilli()).UTC()
	k.Revoked = false
	for range casRetries {
		old, exists, err := s.deviceKeysRow(ctx, k.UserID, k.DeviceID)
		if err != nil {
			return fail(err)
		}
		changed := !exists || old.Revoked || old.IdentityKey != k.IdentityKey
		k.Announced = exists && !changed && old.Announced
		have := map[uint32]bool{}
		if !changed {
			if have, err = s.otkIDs(ctx, k.UserID, k.DeviceID); err != nil {
				return fail(err)
			}
		}
		// Check the supply cap before anything is written.
		if n := supplyAfter(have, oneTime); n > MaxOneTimeKeys {
			return DeviceKeys{}, 0, fmt.Errorf("%w: the device would hold %d one-time keys, at most %d", ErrTooManyOneTimeKeys, n, MaxOneTimeKeys)
		}
		var q *gocql.Query
		if !exists {
			all, err := s.DeviceKeys(ctx, k.UserID)
			if err != nil {
				return DeviceKeys{}, 0, err
			}
			if len(all) >= MaxKeyDevicesPerUser {
				return DeviceKeys{}, 0, ErrTooManyKeyDevices
			}
			q = s.sess.Query(cqlKeysInsertNew, k.UserID, k.DeviceID, k.IdentityKey, int64(k.SignedPreKey.ID),
				k.SignedPreKey.Key, k.SignedPreKey.Signature, k.UpdatedAt)
		} else {
			q = s.sess.Query(cqlKeysUpdate, k.IdentityKey, int64(k.SignedPreKey.ID), k.SignedPreKey.Key, k.SignedPreKey.Signature,
				false, k.Announced, k.UpdatedAt, k.UserID, k.DeviceID, old.IdentityKey, old.Revoked, old.Announced)
		}
		applied, err := q.WithContext(ctx).RetryPolicy(nil).SerialConsistency(gocql.LocalSerial).MapScanCAS(map[string]any{})
		if err != nil {
			return fail(err)
		}
		if !applied {
			continue // changed under us: recompute from the new state
		}
		if changed {
			// The earlier supply belongs to the earlier identity.
			if err := s.sess.Query(cqlOTKDropAll, k.UserID, k.DeviceID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
				return fail(err)
			}
		}
		n, err := s.putOTKs(ctx, k.UserID, k.DeviceID, have, oneTime)
		if err != nil {
			return fail(err)
		}
		return k, n, nil
	}
	return fail(errors.New("the device's keys kept changing concurrently; retry"))
}

// AddOneTimeKeys implements KeyStore.
func (s *CassandraStore) AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []PreKey) (int, error) {
	if err := ValidateOneTimeKeys(keys); err != nil {
		return 0, err
	}
	k, found, err := s.deviceKeysRow(ctx, userID, deviceID)
	if err != nil {
		return 0, fmt.Errorf("cassandra: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	if !found || k.Revoked {
		return 0, ErrNotFound
	}
	have, err := s.otkIDs(ctx, userID, deviceID)
	if err != nil {
		return 0, fmt.Errorf("cassandra: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	n, err := s.putOTKs(ctx, userID, deviceID, have, keys)
	if err != nil && !errors.Is(err, ErrTooManyOneTimeKeys) {
		return 0, fmt.Errorf("cassandra: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	return n, err
}

// DeviceKeys implements KeyStore.
func (s *CassandraStore) DeviceKeys(ctx context.Context, userID string) ([]DeviceKeys, error) {
	iter := s.sess.Query(cqlKeysOfUser, userID).WithContext(ctx).Idempotent(true).Iter()
	var out []DeviceKeys
	for {
		k, ok := scanCassandraKeys(iter.Scan, userID)
		if !ok {
			break
		}
		out = append(out, k)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: keys of %s: %w", userID, err)
	}
	return out, nil
}

// ClaimKeys implements KeyStore.
func (s *CassandraStore) ClaimKeys(ctx context.Context, userID string) ([]KeyBundle, error) {
	ks, err := s.DeviceKeys(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []KeyBundle
	for _, k := range ks {
		if k.Revoked {
			continue
		}
		o, err := s.claimOne(ctx, userID, k.DeviceID)
		if err != nil {
			return nil, fmt.Errorf("cassandra: claim keys of %s/%s: %w", userID, k.DeviceID, err)
		}
		out = append(out, KeyBundle{DeviceKeys: k, OneTimeKey: o})
	}
	return out, nil
}

// claimOne removes and returns the device's lowest one-time key that no concurrent
// claim took first; nil when the supply is empty.
func (s *CassandraStore) claimOne(ctx context.Context, userID, deviceID string) (*PreKey, error) {
	for {
		iter := s.sess.Query(cqlOTKFirst, userID, deviceID).WithContext(ctx).Idempotent(true).Iter()
		var cands []PreKey
		var id int64
		var key string
		for iter.Scan(&id, &key) {
			cands = append(cands, PreKey{ID: uint32(id), Key: key})
		}
		if err := iter.Close(); err != nil {
			return nil, err
		}
		if len(cands) == 0 {
			return nil, nil
		}
		for _, c := range cands {
			applied, err := s.sess.Query(cqlOTKClaim, userID, deviceID, int64(c.ID), c.Key).WithContext(ctx).
				RetryPolicy(nil).SerialConsistency(gocql.LocalSerial).MapScanCAS(map[string]any{})
			if err != nil {
				return nil, err
			}
			if applied {
				return &c, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// RevokeDeviceKeys implements KeyStore.
func (s *CassandraStore) RevokeDeviceKeys(ctx context.Context, userID, deviceID string) (DeviceKeys, error) {
	fail := func(err error) (DeviceKeys, error) {
		return DeviceKeys{}, fmt.Errorf("cassandra: revoke keys %s/%s: %w", userID, deviceID, err)
	}
	for range casRetries {
		old, found, err := s.deviceKeysRow(ctx, userID, deviceID)
		if err != nil {
			return fail(err)
		}
		if !found {
			return DeviceKeys{}, ErrNotFound
		}
		applied, err := s.sess.Query(cqlKeysUpdate, "", int64(0), "", "", true, false, time.Now().UTC(),
			userID, deviceID, old.IdentityKey, old.Revoked, old.Announced).WithContext(ctx).
			RetryPolicy(nil).SerialConsistency(gocql.LocalSerial).MapScanCAS(map[string]any{})
		if err != nil {
			return fail(err)
		}
		if !applied {
			continue
		}
		if err := s.sess.Query(cqlOTKDropAll, userID, deviceID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return fail(err)
		}
		return old, nil
	}
	return fail(errors.New("the device's keys kept changing concurrently; retry"))
}

// MarkKeysAnnounced implements KeyStore.
func (s *CassandraStore) MarkKeysAnnounced(ctx context.Context, userID, deviceID, identityKey string, revoked bool) error {
	q := s.sess.Query(cqlKeysAnnounced, userID, deviceID, identityKey)
	if revoked {
		q = s.sess.Query(cqlKeysDropIfRev, userID, deviceID)
	}
	if _, err := q.WithContext(ctx).RetryPolicy(nil).SerialConsistency(gocql.LocalSerial).MapScanCAS(map[string]any{}); err != nil {
		return fmt.Errorf("cassandra: mark keys announced %s/%s: %w", userID, deviceID, err)
	}
	return nil
}
