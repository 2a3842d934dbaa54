package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetry(t *testing.T) {
	errDown := errors.New("down")
	errRefused := errors.New("refused")
	fast := Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	for _, tc := range []struct {
		name     string
		policy   Backoff
		fails    int   // attempts that fail before one succeeds (-1: all)
		failWith error // what they fail with
		want     error // nil, or what errors.Is must find
		calls    int
		notified []int
	}{
		{name: "first attempt succeeds", policy: fast, fails: 0, calls: 1},
		{name: "succeeds after failures", policy: fast, fails: 3, failWith: errDown, calls: 4, notified: []int{1, 2, 3}},
		{name: "permanent error stops at once", policy: fast, fails: -1, failWith: Permanent(errRefused), want: errRefused, calls: 1},
		{name: "max tries gives up with the last error", policy: Backoff{Initial: time.Millisecond, MaxTries: 3}, fails: -1,
			failWith: errDown, want: errDown, calls: 3, notified: []int{1, 2}},
		{name: "max elapsed gives up with the last error", policy: Backoff{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond,
			MaxElapsed: 5 * time.Millisecond}, fails: -1, failWith: errDown, want: errDown, calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var notified []int
			err := Retry(context.Background(), tc.policy, func() error {
				calls++
				if tc.fails < 0 || calls <= tc.fails {
					return tc.failWith
				}
				return nil
			}, func(err error, attempt int, wait time.Duration) {
				require.Error(t, err)
				require.Positive(t, wait)
				notified = append(notified, attempt)
			})
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
				if tc.want == errRefused {
					require.Equal(t, errRefused, err, "a permanent error comes back unwrapped")
				}
			}
			require.Equal(t, tc.calls, calls)
			require.Equal(t, tc.notified, notified)
		})
	}
}

// TestRetryEndsWithContext checks that Retry stops waiting when ctx ends, does not
// retry after that, and reports both the cancellation and what kept failing.
func TestRetryEndsWithContext(t *testing.T) {
	errDown := errors.New("down")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- Retry(ctx, Backoff{Initial: time.Hour}, func() error { calls++; return errDown }, nil)
	}()
	cancel() // the first wait is an hour: only ctx can end it
	var err error
	require.Eventually(t, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	}, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, calls)
	require.ErrorIs(t, err, errDown)

	calls = 0
	require.NoError(t, Retry(ctx, Backoff{}, func() error { calls++; return nil }, nil), "op runs once even after ctx ended")
	err = Retry(ctx, Backoff{}, func() error { calls++; return errDown }, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, errDown)
	require.Equal(t, 2, calls, "a failure after ctx ended is not retried")
}

// TestRetryJitter checks the waits are spread (not all equal) and in the upper half
// of the doubling schedule, capped at Max.
func TestRetryJitter(t *testing.T) {
	var waits []time.Duration
	_ = Retry(context.Background(), Backoff{Initial: time.Microsecond, Max: 8 * time.Microsecond, MaxTries: 40},
		func() error { return errors.New("down") },
		func(_ error, _ int, wait time.Duration) { waits = append(waits, wait) })
	require.Len(t, waits, 39)
	distinct := map[time.Duration]bool{}
	for i, w := range waits {
		base := min(time.Microsecond<<i, 8*time.Microsecond)
		require.GreaterOrEqual(t, w, base/2, "wait %d", i)
		require.LessOrEqual(t, w, base, "wait %d", i)
		distinct[w] = true
	}
	require.Greater(t, len(distinct), 3, "waits are jittered")
}
