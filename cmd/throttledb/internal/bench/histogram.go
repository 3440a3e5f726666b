package bench

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets, in the manner of
// HdrHistogram: values below 2^(subBits+1) ns have a bucket each; above
// that, every power of two is split into 2^subBits buckets of equal width.
// A bucket's width is then at most 1/2^subBits (1/64, 1.6%) of its values,
// and the memory is fixed (numBuckets counters, 30 KiB) however long a run
// lasts.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
	max    time.Duration
}

const (
	subBits    = 6
	subCount   = 1 << subBits
	numBuckets = (64-subBits)*subCount + subCount
)

// bucketOf returns the bucket of v nanoseconds.
func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1)
	return (shift+1)<<subBits + int(v>>shift) - subCount
}

// bucketMax returns the largest value that falls in bucket b.
func bucketMax(b int) uint64 {
	if b < 2*subCount {
		return uint64(b)
	}
	shift := b>>subBits - 1
	low := uint64(b&(subCount-1)+subCount) << shift
	return low + (1 << shift) - 1
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(uint64(max(d, 0)))]++
	h.total++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding the q-th (0 < q
// <= 1) smallest value, capped at the largest value recorded: never below
// the true quantile, and above it by less than 1.6%. It is 0 when nothing
// was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total))
	if float64(rank) < q*float64(h.total) {
		rank++ // ceil: the q-th value is the rank-th smallest
	}
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketMax(b)), h.max)
		}
	}
	return h.max
}
