package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPacerSchedule(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	tests := []struct {
		rate   float64
		window time.Duration
		want   int // events due inside [start, start+window)
	}{
		{1000, time.Second, 1000},
		{3, 10 * time.Second, 30},
		{0.5, 10 * time.Second, 5},
		{40_000, 250 * time.Millisecond, 10_000},
		{7, time.Second, 7},
	}
	for _, tc := range tests {
		p := newPacer(start, tc.rate)
		n := 0
		prev := time.Time{}
		for {
			due := p.next()
			if !due.Before(start.Add(tc.window)) {
				break
			}
			require.True(t, due.After(prev) || n == 0, "schedule rises")
			// The i-th event is due exactly at start + i/rate: no drift.
			want := start.Add(time.Duration(float64(n) * float64(time.Second) / tc.rate))
			require.Equal(t, want, due, "rate %v event %d", tc.rate, n)
			prev = due
			n++
		}
		require.Equal(t, tc.want, n, "rate %v over %v", tc.rate, tc.window)
	}
}

func TestSplitRate(t *testing.T) {
	require.Equal(t, []float64{100, 200, 700}, splitRate(1000, []int{1, 2, 7}))
	require.Equal(t, []float64{0, 0}, splitRate(0, []int{1, 1}), "unpaced stays unpaced")
	require.Equal(t, []float64{0}, splitRate(10, []int{0}))
}

func TestSleepUntilPastIsImmediate(t *testing.T) {
	require.True(t, sleepUntil(t.Context(), time.Now().Add(-time.Hour)))
}
