package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets, HDR-style: values below 128 ns
// are exact, larger ones fall into 64 buckets per power of two, so a reported
// percentile is within 1/64 (1.6 %) of the true value. Record is lock-free and safe
// for concurrent use; the zero value is ready.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	min    atomic.Int64  // nanoseconds + 1 (0: none recorded)
	max    atomic.Int64  // nanoseconds
}

const (
	histSubBits = 7 // 2^7 sub-buckets: the top half of them per octave
	histHalf    = 1 << (histSubBits - 1)
	histBuckets = (64 - histSubBits + 2) * histHalf // the last index is bucketOf(2^64-1)
)

// bucketOf returns the bucket index of v (nanoseconds, >= 0).
func bucketOf(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	return shift*histHalf + int(v>>shift)
}

// bucketUpper returns the largest value that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	shift := i/histHalf - 1
	m := uint64(i - shift*histHalf)
	return (m+1)<<shift - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest recorded value (exact); 0 if none.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded value (exact); 0 if none.
func (h *Histogram) Min() time.Duration { return time.Duration(max(h.min.Load()-1, 0)) }

// Mean returns the mean of the recorded values; 0 if none.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the value at or below which p percent (0..100) of the recorded
// values fall, as the upper bound of its bucket capped at the exact maximum. It
// returns 0 when nothing was recorded.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p/100*float64(n) - 1e-9)) // 99.9% of 1000 is 999, not 1000
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketUpper(i)), h.Max())
		}
	}
	return h.Max()
}

// Merge adds every value of o into h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if o.n.Load() > 0 {
		for _, v := range []int64{o.Min().Nanoseconds(), o.max.Load()} {
			h.raise(v)
		}
	}
}

func (h *Histogram) raise(v int64) {
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// HistogramData is a Histogram's JSON form, used to carry a child process's
// histograms to the parent: the non-empty buckets and the exact extremes.
type HistogramData struct {
	Buckets map[int]uint64 `json:"buckets,omitempty"`
	Sum     uint64         `json:"sumNs"`
	MinNs   int64          `json:"minNs"`
	MaxNs   int64          `json:"maxNs"`
}

// Data returns h's JSON form.
func (h *Histogram) Data() HistogramData {
	d := HistogramData{Buckets: map[int]uint64{}, Sum: h.sum.Load(), MinNs: int64(h.Min()), MaxNs: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			d.Buckets[i] = c
		}
	}
	return d
}

// histogramFrom rebuilds a Histogram from its JSON form; out-of-range buckets are
// ignored.
func histogramFrom(d HistogramData) *Histogram {
	h := &Histogram{}
	var n uint64
	for i, c := range d.Buckets {
		if i >= 0 && i < histBuckets {
			h.counts[i].Add(c)
			n += c
		}
	}
	h.n.Store(n)
	h.sum.Store(d.Sum)
	if n > 0 {
		h.min.Store(d.MinNs + 1)
		h.max.Store(d.MaxNs)
	}
	return h
}

// Summary is the usual percentiles of a Histogram, in milliseconds, for reports.
type Summary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"minMs"`
	Mean  float64 `json:"meanMs"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Summary returns h's percentiles.
func (h *Histogram) Summary() Summary {
	return Summary{Count: h.Count(), Min: ms(h.Min()), Mean: ms(h.Mean()), P50: ms(h.Percentile(50)),
		P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)), P999: ms(h.Percentile(99.9)), Max: ms(h.Max())}
}
