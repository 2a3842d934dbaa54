package chats

import (
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

func TestCleanName(t *testing.T) {
	name, err := CleanName("  Team  ")
	require.NoError(t, err)
	require.Equal(t, "Team", name)
	name, err = CleanName("")
	require.NoError(t, err, "an empty name clears it")
	require.Empty(t, name)
	for bad, code := range map[string]protocol.Code{
		strings.Repeat("n", MaxName+1): protocol.CodeTooLarge,
		"a\xffb":                       protocol.CodeBadRequest,
		"a\u202eb":                     protocol.CodeBadRequest,
		"a\x07b":                       protocol.CodeBadRequest,
	} {
		_, err := CleanName(bad)
		var pe *protocol.Error
		require.ErrorAs(t, err, &pe, "%q", bad)
		require.Equal(t, code, pe.Code, "%q", bad)
	}
}
