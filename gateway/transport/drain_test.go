package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDrainOffsetsSpreadOverTheWindow(t *testing.T) {
	for _, tc := range []struct {
		n      int
		window time.Duration
	}{
		{1, 10 * time.Second},
		{2, 10 * time.Second},
		{7, time.Second},
		{1000, 10 * time.Second},
		{3, 0},
	} {
		var prev time.Duration = -1
		for i := 0; i < tc.n; i++ {
			at := drainOffset(i, tc.n, tc.window)
			require.GreaterOrEqual(t, at, time.Duration(0))
			require.LessOrEqual(t, at, tc.window, "n=%d i=%d", tc.n, i)
			if tc.window > 0 {
				require.Greater(t, at, prev, "n=%d: strictly increasing", tc.n)
				require.Greater(t, at, time.Duration(0), "n=%d: nobody is told 0", tc.n)
			}
			prev = at
		}
		if tc.window > 0 && tc.n > 1 {
			first, last := drainOffset(0, tc.n, tc.window), drainOffset(tc.n-1, tc.n, tc.window)
			require.Equal(t, tc.window*time.Duration(tc.n-1)/time.Duration(tc.n), last-first, "n=%d: evenly spread", tc.n)
		}
	}
}
