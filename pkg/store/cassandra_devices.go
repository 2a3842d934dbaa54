package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
)

var _ DeviceStore = (*CassandraStore)(nil)

const (
	cqlDevices        = `SELECT device_id, platform, provider, push_token, updated_at FROM devices WHERE user_id = ?`
	cqlPutDevice      = `INSERT INTO devices (user_id, device_id, platform, provider, push_token, updated_at) VALUES (?, ?, ?, ?, ?, ?)`
	cqlDelDevice      = `DELETE FROM devices WHERE user_id = ? AND device_id = ?`
	cqlTokenOwner     = `SELECT user_id, device_id FROM devices_by_token WHERE provider = ? AND push_token = ?`
	cqlPutTokenOwner  = `INSERT INTO devices_by_token (provider, push_token, user_id, device_id) VALUES (?, ?, ?, ?)`
	cqlDelTokenIfMine = `DELETE FROM devices_by_token WHERE provider = ? AND push_token = ? IF user_id = ? AND device_id = ?`
)

// PutDevice implements DeviceStore. Without a transaction across partitions, it
// writes in an order that leaves no token with two live devices: first the former
// holder of the token loses it, then the device row, then the token's owner row.
// Concurrent registrations of one token by two devices leave it with whichever
// wrote devices_by_token last, and the other device row holds a token that push
// gateways will report invalid (DeleteDeviceToken then removes it).
func (s *CassandraStore) PutDevice(ctx context.Context, d Device) error {
	if err := ValidateDevice(d); err != nil {
		return err
	}
	mine, err := s.Devices(ctx, d.UserID)
	if err != nil {
		return err
	}
	var old *Device
	for i := range mine {
		if mine[i].DeviceID == d.DeviceID {
			old = &mine[i]
		}
	}
	if old == nil && len(mine) >= MaxDevicesPerUser {
		return ErrTooManyDevices
	}
	fail := func(err error) error { return fmt.Errorf("cassandra: put device %s/%s: %w", d.UserID, d.DeviceID, err) }
	var ownerUser, ownerDevice string
	err = s.sess.Query(cqlTokenOwner, d.Provider, d.Token).WithContext(ctx).Idempotent(true).Scan(&ownerUser, &ownerDevice)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return fail(err)
	}
	if err == nil && (ownerUser != d.UserID || ownerDevice != d.DeviceID) {
		if err := s.dropDeviceIfToken(ctx, ownerUser, ownerDevice, d.Provider, d.Token); err != nil {
			return fail(err)
		}
	}
	at := d.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if err := s.sess.Query(cqlPutDevice, d.UserID, d.DeviceID, d.Platform, d.Provider, d.Token, at).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fail(err)
	}
	if err := s.sess.Query(cqlPutTokenOwner, d.Provider, d.Token, d.UserID, d.DeviceID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fail(err)
	}
	if old != nil && (old.Provider != d.Provider || old.Token != d.Token) {
		// The device's former token is no longer anyone's.
		if err := s.sess.Query(cqlDelTokenIfMine, old.Provider, old.Token, d.UserID, d.DeviceID).WithContext(ctx).Exec(); err != nil {
			return fail(err)
		}
	}
	return nil
}

// dropDeviceIfToken removes user's device if it still holds token.
func (s *CassandraStore) dropDeviceIfToken(ctx context.Context, user, device, provider, token string) error {
	ds, err := s.Devices(ctx, user)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.DeviceID == device && d.Provider == provider && d.Token == token {
			return s.sess.Query(cqlDelDevice, user, device).WithContext(ctx).Idempotent(true).Exec()
		}
	}
	return nil
}

// Devices implements DeviceStore.
func (s *CassandraStore) Devices(ctx context.Context, userID string) ([]Device, error) {
	iter := s.sess.Query(cqlDevices, userID).WithContext(ctx).Idempotent(true).Iter()
	var out []Device
	d := Device{UserID: userID}
	for iter.Scan(&d.DeviceID, &d.Platform, &d.Provider, &d.Token, &d.UpdatedAt) {
		d.UpdatedAt = d.UpdatedAt.UTC()
		out = append(out, d)
		d = Device{UserID: userID}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: devices of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteDevice implements DeviceStore.
func (s *CassandraStore) DeleteDevice(ctx context.Context, userID, deviceID string) (bool, error) {
	return s.deleteDeviceWhere(ctx, userID, func(d Device) bool { return d.DeviceID == deviceID })
}

// DeleteDeviceToken implements DeviceStore.
func (s *CassandraStore) DeleteDeviceToken(ctx context.Context, userID, provider, token string) (bool, error) {
	return s.deleteDeviceWhere(ctx, userID, func(d Device) bool { return d.Provider == provider && d.Token == token })
}

func (s *CassandraStore) deleteDeviceWhere(ctx context.Context, userID string, match func(Device) bool) (bool, error) {
	ds, err := s.Devices(ctx, userID)
	if err != nil {
		return false, err
	}
	found := false
	for _, d := range ds {
		if !match(d) {
			continue
		}
		found = true
		if err := s.sess.Query(cqlDelDevice, userID, d.DeviceID).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return false, fmt.Errorf("cassandra: delete device %s/%s: %w", userID, d.DeviceID, err)
		}
		if err := s.sess.Query(cqlDelTokenIfMine, d.Provider, d.Token, userID, d.DeviceID).WithContext(ctx).Exec(); err != nil {
			return false, fmt.Errorf("cassandra: delete device %s/%s: %w", userID, d.DeviceID, err)
		}
	}
	return found, nil
}
