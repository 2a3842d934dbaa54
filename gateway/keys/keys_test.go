package keys

import (
	"errors"
	"fmt"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

func TestIsKeyChange(t *testing.T) {
	current := []store.DeviceKeys{
		{DeviceID: "d1", IdentityKey: "k1"},
		{DeviceID: "d2", IdentityKey: "k2", Revoked: true},
	}
	for _, tc := range []struct {
		name string
		k    store.DeviceKeys
		want bool
	}{
		{"same identity key", store.DeviceKeys{DeviceID: "d1", IdentityKey: "k1"}, false},
		{"new identity key", store.DeviceKeys{DeviceID: "d1", IdentityKey: "k9"}, true},
		{"revoked device back", store.DeviceKeys{DeviceID: "d2", IdentityKey: "k2"}, true},
		{"new device", store.DeviceKeys{DeviceID: "d3", IdentityKey: "k3"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, isKeyChange(current, tc.k))
		})
	}
}

func TestKeysErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code protocol.Code
	}{
		{fmt.Errorf("%w: identityKey is not base64", store.ErrBadKeys), protocol.CodeBadRequest},
		{store.ErrTooManyOneTimeKeys, protocol.CodeTooLarge},
		{store.ErrTooManyKeyDevices, protocol.CodeConflict},
		{errors.New("connection refused"), protocol.CodeUnavailable},
	} {
		var pe *protocol.Error
		require.ErrorAs(t, keysError(tc.err, "put keys"), &pe)
		require.Equal(t, tc.code, pe.Code, tc.err.Error())
	}
}
