package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

var _ DeviceStore = (*SQLiteStore)(nil)

// PutDevice implements DeviceStore in one transaction.
func (s *SQLiteStore) PutDevice(ctx context.Context, d Device) error {
	if err := ValidateDevice(d); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE provider = ? AND token = ? AND NOT (user_id = ? AND device_id = ?)`,
		d.Provider, d.Token, d.UserID, d.DeviceID); err != nil {
		return fmt.Errorf("sqlite: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	var others int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE user_id = ? AND device_id != ?`, d.UserID, d.DeviceID).Scan(&others); err != nil {
		return fmt.Errorf("sqlite: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	if others >= MaxDevicesPerUser {
		return ErrTooManyDevices
	}
	at := d.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, platform, provider, token, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET
		platform = excluded.platform, provider = excluded.provider, token = excluded.token, updated_at = excluded.updated_at`,
		d.UserID, d.DeviceID, d.Platform, d.Provider, d.Token, at.UnixMilli()); err != nil {
		return fmt.Errorf("sqlite: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	return nil
}

// Devices implements DeviceStore.
func (s *SQLiteStore) Devices(ctx context.Context, userID string) ([]Device, error) {
	rows, err := s.rd.devices.QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: devices of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d := Device{UserID: userID}
		var at int64
		if err := rows.Scan(&d.DeviceID, &d.Platform, &d.Provider, &d.Token, &at); err != nil {
			return nil, fmt.Errorf("sqlite: devices of %s: %w", userID, err)
		}
		d.UpdatedAt = time.UnixMilli(at).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: devices of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteDevice implements DeviceStore.
func (s *SQLiteStore) DeleteDevice(ctx context.Context, userID, deviceID string) (bool, error) {
	return s.deleteDevices(ctx, `DELETE FROM devices WHERE user_id = ? AND device_id = ?`, userID, deviceID)
}

// DeleteDeviceToken implements DeviceStore.
func (s *SQLiteStore) DeleteDeviceToken(ctx context.Context, userID, provider, token string) (bool, error) {
	return s.deleteDevices(ctx, `DELETE FROM devices WHERE user_id = ? AND provider = ? AND token = ?`, userID, provider, token)
}

func (s *SQLiteStore) deleteDevices(ctx context.Context, q string, args ...any) (bool, error) {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("sqlite: delete device of %v: %w", args[0], err)
	}
	n, err := res.RowsAffected()
	if err != nil && err != sql.ErrNoRows {
		return false, fmt.Errorf("sqlite: delete device of %v: %w", args[0], err)
	}
	return n > 0, nil
}
