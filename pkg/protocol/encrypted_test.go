package protocol

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckEncryption(t *testing.T) {
	for _, tc := range []struct {
		encrypted bool
		typ       string
		ok        bool
	}{
		{true, TypeEncrypted, true}, {true, TypeEdit, true}, {true, TypeDelete, true}, {true, TypeSystem, true},
		{true, TypeText, false}, {true, TypeImage, false}, {true, TypeFile, false}, {true, TypeReact, false}, {true, "poll", false},
		{false, TypeText, true}, {false, TypeReact, true}, {false, "poll", true}, {false, TypeEncrypted, false},
	} {
		err := CheckEncryption(tc.encrypted, tc.typ)
		if tc.ok {
			require.Nil(t, err, "%v %s", tc.encrypted, tc.typ)
		} else {
			require.NotNil(t, err, "%v %s", tc.encrypted, tc.typ)
			require.Equal(t, CodeBadRequest, err.Code)
		}
	}
}
