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
		{true, TypeEncrypted, true}, {true, TypeEncryptedKeys, true}, {true, TypeEdit, true}, {true, TypeDelete, true}, {true, TypeSystem, true},
		{true, TypeText, false}, {true, TypeImage, false}, {true, TypeFile, false}, {true, TypeReact, false}, {true, "poll", false},
		{false, TypeText, true}, {false, TypeReact, true}, {false, "poll", true}, {false, TypeEncrypted, false},
		{false, TypeEncryptedKeys, false},
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

// A key distribution is stored like any message but nothing a person reads: not
// counted or pushed (Readable), not listed as a chat's last message (Listed), not a
// target of edits, deletes, reactions or replies (Referable), never indexed.
func TestKeyDistributionIsNoMessageToRead(t *testing.T) {
	for _, typ := range []string{TypeText, TypeImage, TypeFile, TypeEncrypted, "poll"} {
		require.True(t, Readable(typ), typ)
		require.True(t, Listed(typ), typ)
		require.True(t, Referable(typ), typ)
	}
	for _, typ := range []string{TypeEncryptedKeys, TypeSystem, TypeEdit, TypeDelete, TypeReact} {
		require.False(t, Readable(typ), typ)
		require.False(t, Referable(typ), typ)
		require.False(t, Searchable(typ), typ)
	}
	require.False(t, Listed(TypeEncryptedKeys))
	require.True(t, Listed(TypeSystem), "a system event can be the last message")
	require.False(t, Searchable(TypeEncrypted))
}
