package bench

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in a bucket whose upper bound is at or above it and within
	// 1/64 of it, and bucket upper bounds rise strictly.
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1<<40 + 7, 1<<63 - 1} {
		i := bucketOf(v)
		up := bucketUpper(i)
		require.GreaterOrEqual(t, up, v, "value %d bucket %d", v, i)
		require.LessOrEqual(t, float64(up-v), float64(v)/64+1, "value %d: bucket bound %d too coarse", v, up)
		if i > 0 {
			require.Less(t, bucketUpper(i-1), v, "value %d belongs in an earlier bucket", v)
		}
	}
	for i := 1; i < histBuckets; i++ {
		require.Greater(t, bucketUpper(i), bucketUpper(i-1), "bucket %d", i)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	tests := []struct {
		name   string
		values func() []time.Duration
		want   map[float64]time.Duration // percentile -> true value
	}{
		{"uniform 1..10000µs", func() []time.Duration {
			var v []time.Duration
			for i := 1; i <= 10000; i++ {
				v = append(v, time.Duration(i)*time.Microsecond)
			}
			rand.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
			return v
		}, map[float64]time.Duration{50: 5000 * time.Microsecond, 90: 9000 * time.Microsecond,
			99: 9900 * time.Microsecond, 99.9: 9990 * time.Microsecond, 100: 10000 * time.Microsecond}},
		{"one outlier", func() []time.Duration {
			v := make([]time.Duration, 999)
			for i := range v {
				v[i] = time.Millisecond
			}
			return append(v, time.Second)
		}, map[float64]time.Duration{50: time.Millisecond, 99: time.Millisecond, 99.9: time.Millisecond, 100: time.Second}},
		{"single value", func() []time.Duration { return []time.Duration{42 * time.Millisecond} },
			map[float64]time.Duration{0: 42 * time.Millisecond, 50: 42 * time.Millisecond, 100: 42 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			vals := tc.values()
			for _, v := range vals {
				h.Record(v)
			}
			require.EqualValues(t, len(vals), h.Count())
			for p, want := range tc.want {
				got := h.Percentile(p)
				require.GreaterOrEqual(t, got, want, "p%v", p)
				require.LessOrEqual(t, float64(got-want), float64(want)/64, "p%v: %v vs %v", p, got, want)
			}
		})
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h Histogram
	require.Zero(t, h.Percentile(99))
	require.Zero(t, h.Max())
	require.Zero(t, h.Mean())
	h.Record(-time.Second)
	require.EqualValues(t, 1, h.Count())
	require.Zero(t, h.Percentile(50), "a negative duration counts as zero")
}

func TestHistogramMergeAndData(t *testing.T) {
	var a, b Histogram
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i) * time.Millisecond)
		b.Record(time.Duration(100+i) * time.Millisecond)
	}
	// Through JSON, as a child process sends it to its parent.
	raw, err := json.Marshal(b.Data())
	require.NoError(t, err)
	var d HistogramData
	require.NoError(t, json.Unmarshal(raw, &d))
	var m Histogram
	m.Merge(&a)
	m.Merge(histogramFrom(d))
	require.EqualValues(t, 200, m.Count())
	require.Equal(t, time.Millisecond, m.Min())
	require.Equal(t, 200*time.Millisecond, m.Max())
	p50 := m.Percentile(50)
	require.True(t, p50 >= 100*time.Millisecond && p50 <= 102*time.Millisecond, "p50 %v", p50)
	require.Equal(t, (a.Mean()+b.Mean())/2, m.Mean())
}

func TestHistogramConcurrentRecord(t *testing.T) {
	var h Histogram
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 1000; i++ {
				h.Record(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	require.EqualValues(t, 8000, h.Count())
	require.Equal(t, 999*time.Microsecond, h.Max())
}
