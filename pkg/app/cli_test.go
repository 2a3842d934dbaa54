package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/stretchr/testify/require"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		code, out, errOut := runMain(arg)
		require.Equal(t, 0, code, arg)
		require.Empty(t, errOut, arg)
		require.Regexp(t, `^natter \S+ \(.+, go1\.\S+ \S+/\S+\)\n$`, out, arg)
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runMain("help")
	require.Equal(t, 0, code)
	for _, cmd := range []string{"natter [serve]", "natter token", "natter migrate", "natter notify", "natter bench", "natter version", "natter help"} {
		require.Contains(t, out, cmd)
	}
	require.Contains(t, out, `bare "natter" is "natter serve"`)
	code, out, _ = runMain("help", "serve")
	require.Equal(t, 0, code)
	require.Contains(t, out, "-gateway.listen")
}

// An unknown flag is answered in two lines (the error with the nearest flag, and
// where to find every flag), not with the whole flag list.
func TestUnknownFlagIsTwoLines(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--gateway.lisen", "x"}, "unknown flag -gateway.lisen (did you mean -gateway.listen?)"},
		{[]string{"--bogus-flag"}, "unknown flag -bogus-flag\n"},
		{[]string{"migrate", "--data-dri", "x"}, "did you mean -data-dir?"},
		{[]string{"token", "--usr", "alice"}, "did you mean -user?"},
	} {
		code, out, errOut := runMain(tc.args...)
		require.Equal(t, 2, code, tc.args)
		require.Empty(t, out, tc.args)
		require.Equal(t, 2, strings.Count(errOut, "\n"), "%v: %q", tc.args, errOut)
		require.Contains(t, errOut, tc.want, tc.args)
		require.Contains(t, errOut, "for every flag")
	}
}

// natter token never makes a secret: a token signed with a fresh one would be
// refused by the server. The error names the directory and what to do.
func TestTokenNeedsTheServersSecret(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runMain("token", "--user", "alice", "--data-dir", dir)
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "no dev secret in "+dir)
	require.Contains(t, errOut, "natter serve --data-dir "+dir)
	_, err := os.Stat(filepath.Join(dir, auth.DevSecretName))
	require.ErrorIs(t, err, os.ErrNotExist, "token must not create a secret")

	_, err = auth.LoadOrCreateDevSecret(filepath.Join(dir, auth.DevSecretName))
	require.NoError(t, err)
	code, out, _ = runMain("token", "--user", "alice", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.Len(t, strings.Split(strings.TrimSpace(out), "."), 3)
}
