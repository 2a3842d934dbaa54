package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

var _ KeyStore = (*SQLiteStore)(nil)

// The key directory on SQLite: every write is one transaction on the single writer
// connection, so a claim's read and delete of a one-time key cannot interleave with
// another claim's: each key is handed out once.

const sqliteKeyCols = `device_id, identity_key, spk_id, spk_key, spk_sig, revoked, announced, updated_at`

type rowScanner interface{ Scan(...any) error }

func scanSQLiteKeys(row rowScanner, userID string) (DeviceKeys, error) {
	k := DeviceKeys{UserID: userID}
	var at int64
	if err := row.Scan(&k.DeviceID, &k.IdentityKey, &k.SignedPreKey.ID, &k.SignedPreKey.Key, &k.SignedPreKey.Signature,
		&k.Revoked, &k.Announced, &at); err != nil {
		return k, err
	}
	k.UpdatedAt = time.UnixMilli(at).UTC()
	return k, nil
}

// PutDeviceKeys implements KeyStore.
func (s *SQLiteStore) PutDeviceKeys(ctx context.Context, k DeviceKeys, oneTime []PreKey) (DeviceKeys, int, error) {
	if err := ValidateDeviceKeys(k); err != nil {
		return DeviceKeys{}, 0, err
	}
	if err := ValidateOneTimeKeys(oneTime); err != nil {
		return DeviceKeys{}, 0, err
	}
	fail := func(err error) (DeviceKeys, int, error) {
		return DeviceKeys{}, 0, fmt.Errorf("sqlite: put keys %s/%s: %w", k.UserID, k.DeviceID, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	old, err := scanSQLiteKeys(tx.QueryRowContext(ctx, `SELECT `+sqliteKeyCols+` FROM device_keys WHERE user_id = ? AND device_id = ?`,
		k.UserID, k.DeviceID), k.UserID)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fail(err)
	}
	if !exists {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM device_keys WHERE user_id = ?`, k.UserID).Scan(&n); err != nil {
			return fail(err)
		}
		if n >= MaxKeyDevicesPerUser {
			return DeviceKeys{}, 0, ErrTooManyKeyDevices
		}
	}
	changed := !exists || old.Revoked || old.IdentityKey != k.IdentityKey
	k.Revoked, k.Announced = false, exists && !changed && old.Announced
	if k.UpdatedAt.IsZero() {
		k.UpdatedAt = time.Now()
	}
	k.UpdatedAt = time.UnixMilli(k.UpdatedAt.UnixMilli()).UTC()
	if changed {
		// The earlier supply belongs to the earlier identity.
		if _, err := tx.ExecContext(ctx, `DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ?`, k.UserID, k.DeviceID); err != nil {
			return fail(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO device_keys (user_id, device_id, identity_key, spk_id, spk_key, spk_sig,
		revoked, announced, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
		ON CONFLICT (user_id, device_id) DO UPDATE SET identity_key = excluded.identity_key, spk_id = excluded.spk_id,
		spk_key = excluded.spk_key, spk_sig = excluded.spk_sig, revoked = 0, announced = excluded.announced,
		updated_at = excluded.updated_at`,
		k.UserID, k.DeviceID, k.IdentityKey, k.SignedPreKey.ID, k.SignedPreKey.Key, k.SignedPreKey.Signature,
		k.Announced, k.UpdatedAt.UnixMilli()); err != nil {
		return fail(err)
	}
	n, err := addSQLiteOneTimeKeys(ctx, tx, k.UserID, k.DeviceID, oneTime)
	if err != nil {
		if errors.Is(err, ErrTooManyOneTimeKeys) {
			return DeviceKeys{}, 0, err
		}
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return k, n, nil
}

// addSQLiteOneTimeKeys upserts keys into a device's supply within tx and returns
// the supply's size; ErrTooManyOneTimeKeys past MaxOneTimeKeys.
func addSQLiteOneTimeKeys(ctx context.Context, tx *sql.Tx, user, device string, keys []PreKey) (int, error) {
	for _, o := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO one_time_keys (user_id, device_id, key_id, key) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, device_id, key_id) DO UPDATE SET key = excluded.key`, user, device, o.ID, o.Key); err != nil {
			return 0, err
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM one_time_keys WHERE user_id = ? AND device_id = ?`, user, device).Scan(&n); err != nil {
		return 0, err
	}
	if n > MaxOneTimeKeys {
		return 0, fmt.Errorf("%w: the device would hold %d one-time keys, at most %d", ErrTooManyOneTimeKeys, n, MaxOneTimeKeys)
	}
	return n, nil
}

