package notifier

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An opened window is remembered until openedMargin before the window could close,
// never after; entries that ended are swept.
func TestOpenedWindows(t *testing.T) {
	o := newOpenedWindows(time.Second)
	start := time.Now()
	o.opened("w.bob.c1", start)
	require.True(t, o.open("w.bob.c1", start))
	require.True(t, o.open("w.bob.c1", start.Add(time.Second-openedMargin-time.Millisecond)))
	require.False(t, o.open("w.bob.c1", start.Add(time.Second-openedMargin)), "not from the margin on")
	require.False(t, o.open("w.bob.c1", start.Add(time.Second)))
	require.False(t, o.open("w.bob.c2", start), "another chat's window")
	// A create that began so long ago that its window may have closed is not kept.
	o.opened("w.bob.c3", start.Add(-time.Second))
	require.False(t, o.open("w.bob.c3", start.Add(-time.Second)))
	// A window no longer than the margin is never remembered.
	short := newOpenedWindows(openedMargin)
	short.opened("w.bob.c1", time.Now())
	require.Zero(t, short.size())
	// Sweeping: once a window has passed, a new entry drops the ended ones.
	o = newOpenedWindows(400 * time.Millisecond)
	for _, k := range []string{"a", "b", "c"} {
		o.opened(k, time.Now())
	}
	require.Equal(t, 3, o.size())
	time.Sleep(450 * time.Millisecond)
	o.opened("d", time.Now())
	require.Equal(t, 1, o.size())
}
