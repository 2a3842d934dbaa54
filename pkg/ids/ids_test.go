package ids

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValid(t *testing.T) {
	for _, ok := range []string{"a", "A-z_0", strings.Repeat("x", 64), New(), Direct("a", "b")} {
		require.True(t, Valid(ok), ok)
	}
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", "a\tb", "a/b", "é", "a\x00", strings.Repeat("x", 65), "natter.user.>"} {
		require.False(t, Valid(bad), bad)
		require.ErrorIs(t, Validate("chat", bad), ErrInvalid)
	}
}

func TestDirectIsSymmetricAndDistinct(t *testing.T) {
	require.Equal(t, Direct("alice", "bob"), Direct("bob", "alice"))
	require.NotEqual(t, Direct("alice", "bob"), Direct("alice", "carol"))
	// No separator ambiguity: ("ab","c") and ("a","bc") differ.
	require.NotEqual(t, Direct("ab", "c"), Direct("a", "bc"))
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{"a", "a.b", ">", "*", strings.Repeat("z", 64), "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) && strings.ContainsAny(s, ".*> \t\r\n") {
			t.Fatalf("Valid(%q) accepted a subject metacharacter", s)
		}
		if Valid(s) && (len(s) == 0 || len(s) > MaxLen) {
			t.Fatalf("Valid(%q) accepted a bad length", s)
		}
	})
}
