package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Buckets are contiguous and ordered, and each is narrow relative to
	// its values.
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

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram: want 0")
	}
	var vals []time.Duration
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * 37 * time.Microsecond
		vals = append(vals, d)
	}
	// Recorded in two halves and merged, as workers' histograms are.
	var a, b histogram
	for i, d := range vals {
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	h.merge(&a)
	h.merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/subCount) {
			t.Errorf("q%v: %v, want within [%v, +1.6%%]", q, got, exact)
		}
	}
	if h.max != vals[len(vals)-1] || h.quantile(1) != h.max {
		t.Errorf("max %v, quantile(1) %v, want %v", h.max, h.quantile(1), vals[len(vals)-1])
	}
}

func TestCheckSpacing(t *testing.T) {
	for _, tc := range []struct {
		name           string
		grants         []grant
		pass           bool
		minGap         int64
		tooClose, shrd int
		first          string
	}{
		{"none", nil, true, -1, 0, 0, ""},
		{"one per key", []grant{{0, 100}, {1, 100}}, true, -1, 0, 0, ""},
		{"spaced, unordered", []grant{{0, 300}, {0, 100}, {0, 200}, {1, 150}, {1, 250}}, true, 100, 0, 0, ""},
		{"too close", []grant{{0, 100}, {0, 199}, {0, 300}}, false, 99, 1, 0, "key p0: slots 100 and 199 are 99 ms apart"},
		{"shared slot", []grant{{2, 500}, {2, 500}, {3, 500}}, false, 0, 1, 1, "key p2: slots 500 and 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := checkSpacing(tc.grants, 100, "p")
			if !s.Checked || s.Pass != tc.pass || s.MinGap != tc.minGap || s.TooClose != tc.tooClose || s.Shared != tc.shrd ||
				s.Grants != len(tc.grants) || !strings.Contains(s.First, tc.first) || (tc.first == "") != (s.First == "") {
				t.Fatalf("checkSpacing: %+v, want pass %v, min gap %d, too close %d, shared %d, first %q",
					s, tc.pass, tc.minGap, tc.tooClose, tc.shrd, tc.first)
			}
		})
	}
}
