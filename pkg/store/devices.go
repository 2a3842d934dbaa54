package store

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/natter-chat/natter/pkg/ids"
)

// Device is one push device of a user: where a push gateway (FCM, APNs, Web Push)
// delivers that user's notifications. Natter stores it and hands it to the
// notification receivers; it never talks to the providers itself.
type Device struct {
	UserID string `json:"-"`
	// DeviceID is chosen by the client (an ID: ^[A-Za-z0-9_-]{1,64}$), stable for
	// the installation; registering it again replaces its token.
	DeviceID string `json:"deviceId"`
	// Platform is what the device runs: ios, android, web, macos, windows, linux.
	Platform string `json:"platform"`
	// Provider is the push service the token belongs to: apns, fcm or webpush.
	Provider string `json:"provider"`
	// Token is the provider's opaque registration token (for webpush, the
	// subscription JSON), at most MaxDeviceToken bytes.
	Token     string    `json:"token"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Limits of the device registry.
const (
	MaxDeviceToken = 4096
	// MaxDevicesPerUser is how many devices one user may register; PutDevice
	// refuses more with ErrTooManyDevices.
	MaxDevicesPerUser = 20
)

// Platforms and providers accepted by ValidateDevice.
var (
	DevicePlatforms = []string{"ios", "android", "web", "macos", "windows", "linux"}
	DeviceProviders = []string{"apns", "fcm", "webpush"}
)

// Errors of the device registry.
var (
	// ErrBadDevice (wrapped, with the reason) is a device that ValidateDevice refuses.
	ErrBadDevice = errors.New("store: invalid device")
	// ErrTooManyDevices is PutDevice's answer for a new device past MaxDevicesPerUser.
	ErrTooManyDevices = errors.New("store: too many devices")
)

// ValidateDevice checks d's fields (UserID included): IDs, a known platform and
// provider, a token of 1..MaxDeviceToken bytes of UTF-8 without control characters.
func ValidateDevice(d Device) error {
	if err := ids.Validate("user", d.UserID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadDevice, err)
	}
	if err := ids.Validate("device", d.DeviceID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadDevice, err)
	}
	if !oneOf(d.Platform, DevicePlatforms) {
		return fmt.Errorf("%w: platform %q: use one of %v", ErrBadDevice, d.Platform, DevicePlatforms)
	}
	if !oneOf(d.Provider, DeviceProviders) {
		return fmt.Errorf("%w: provider %q: use one of %v", ErrBadDevice, d.Provider, DeviceProviders)
	}
	if d.Token == "" || len(d.Token) > MaxDeviceToken || !utf8.ValidString(d.Token) {
		return fmt.Errorf("%w: token must be 1..%d bytes of UTF-8", ErrBadDevice, MaxDeviceToken)
	}
	for _, r := range d.Token {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: token has a control character", ErrBadDevice)
		}
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

// DeviceStore is the push device registry. Both stores implement it.
type DeviceStore interface {
	// PutDevice registers d (validated with ValidateDevice) or replaces the user's
	// device with the same DeviceID. A provider token belongs to one device: any
	// other registration of the same (Provider, Token), by this or another user, is
	// removed, so a phone that changes hands stops receiving its former owner's
	// notifications. ErrTooManyDevices for a new device past MaxDevicesPerUser.
	PutDevice(ctx context.Context, d Device) error
	// Devices returns userID's devices, ordered by DeviceID.
	Devices(ctx context.Context, userID string) ([]Device, error)
	// DeleteDevice removes userID's device; it reports whether there was one.
	DeleteDevice(ctx context.Context, userID, deviceID string) (bool, error)
	// DeleteDeviceToken removes userID's device whose provider token is token (a
	// push gateway reported it invalid); it reports whether there was one.
	DeleteDeviceToken(ctx context.Context, userID, provider, token string) (bool, error)
}
