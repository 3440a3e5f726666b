package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/throttledb/throttledb/internal/latency"
)

// Result is the outcome of a run.
type Result struct {
	// Config is the run's configuration, defaults filled in.
	Config Config
	// Addrs are the addresses the clients used (the embedded server's when
	// Embedded).
	Addrs    []string
	Embedded bool
	// Elapsed is from the first round trip sent to the last one answered.
	Elapsed time.Duration

	// Ops counts commands sent: GrantedNow + Reserved + Denied + Errors.
	Ops int64
	// OpsPerSec is Ops / Elapsed.
	OpsPerSec float64
	// GrantedNow counts grants of the current moment (wait_ms 0), Reserved
	// grants of a future slot, Denied refusals.
	GrantedNow, Reserved, Denied int64
	// Errors counts commands that got an error reply, no reply, or an
	// unexpected one; FirstError is the text of the earliest.
	Errors     int64
	FirstError string

	// RoundTrips counts round trips: Ops / Config.Pipeline.
	RoundTrips int64
	// Latency is per round trip: with a pipeline, the time for all its
	// commands, not divided by their number.
	Latency Latency

	// Spacing is the spacing check's outcome, when Config.Verify.
	Spacing Spacing
}

// Latency holds latency percentiles, from a log-linear histogram: each is
// the upper bound of its bucket, at most 1.6% above the true value (below
// 128 ns: exact). Max is exact.
type Latency struct {
	P50, P90, P99, P999, Max time.Duration
}

func collect(cfg Config, addrs []string, embedded bool, elapsed time.Duration, workers []*worker) Result {
	r := Result{Config: cfg, Addrs: addrs, Embedded: embedded, Elapsed: elapsed}
	var lat latency.Histogram
	var grants []grant
	var firstErrAt time.Time
	for _, w := range workers {
		r.Ops += w.ops
		r.GrantedNow += w.grantedNow
		r.Reserved += w.reserved
		r.Denied += w.denied
		r.Errors += w.errors
		r.RoundTrips += w.roundTrips
		if w.firstErr != "" && (r.FirstError == "" || w.firstErrAt.Before(firstErrAt)) {
			r.FirstError, firstErrAt = w.firstErr, w.firstErrAt
		}
		lat.Merge(&w.lat)
		grants = append(grants, w.grants...)
	}
	if elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / elapsed.Seconds()
	}
	st := lat.Stats()
	r.Latency = Latency{P50: st.P50, P90: st.P90, P99: st.P99, P999: st.P999, Max: st.Max}
	if cfg.Verify {
		r.Spacing = checkSpacing(grants, cfg.Interval.Milliseconds(), cfg.KeyPrefix)
	}
	return r
}

// print writes the report. Lines start with a fixed label, so that scripts
// (compare.sh) can pick figures out of it.
func (r Result) print(out io.Writer) {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "\nResult: %s, %d clients, pipeline %d, %d keys, interval %d ms, max %d\n",
		c.Target, c.Clients, c.Pipeline, c.Keys, c.Interval.Milliseconds(), c.Max)
	fmt.Fprintf(&b, "  throughput: %.0f ops/s (%d commands in %v)\n", r.OpsPerSec, r.Ops, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "  replies:    %d granted now, %d reserved, %d denied, %d errors\n", r.GrantedNow, r.Reserved, r.Denied, r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error: %s\n", r.FirstError)
	}
	l := r.Latency
	fmt.Fprintf(&b, "  latency:    p50=%s p90=%s p99=%s p99.9=%s max=%s\n", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	per := "per command (one command per round trip)"
	if c.Pipeline > 1 {
		per = fmt.Sprintf("per round trip of %d pipelined commands, not divided by %d", c.Pipeline, c.Pipeline)
	}
	fmt.Fprintf(&b, "              %s; %d round trips; percentiles at most 1.6%% high\n", per, r.RoundTrips)
	if s := r.Spacing; s.Checked {
		gap := "no key had two grants"
		if s.MinGap >= 0 {
			gap = fmt.Sprintf("smallest gap %d ms", s.MinGap)
		}
		if s.Pass {
			fmt.Fprintf(&b, "  spacing: PASS (%d grants on %d keys; %s >= interval %d ms; no shared slots)\n",
				s.Grants, s.Keys, gap, c.Interval.Milliseconds())
		} else {
			fmt.Fprintf(&b, "  spacing: FAIL (%d grants on %d keys; %d pairs closer than %d ms, %d sharing a slot; %s; first: %s)\n",
				s.Grants, s.Keys, s.TooClose, c.Interval.Milliseconds(), s.Shared, gap, s.First)
		}
	}
	io.WriteString(out, b.String())
}

// ms formats d in milliseconds with microsecond precision.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}
