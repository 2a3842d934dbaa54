package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
)

// The key directory of end-to-end encrypted chats (docs/e2ee.md). Each device of a
// user publishes an identity key, a signed pre-key and a supply of one-time keys;
// other users claim a bundle (one one-time key consumed per device) to open a
// session with each device. The store keeps every key as the opaque base64 text the
// client sent: it never parses key material, so the client defines its inner format.

// PreKey is a signed pre-key (Signature set) or a one-time key (no Signature).
type PreKey struct {
	// ID is the client's number for the key, unique per device and kind.
	ID uint32 `json:"id"`
	// Key is the public key, base64 (ValidKeyText).
	Key string `json:"key"`
	// Signature is the identity key's signature of Key, base64; signed pre-keys only.
	Signature string `json:"signature,omitempty"`
}

// DeviceKeys is one device's published keys.
type DeviceKeys struct {
	UserID   string `json:"-"`
	DeviceID string `json:"deviceId"`
	// IdentityKey is the device's long-term public key (or keys), base64. Storing a
	// different one for the same device is a key change.
	IdentityKey  string `json:"identityKey"`
	SignedPreKey PreKey `json:"signedPreKey"`
	// UpdatedAt is when the keys were last stored, to the millisecond.
	UpdatedAt time.Time `json:"-"`
	// Revoked marks a device whose keys were removed (RevokeDeviceKeys) and whose
	// revocation is not announced yet: it has no keys and is never claimed.
	Revoked bool `json:"-"`
	// Announced reports whether the current state (this IdentityKey, or the
	// revocation) was announced to the user's chats (MarkKeysAnnounced).
	Announced bool `json:"-"`
}

// KeyBundle is what ClaimKeys returns for one device: its keys and one one-time key
// taken from its supply (nil when the supply is empty).
type KeyBundle struct {
	DeviceKeys
	OneTimeKey *PreKey `json:"oneTimeKey"`
}

// Limits of the key directory. Key lengths are of the decoded bytes.
const (
	// MaxKeyBytes bounds an identity key, a pre-key and a signature.
	MaxKeyBytes = 1024
	// MaxOneTimeKeys is the largest supply of one-time keys a device may hold (and
	// so the most one request may upload).
	MaxOneTimeKeys = 100
	// MaxKeyDevicesPerUser is how many devices of one user may hold keys
	// (revocations not announced yet included).
	MaxKeyDevicesPerUser = 20
)

// Errors of the key directory.
var (
	// ErrBadKeys (wrapped, with the reason) is input ValidateDeviceKeys or
	// ValidateOneTimeKeys refuses.
	ErrBadKeys = errors.New("store: invalid keys")
	// ErrTooManyKeyDevices is PutDeviceKeys' answer for a new device past
	// MaxKeyDevicesPerUser.
	ErrTooManyKeyDevices = errors.New("store: too many devices with keys")
	// ErrTooManyOneTimeKeys is the answer for an upload that would leave a device
	// with more than MaxOneTimeKeys one-time keys.
	ErrTooManyOneTimeKeys = errors.New("store: too many one-time keys")
)

// DecodeKeyText decodes a key as clients send it: standard base64 (RFC 4648
// section 4), padded or not.
func DecodeKeyText(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}

// validKey checks one base64 key field: 1..MaxKeyBytes decoded bytes.
func validKey(field, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is required", ErrBadKeys, field)
	}
	if len(s) > base64.StdEncoding.EncodedLen(MaxKeyBytes) {
		return fmt.Errorf("%w: %s is over %d bytes", ErrBadKeys, field, MaxKeyBytes)
	}
	b, err := DecodeKeyText(s)
	if err != nil {
		return fmt.Errorf("%w: %s is not standard base64", ErrBadKeys, field)
	}
	if len(b) == 0 || len(b) > MaxKeyBytes {
		return fmt.Errorf("%w: %s must be 1..%d bytes", ErrBadKeys, field, MaxKeyBytes)
	}
	return nil
}

