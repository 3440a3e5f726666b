package latency

import (
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// Buckets in the manner of HdrHistogram: values below 2^(subBits+1) ns have
// a bucket each; above that, every power of two is split into 2^subBits
// buckets of equal width, so a bucket is at most 1/64 (1.6%) of its values
// wide.
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

// Histogram counts durations. The zero value is ready; it is safe for
// concurrent use. Readers see each counter atomically but not all of them
// at one instant, which is good enough for monitoring.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	max    atomic.Int64
}

// Record adds one duration (negative counts as 0).
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))].Add(1)
	h.total.Add(1)
	h.sum.Add(uint64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Since records the time elapsed since start.
func (h *Histogram) Since(start time.Time) { h.Record(time.Since(start)) }

// Merge adds every duration recorded in o to h, as if h had recorded them
// too: per-worker histograms merged into one. It reads o's counters one at
// a time, so o should not be recording meanwhile if the sum must be exact.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	m := o.max.Load()
	for {
		cur := h.max.Load()
		if m <= cur || h.max.CompareAndSwap(cur, m) {
			return
		}
	}
}

// Quantile returns the q-th quantile (0 < q <= 1) of the durations
// recorded: the upper bound of the bucket holding the ceil(q*n)-th
// smallest, capped at the maximum, so never below the true value and above
// it by less than 1.6% (below 128 ns: exact). It is 0 when nothing was
// recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	counts, total := h.load()
	return quantile(counts, total, time.Duration(h.max.Load()), q)
}

// load copies the bucket counters and returns them with their sum.
func (h *Histogram) load() (*[numBuckets]uint64, uint64) {
	var counts [numBuckets]uint64
	var total uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
	}
	return &counts, total
}

func quantile(counts *[numBuckets]uint64, total uint64, hi time.Duration, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	if float64(rank) < q*float64(total) {
		rank++ // ceil: the q-th value is the rank-th smallest
	}
	rank = min(max(rank, 1), total)
	var seen uint64
	for b, c := range counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketMax(b)), hi)
		}
	}
	return hi
}

// Stats summarises a histogram.
type Stats struct {
	Count               uint64
	Mean, P50, P90, P99 time.Duration
	P999, Max           time.Duration
}

// Stats returns the count, mean, maximum and quantiles (each as Quantile
// gives it, all from one copy of the counters).
func (h *Histogram) Stats() Stats {
	counts, total := h.load()
	s := Stats{Count: total, Max: time.Duration(h.max.Load())}
	if total == 0 {
		return s
	}
	s.Mean = time.Duration(h.sum.Load() / max(h.total.Load(), 1))
	q := func(q float64) time.Duration { return quantile(counts, total, s.Max, q) }
	s.P50, s.P90, s.P99, s.P999 = q(0.5), q(0.9), q(0.99), q(0.999)
	return s
}

// String formats the stats as the value of a Redis INFO field, in
// microseconds: "count=N,avg_usec=X,p50_usec=X,p99_usec=X,p999_usec=X,max_usec=X".
func (s Stats) String() string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	return fmt.Sprintf("count=%d,avg_usec=%s,p50_usec=%s,p99_usec=%s,p999_usec=%s,max_usec=%s",
		s.Count, us(s.Mean), us(s.P50), us(s.P99), us(s.P999), us(s.Max))
}

// Counter sums values (such as commands per batch) to report their count
// and mean. The zero value is ready; it is safe for concurrent use.
type Counter struct {
	n, sum atomic.Uint64
}

// Add records one value.
func (c *Counter) Add(v uint64) {
	c.n.Add(1)
	c.sum.Add(v)
}

// String formats the counter as an INFO value: "count=N,avg=X".
func (c *Counter) String() string {
	n, sum := c.n.Load(), c.sum.Load()
	avg := 0.0
	if n > 0 {
		avg = float64(sum) / float64(n)
	}
	return fmt.Sprintf("count=%d,avg=%.2f", n, avg)
}
