package logging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Logs written to a file or a pipe carry no ANSI colour codes.
func TestNoColoursOutsideATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	require.NoError(t, err)
	defer f.Close()
	require.False(t, isTerminal(f))
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.False(t, isTerminal(w))
}

func TestBuildConsoleColourOnlyWhenAsked(t *testing.T) {
	for _, colour := range []bool{false, true} {
		dir := t.TempDir()
		c := Config{Level: "info", Format: "console"}
		p := filepath.Join(dir, "out")
		lc, err := buildTo(c, colour, p)
		require.NoError(t, err)
		lc.Info("hello")
		require.NoError(t, lc.Sync())
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Contains(t, string(b), "hello")
		require.Equal(t, colour, containsESC(b), "colour=%v: %q", colour, b)
	}
}

func containsESC(b []byte) bool {
	for _, c := range b {
		if c == 0x1b {
			return true
		}
	}
	return false
}