// ValidateDeviceKeys checks k's IDs and keys: a user and device ID, an identity
// key, a signed pre-key with its signature, each base64 of 1..MaxKeyBytes bytes.
func ValidateDeviceKeys(k DeviceKeys) error {
	if err := ids.Validate("user", k.UserID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadKeys, err)
	}
	if err := ids.Validate("device", k.DeviceID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadKeys, err)
	}
	if err := validKey("identityKey", k.IdentityKey); err != nil {
		return err
	}
	if err := validKey("signedPreKey.key", k.SignedPreKey.Key); err != nil {
		return err
	}
	return validKey("signedPreKey.signature", k.SignedPreKey.Signature)
}

// ValidateOneTimeKeys checks an upload of one-time keys: at most MaxOneTimeKeys,
// distinct IDs, each key base64 of 1..MaxKeyBytes bytes and without a signature.
func ValidateOneTimeKeys(keys []PreKey) error {
	if len(keys) > MaxOneTimeKeys {
		return fmt.Errorf("%w: %d one-time keys in one upload, at most %d", ErrTooManyOneTimeKeys, len(keys), MaxOneTimeKeys)
	}
	seen := make(map[uint32]bool, len(keys))
	for i, k := range keys {
		if seen[k.ID] {
			return fmt.Errorf("%w: one-time key id %d appears twice", ErrBadKeys, k.ID)
		}
		seen[k.ID] = true
		if err := validKey(fmt.Sprintf("oneTimeKeys[%d].key", i), k.Key); err != nil {
			return err
		}
		if k.Signature != "" {
			return fmt.Errorf("%w: oneTimeKeys[%d] has a signature: one-time keys are not signed", ErrBadKeys, i)
		}
	}
	return nil
}

// KeyStore is the key directory. Both stores implement it.
//
// A device's row goes through: published (PutDeviceKeys; Announced false after a
// key change), announced (MarkKeysAnnounced), revoked (RevokeDeviceKeys: keys and
// one-time keys gone, Announced false) and, once the revocation is announced,
// removed. Keeping the state lets a caller whose announcement failed part-way
// simply repeat the request.
type KeyStore interface {
	// PutDeviceKeys stores k (validated with ValidateDeviceKeys) and adds oneTime
	// (ValidateOneTimeKeys) to the device's supply, an ID already there replacing
	// its key. When k is a new device, a revoked one, or its IdentityKey differs
	// from the stored one (a key change), the device's earlier one-time keys are
	// dropped first and the result has Announced false; otherwise Announced is
	// kept. It returns the keys as stored and the size of the one-time key supply.
	// ErrTooManyKeyDevices for a new device past MaxKeyDevicesPerUser;
	// ErrTooManyOneTimeKeys when the supply would pass MaxOneTimeKeys (nothing is
	// stored then).
	PutDeviceKeys(ctx context.Context, k DeviceKeys, oneTime []PreKey) (stored DeviceKeys, oneTimeLeft int, err error)
	// AddOneTimeKeys adds keys (ValidateOneTimeKeys) to the supply of a device with
	// published keys and returns the supply's size. ErrNotFound if the device has
	// no keys (never published, or revoked); ErrTooManyOneTimeKeys when the supply
	// would pass MaxOneTimeKeys (nothing is added then).
	AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []PreKey) (int, error)
	// DeviceKeys returns userID's devices, revoked ones included, ordered by
	// device ID, without claiming anything.
	DeviceKeys(ctx context.Context, userID string) ([]DeviceKeys, error)
	// ClaimKeys returns a bundle for each of userID's devices that are not
	// revoked, ordered by device ID, each with one one-time key removed from the
	// device's supply (the lowest ID; nil when none is left). However many claims
	// run at once, on any number of store clients, a one-time key is handed out
	// at most once.
	ClaimKeys(ctx context.Context, userID string) ([]KeyBundle, error)
	// RevokeDeviceKeys removes a device's keys and one-time keys and marks it
	// revoked (Announced false). It returns the device's state before the call;
	// ErrNotFound if the device has no row (never published, or its revocation
	// was announced already).
	RevokeDeviceKeys(ctx context.Context, userID, deviceID string) (DeviceKeys, error)
	// MarkKeysAnnounced records that the device's state was announced: if the
	// device still has identityKey (and is not revoked), it is marked Announced;
	// if revoked is true and it is still revoked, its row is removed. A device
	// that changed since is left alone, so the newer state is still announced.
	MarkKeysAnnounced(ctx context.Context, userID, deviceID, identityKey string, revoked bool) error
}
