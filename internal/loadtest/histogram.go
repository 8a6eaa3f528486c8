package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts durations in fixed log-linear buckets: exact below
// 128 ns, then 128 buckets per power of two, so any quantile it reports is
// within 1/128 (0.8%) of the true sample. It takes 58 KiB whatever the
// number of samples, and every method is safe for concurrent use
// (Record is a few atomic adds; no lock).
//
// An HdrHistogram would do the same with more knobs; a sorted slice of
// samples would be exact but grows with the run (10M samples are 80 MB).
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; 10M samples of 10 s fit easily
	min    atomic.Int64  // valid when n > 0
	max    atomic.Int64
}

const (
	histSubBits  = 7
	histSub      = 1 << histSubBits                   // buckets per power of two
	histBuckets  = histSub + (64-histSubBits)*histSub // 7424
	histMaxValue = math.MaxInt64
)

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(histMaxValue)
	return h
}

// bucketOf returns the bucket of v ≥ 0.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // keep the top 8 bits: [128, 256)
	return histSub + shift*histSub + int(v>>shift) - histSub
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := (i - histSub) / histSub
	mant := uint64(i-histSub)%histSub + histSub
	hi := (mant+1)<<shift - 1
	if hi < mant<<shift { // overflow in the last bucket
		return math.MaxUint64
	}
	return hi
}

// Record adds one sample; a negative duration counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for old := h.min.Load(); v < old && !h.min.CompareAndSwap(old, v); old = h.min.Load() {
	}
	for old := h.max.Load(); v > old && !h.max.CompareAndSwap(old, v); old = h.max.Load() {
	}
}

// Merge adds every sample of o to h. o should not be recorded into
// meanwhile, or the merge may see part of a sample.
func (h *Histogram) Merge(o *Histogram) {
	if o.n.Load() == 0 {
		return
	}
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for v, old := o.min.Load(), h.min.Load(); v < old && !h.min.CompareAndSwap(old, v); old = h.min.Load() {
	}
	for v, old := o.max.Load(), h.max.Load(); v > old && !h.max.CompareAndSwap(old, v); old = h.max.Load() {
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest sample, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration {
	if h.n.Load() == 0 {
		return 0
	}
	return time.Duration(h.max.Load())
}

// Mean is the exact mean; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the sample at quantile q in [0, 1] (0.99 for p99): the
// highest value of the bucket holding the ceil(q·n)-th smallest sample,
// clamped to the exact minimum and maximum. 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	lo, hi := h.min.Load(), h.max.Load()
	if q >= 1 {
		return time.Duration(hi)
	}
	rank := uint64(math.Ceil(max(q, 0) * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := bucketHigh(i)
			if v > uint64(hi) {
				return time.Duration(hi)
			}
			return time.Duration(max(int64(v), lo))
		}
	}
	return time.Duration(hi) // counts raced ahead of n: the top is the answer
}

// LatencyStats summarizes a Histogram; durations are in nanoseconds in
// JSON.
type LatencyStats struct {
	Samples uint64        `json:"samples"`
	Mean    time.Duration `json:"mean_ns"`
	P50     time.Duration `json:"p50_ns"`
	P90     time.Duration `json:"p90_ns"`
	P99     time.Duration `json:"p99_ns"`
	P999    time.Duration `json:"p999_ns"`
	Max     time.Duration `json:"max_ns"`
}

// Stats summarizes h.
func (h *Histogram) Stats() LatencyStats {
	return LatencyStats{
		Samples: h.Count(), Mean: h.Mean(),
		P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
		Max: h.Max(),
	}
}
