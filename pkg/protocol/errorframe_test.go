package protocol

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorFrame(t *testing.T) {
	tooLarge := Errorf(CodeTooLarge, "content is 20000 bytes, the limit is 16384")
	for _, tc := range []struct {
		name    string
		err     error
		code    Code
		message string
	}{
		{"protocol error", tooLarge, CodeTooLarge, tooLarge.Message},
		{"wrapped protocol error keeps its code", fmt.Errorf("send to c1: %w", tooLarge), CodeTooLarge, tooLarge.Message},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", tooLarge)), CodeTooLarge, tooLarge.Message},
		{"joined", errors.Join(errors.New("other"), tooLarge), CodeTooLarge, tooLarge.Message},
		{"with a cause", Errorf(CodeUnavailable, "history unavailable; retry").WithCause(errors.New("store down")),
			CodeUnavailable, "history unavailable; retry"},
		{"anything else is internal, its text hidden", errors.New("dial tcp 10.0.0.7:9042: refused"), CodeInternal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ErrorFrame(tc.err, "c1", "m1", "r1")
			require.Equal(t, FrameError, f.Type)
			require.Equal(t, tc.code, f.Code)
			require.Equal(t, tc.message, f.Message)
			require.Equal(t, tc.code.Retryable(), f.Retry)
			require.Equal(t, []string{"c1", "m1", "r1"}, []string{f.ChatID, f.MessageID, f.ID})
		})
	}
}
