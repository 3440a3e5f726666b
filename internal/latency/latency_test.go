package latency

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 1000, 1 << 20, 123456789, 1 << 62} {
		b := bucketOf(v)
		if v > bucketMax(b) || (b > 0 && v <= bucketMax(b-1)) {
			t.Errorf("%d in bucket %d (max %d, previous max %d)", v, b, bucketMax(b), bucketMax(b-1))
		}
		if b >= numBuckets {
			t.Errorf("%d: bucket %d of %d", v, b, numBuckets)
		}
	}
}

// TestBucketsContiguous: buckets are contiguous and ordered, each is
// narrow relative to its values, and the largest value has the last.
func TestBucketsContiguous(t *testing.T) {
	for b := 1; b < numBuckets; b++ {
		if lo := bucketMax(b-1) + 1; bucketOf(lo) != b || bucketOf(bucketMax(b)) != b {
			t.Fatalf("bucket %d: [%d, %d] maps to %d..%d", b, lo, bucketMax(b), bucketOf(lo), bucketOf(bucketMax(b)))
		}
		width := bucketMax(b) - bucketMax(b-1)
		if float64(width) > float64(bucketMax(b-1)+1)/subCount && width > 1 {
			t.Fatalf("bucket %d: width %d too wide for values from %d", b, width, bucketMax(b-1)+1)
		}
	}
	if got := bucketOf(math.MaxUint64); got != numBuckets-1 {
		t.Fatalf("largest value in bucket %d, want %d", got, numBuckets-1)
	}
}

// TestMergeQuantiles records values in two histograms, as a benchmark's
// workers do, merges them, and checks each quantile against the exact one.
func TestMergeQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram: want 0")
	}
	var vals []time.Duration
	for i := 1; i <= 1000; i++ {
		vals = append(vals, time.Duration(i)*37*time.Microsecond)
	}
	var a, b Histogram
	for i, d := range vals {
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	h.Merge(&a)
	h.Merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/subCount) {
			t.Errorf("q%v: %v, want within [%v, +1.6%%]", q, got, exact)
		}
	}
	s := h.Stats()
	var sum time.Duration
	for _, v := range vals {
		sum += v
	}
	if s.Count != 1000 || s.Max != vals[len(vals)-1] || h.Quantile(1) != s.Max || s.Mean != sum/1000 {
		t.Errorf("stats %+v, quantile(1) %v; want count 1000, max and quantile(1) %v, mean %v", s, h.Quantile(1), vals[len(vals)-1], sum/1000)
	}
	if s.P50 != h.Quantile(0.5) || s.P90 != h.Quantile(0.9) || s.P99 != h.Quantile(0.99) || s.P999 != h.Quantile(0.999) {
		t.Errorf("Stats quantiles %+v differ from Quantile's", s)
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		name                string
		values              []time.Duration
		count               uint64
		mean, p50, p99, max time.Duration
	}{
		{"empty", nil, 0, 0, 0, 0, 0},
		{"one", []time.Duration{time.Millisecond}, 1, time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond},
		{"1..100 us", func() []time.Duration {
			var v []time.Duration
			for i := 1; i <= 100; i++ {
				v = append(v, time.Duration(i)*time.Microsecond)
			}
			return v
		}(), 100, 50500 * time.Nanosecond, 50 * time.Microsecond, 99 * time.Microsecond, 100 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			s := h.Stats()
			within := func(got, want time.Duration) bool { return got >= want && got <= want+want/32 }
			if s.Count != tt.count || s.Mean != tt.mean || !within(s.P50, tt.p50) || !within(s.P99, tt.p99) || s.Max != tt.max {
				t.Fatalf("%+v, want count %d mean %v p50 %v p99 %v max %v (quantiles within 3%% above)", s, tt.count, tt.mean, tt.p50, tt.p99, tt.max)
			}
		})
	}
}

// TestConcurrent records from many goroutines; with -race it also checks
// that recording and reading are safe together.
func TestConcurrent(t *testing.T) {
	var h Histogram
	var c Counter
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				h.Record(time.Duration(i) * time.Microsecond)
				c.Add(2)
				if i%100 == 0 {
					_ = h.Stats().String()
				}
			}
		}()
	}
	wg.Wait()
	if s := h.Stats(); s.Count != 8000 || s.Max != 999*time.Microsecond {
		t.Fatalf("%+v", s)
	}
	if got := c.String(); got != "count=8000,avg=2.00" {
		t.Fatalf("counter %q", got)
	}
	if got := h.Stats().String(); !strings.HasPrefix(got, "count=8000,avg_usec=499.5,") {
		t.Fatalf("%q", got)
	}
}