// AddOneTimeKeys implements KeyStore.
func (s *SQLiteStore) AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []PreKey) (int, error) {
	if err := ValidateOneTimeKeys(keys); err != nil {
		return 0, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	defer tx.Rollback()
	var revoked bool
	err = tx.QueryRowContext(ctx, `SELECT revoked FROM device_keys WHERE user_id = ? AND device_id = ?`, userID, deviceID).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && revoked) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	n, err := addSQLiteOneTimeKeys(ctx, tx, userID, deviceID, keys)
	if err != nil {
		if errors.Is(err, ErrTooManyOneTimeKeys) {
			return 0, err
		}
		return 0, fmt.Errorf("sqlite: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: add one-time keys %s/%s: %w", userID, deviceID, err)
	}
	return n, nil
}

// DeviceKeys implements KeyStore.
func (s *SQLiteStore) DeviceKeys(ctx context.Context, userID string) ([]DeviceKeys, error) {
	return s.deviceKeys(ctx, s.r, userID)
}

type sqlQuerier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (s *SQLiteStore) deviceKeys(ctx context.Context, db sqlQuerier, userID string) ([]DeviceKeys, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+sqliteKeyCols+` FROM device_keys WHERE user_id = ? ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: keys of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []DeviceKeys
	for rows.Next() {
		k, err := scanSQLiteKeys(rows, userID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: keys of %s: %w", userID, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: keys of %s: %w", userID, err)
	}
	return out, nil
}

// ClaimKeys implements KeyStore in one write transaction.
func (s *SQLiteStore) ClaimKeys(ctx context.Context, userID string) ([]KeyBundle, error) {
	fail := func(err error) ([]KeyBundle, error) {
		return nil, fmt.Errorf("sqlite: claim keys of %s: %w", userID, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	ks, err := s.deviceKeys(ctx, tx, userID)
	if err != nil {
		return nil, err
	}
	var out []KeyBundle
	for _, k := range ks {
		if k.Revoked {
			continue
		}
		b := KeyBundle{DeviceKeys: k}
		var o PreKey
		err := tx.QueryRowContext(ctx, `DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ? AND key_id =
			(SELECT key_id FROM one_time_keys WHERE user_id = ? AND device_id = ? ORDER BY key_id LIMIT 1)
			RETURNING key_id, key`, userID, k.DeviceID, userID, k.DeviceID).Scan(&o.ID, &o.Key)
		switch {
		case err == nil:
			b.OneTimeKey = &o
		case !errors.Is(err, sql.ErrNoRows):
			return fail(err)
		}
		out = append(out, b)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return out, nil
}

// RevokeDeviceKeys implements KeyStore.
func (s *SQLiteStore) RevokeDeviceKeys(ctx context.Context, userID, deviceID string) (DeviceKeys, error) {
	fail := func(err error) (DeviceKeys, error) {
		return DeviceKeys{}, fmt.Errorf("sqlite: revoke keys %s/%s: %w", userID, deviceID, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	old, err := scanSQLiteKeys(tx.QueryRowContext(ctx, `SELECT `+sqliteKeyCols+` FROM device_keys WHERE user_id = ? AND device_id = ?`,
		userID, deviceID), userID)
	if errors.Is(err, sql.ErrNoRows) {
		return DeviceKeys{}, ErrNotFound
	}
	if err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ?`, userID, deviceID); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE device_keys SET identity_key = '', spk_id = 0, spk_key = '', spk_sig = '',
		revoked = 1, announced = 0, updated_at = ? WHERE user_id = ? AND device_id = ?`,
		time.Now().UnixMilli(), userID, deviceID); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return old, nil
}

// MarkKeysAnnounced implements KeyStore.
func (s *SQLiteStore) MarkKeysAnnounced(ctx context.Context, userID, deviceID, identityKey string, revoked bool) error {
	var err error
	if revoked {
		_, err = s.w.ExecContext(ctx, `DELETE FROM device_keys WHERE user_id = ? AND device_id = ? AND revoked = 1`, userID, deviceID)
	} else {
		_, err = s.w.ExecContext(ctx, `UPDATE device_keys SET announced = 1 WHERE user_id = ? AND device_id = ?
			AND revoked = 0 AND identity_key = ?`, userID, deviceID, identityKey)
	}
	if err != nil {
		return fmt.Errorf("sqlite: mark keys announced %s/%s: %w", userID, deviceID, err)
	}
	return nil
}
